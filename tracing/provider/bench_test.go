package provider

import (
	"context"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/tracing"
)

type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// What tracing adds to one mutation: the operation, command and append
// spans and the metadata stamp, with the production provider (batch span
// processor) exporting nowhere, beside tracing off.
func BenchmarkMutationSpans(b *testing.B) {
	tp, err := New(context.Background(), discard{}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer tp.Shutdown(context.Background())
	for name, tr := range map[string]trace.Tracer{"off": tracing.Tracer(nil), "on": tracing.Tracer(tp)} {
		b.Run(name, func(b *testing.B) {
			for b.Loop() {
				ctx, op := tr.Start(context.Background(), "graphql mutation createProduct")
				ctx, cmd := tr.Start(ctx, "command createProduct")
				ctx, app := tr.Start(ctx, "eventstore append")
				_ = tracing.Stamp(ctx, event.Metadata{CommandID: "c"})
				app.End()
				cmd.End()
				op.End()
			}
		})
	}
}

// A projector batch of 1000 events from 1000 traces: the span and its links.
func BenchmarkBatchLinks(b *testing.B) {
	tp, err := New(context.Background(), discard{}, "bench")
	if err != nil {
		b.Fatal(err)
	}
	defer tp.Shutdown(context.Background())
	tr := tracing.Tracer(tp)
	metas := make([]event.Metadata, 1000)
	for i := range metas {
		ctx, s := tr.Start(context.Background(), "append")
		metas[i] = tracing.Stamp(ctx, event.Metadata{})
		s.End()
	}
	for b.Loop() {
		_, span := tr.Start(context.Background(), "projector batch")
		l := tracing.NewLinker(span)
		for _, m := range metas {
			l.Add(m)
		}
		span.End()
	}
}
