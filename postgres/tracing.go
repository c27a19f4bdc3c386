package postgres

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/tracing"
)

// StoreOption configures an EventStore.
type StoreOption func(*EventStore)

// WithTracer makes the store start a span for each append (tracing off
// without it).
func WithTracer(tp trace.TracerProvider) StoreOption {
	return func(s *EventStore) { s.tracer = tracing.Tracer(tp) }
}

// Change runs one command against one stream in a single transaction, in
// the span "eventstore append", whose trace context every appended event
// keeps in its metadata (traceparent, tracestate): the relay, the
// projector and the saga continue or link that trace.
func (s *EventStore) Change(ctx context.Context, c command.Change) (command.Result, error) {
	ctx, span := s.tracer.Start(ctx, "eventstore append", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("db.system.name", "postgresql"), attribute.String("splitstream.stream.id", c.Stream.ID)))
	c.Metadata = tracing.Stamp(ctx, c.Metadata)
	res, err := s.changeRetrying(ctx, c)
	tracing.End(span, err)
	return res, err
}
