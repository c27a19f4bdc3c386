package main

import (
	"context"
	"log/slog"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/relay"
	"github.com/splitstream/splitstream/tracing"
	"github.com/splitstream/splitstream/tracing/provider"
)

// tracer is the process's tracer, or nil when tracing is off (so the
// GraphQL servers skip their tracing extension).
func (a *app) tracer() trace.Tracer {
	if a.tp == nil {
		return nil
	}
	return tracing.Tracer(a.tp)
}

// flushTraces exports what the batch span processor still holds, for at
// most 5 seconds, on the way out.
func flushTraces(log *slog.Logger, shutdown provider.Shutdown) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := shutdown(ctx); err != nil {
		log.Warn("tracing: flushing spans on exit failed", "err", err)
	}
}

// tracedPublisher wraps the relay's publisher in a "relay publish" span per
// batch, linked to the trace of every event in it. The messages themselves
// carry each event's own trace context as their traceparent header.
type tracedPublisher struct {
	relay.Publisher
	tracer trace.Tracer
}

func (p tracedPublisher) Publish(ctx context.Context, records []event.Record) error {
	ctx, span := p.tracer.Start(ctx, "relay publish", trace.WithSpanKind(trace.SpanKindProducer))
	links := tracing.NewLinker(span)
	for _, r := range records {
		links.Add(r.Envelope.Metadata)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("messaging.batch.message_count", len(records)))
	}
	err := p.Publisher.Publish(ctx, records)
	tracing.End(span, err)
	return err
}

// tracedProjector wraps each projector batch in a "projector batch" span
// linked to the trace of every message in it (the traceparent header and
// the envelope's metadata hold the same context). The notice the batch
// sends carries this span's context.
type tracedProjector struct {
	*projector.Projector
	tracer trace.Tracer
}

func (p tracedProjector) Handle(ctx context.Context, msgs []projector.Message) ([]projector.Verdict, error) {
	ctx, span := p.tracer.Start(ctx, "projector batch", trace.WithSpanKind(trace.SpanKindConsumer))
	links := tracing.NewLinker(span)
	for _, m := range msgs {
		links.Add(m.Record.Envelope.Metadata)
	}
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("messaging.batch.message_count", len(msgs)))
	}
	v, err := p.Projector.Handle(ctx, msgs)
	tracing.End(span, err)
	return v, err
}

// tracedSaga continues each event's trace in a "saga handle <type>" span:
// from the message's traceparent header (the consumer put it in ctx), else
// from the event's metadata. The saga's commands are children of it.
type tracedSaga struct {
	rabbitmq.SagaHandler
	tracer trace.Tracer
}

func (s tracedSaga) Handle(ctx context.Context, e event.Envelope) error {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		ctx = tracing.Continue(ctx, e.Metadata)
	}
	ctx, span := s.tracer.Start(ctx, "saga handle "+e.Type, trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("splitstream.order.id", e.StreamID)))
	err := s.SagaHandler.Handle(ctx, e)
	tracing.End(span, err)
	return err
}

// push offers a notice's changes to the subscribers in a "subscription
// push" span that continues the notice's trace (the projector batch's).
func push(ctx context.Context, tracer trace.Tracer, h *query.Hub, changes []query.Change) {
	ctx, span := tracer.Start(ctx, "subscription push", trace.WithSpanKind(trace.SpanKindProducer))
	if span.IsRecording() {
		span.SetAttributes(attribute.Int("splitstream.changes", len(changes)))
	}
	h.Publish(ctx, changes)
	span.End()
}
