package rabbitmq

import (
	"context"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/tracing"
)

// An event message carries its metadata's trace context as traceparent and
// tracestate headers, and a consumer continues it from there.
func TestTraceHeaders(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer tp.Shutdown(context.Background())
	ctx, span := tracing.Tracer(tp).Start(context.Background(), "append")
	span.End()
	ts, _ := trace.ParseTraceState("vendor=1")
	ctx = trace.ContextWithSpanContext(ctx, span.SpanContext().WithTraceState(ts))
	m := tracing.Stamp(ctx, event.Metadata{})
	msg, err := EncodeRecord(event.Record{Envelope: event.Envelope{ID: "e", StreamID: "s", Version: 1, Type: "T", Metadata: m}})
	if err != nil {
		t.Fatal(err)
	}
	if msg.Headers[HeaderTraceParent] != m.TraceParent || msg.Headers[HeaderTraceState] != "vendor=1" {
		t.Fatalf("headers %v", msg.Headers)
	}
	if err := msg.Headers.Validate(); err != nil {
		t.Fatal(err)
	}
	got := trace.SpanContextFromContext(TraceContext(context.Background(), msg.Headers))
	if got.TraceID() != span.SpanContext().TraceID() || got.SpanID() != span.SpanContext().SpanID() || !got.IsRemote() {
		t.Fatalf("continued %v, want %v", got, span.SpanContext())
	}
	// A notice's headers come from the publishing context.
	if h := injectTrace(ctx, nil); h[HeaderTraceParent] != m.TraceParent {
		t.Fatalf("notice headers %v", h)
	}
	if h := injectTrace(context.Background(), nil); h != nil {
		t.Fatalf("untraced notice headers %v", h)
	}
	if TraceContext(context.Background(), amqp.Table{HeaderTraceParent: 42}) != context.Background() {
		t.Fatal("a non-string header made a trace")
	}
}
