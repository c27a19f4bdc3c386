package command

import (
	"context"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/tracing"
)

// WithTracer makes the service start a span for each command (tracing off
// without it).
func WithTracer(tp trace.TracerProvider) Option {
	return func(s *Service) error {
		s.tracer = tracing.Tracer(tp)
		return nil
	}
}

// change runs one command inside its span, "command <mutation>".
func (s *Service) change(ctx context.Context, mutation Name, st Stream, fresh bool, m Meta, c validator, foldVersion int, input any,
	decide func(*Snapshot, []event.Envelope) (Decision, error)) (Result, error) {
	ctx, span := s.tracer.Start(ctx, "command "+string(mutation), trace.WithAttributes(
		attribute.String("splitstream.stream.type", st.Type), attribute.String("splitstream.stream.id", st.ID)))
	res, err := s.decideAndAppend(ctx, mutation, st, fresh, m, c, foldVersion, input, decide)
	tracing.End(span, err)
	return res, err
}
