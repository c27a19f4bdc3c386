package tracing_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/tracing"
)

func provider(t *testing.T) (*sdktrace.TracerProvider, *tracetest.InMemoryExporter) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return tp, exp
}

// The context stamped into an event's metadata comes back as the remote
// parent of whoever continues it.
func TestStampAndContinue(t *testing.T) {
	tp, _ := provider(t)
	ctx, span := tracing.Tracer(tp).Start(context.Background(), "append")
	m := tracing.Stamp(ctx, event.Metadata{Actor: "a"})
	span.End()
	want := span.SpanContext()
	if !strings.HasPrefix(m.TraceParent, "00-"+want.TraceID().String()+"-"+want.SpanID().String()) || m.Actor != "a" {
		t.Fatalf("stamped metadata %+v, span %v", m, want)
	}
	if got := tracing.Stored(m); got.TraceID() != want.TraceID() || got.SpanID() != want.SpanID() || !got.IsRemote() {
		t.Fatalf("stored %v, want %v", got, want)
	}
	_, child := tracing.Tracer(tp).Start(tracing.Continue(context.Background(), m), "saga")
	if child.SpanContext().TraceID() != want.TraceID() {
		t.Fatal("the continued span is not in the stamped trace")
	}
	if m.WithoutTrace().TraceParent != "" {
		t.Fatal("WithoutTrace kept the trace")
	}
}

// Tracing off and no caller's trace: the metadata stays as it was.
func TestStampWithoutTrace(t *testing.T) {
	ctx, span := tracing.Tracer(nil).Start(context.Background(), "append")
	defer span.End()
	if m := tracing.Stamp(ctx, event.Metadata{Actor: "a"}); m != (event.Metadata{Actor: "a"}) {
		t.Fatalf("got %+v", m)
	}
	if tracing.Stored(event.Metadata{TraceParent: "00-garbage"}).IsValid() {
		t.Fatal("a malformed traceparent is a span context")
	}
}

// A batch links each distinct trace once.
func TestLinkerOncePerTrace(t *testing.T) {
	tp, exp := provider(t)
	tr := tracing.Tracer(tp)
	var metas []event.Metadata
	for range 3 {
		ctx, s := tr.Start(context.Background(), "append")
		m := tracing.Stamp(ctx, event.Metadata{})
		metas = append(metas, m, m) // two events of one append
		s.End()
	}
	_, batch := tr.Start(context.Background(), "batch")
	l := tracing.NewLinker(batch)
	for _, m := range append(metas, event.Metadata{}) {
		l.Add(m)
	}
	batch.End()
	if l.Len() != 3 {
		t.Fatalf("linked %d traces, want 3", l.Len())
	}
	spans := exp.GetSpans()
	if got := spans[len(spans)-1]; got.Name != "batch" || len(got.Links) != 3 {
		t.Fatalf("batch span %s with %d links", got.Name, len(got.Links))
	}
}

// Log lines logged with a traced context carry trace_id, span_id and the
// extra fields, each once.
func TestLogHandler(t *testing.T) {
	tp, _ := provider(t)
	var buf bytes.Buffer
	type key struct{}
	log := slog.New(tracing.LogHandler(slog.NewTextHandler(&buf, nil),
		tracing.Field{Key: "request_id", Fn: func(ctx context.Context) string { s, _ := ctx.Value(key{}).(string); return s }}))
	ctx, span := tracing.Tracer(tp).Start(context.WithValue(context.Background(), key{}, "r-1"), "op")
	defer span.End()
	log.With("role", "x").InfoContext(ctx, "hello")
	log.InfoContext(ctx, "again", "request_id", "r-1")
	log.Info("no context")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	sc := span.SpanContext()
	if !strings.Contains(lines[0], "trace_id="+sc.TraceID().String()) || !strings.Contains(lines[0], "span_id="+sc.SpanID().String()) ||
		!strings.Contains(lines[0], "request_id=r-1") || !strings.Contains(lines[0], "role=x") {
		t.Errorf("line %q", lines[0])
	}
	if strings.Count(lines[1], "request_id=") != 1 {
		t.Errorf("request id twice: %q", lines[1])
	}
	if strings.Contains(lines[2], "trace_id") {
		t.Errorf("untraced line has a trace: %q", lines[2])
	}
}

// A caller's oversized tracestate is not stored with the events.
func TestStampDropsLongTraceState(t *testing.T) {
	tp, _ := provider(t)
	var members []string
	for i := range 32 {
		members = append(members, fmt.Sprintf("k%d=%s", i, strings.Repeat("v", 200)))
	}
	ts, err := trace.ParseTraceState(strings.Join(members, ","))
	if err != nil {
		t.Fatal(err)
	}
	parent := trace.NewSpanContext(trace.SpanContextConfig{TraceID: trace.TraceID{1}, SpanID: trace.SpanID{1}, TraceState: ts, Remote: true})
	ctx, span := tracing.Tracer(tp).Start(trace.ContextWithRemoteSpanContext(context.Background(), parent), "append")
	defer span.End()
	if m := tracing.Stamp(ctx, event.Metadata{}); m.TraceState != "" || m.TraceParent == "" {
		t.Fatalf("stamped %d bytes of tracestate, traceparent %q", len(m.TraceState), m.TraceParent)
	}
}
