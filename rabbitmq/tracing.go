package rabbitmq

import (
	"context"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/tracing"
)

// W3C trace context headers: an event message carries the trace of the
// append that stored it (from its metadata); a notice carries the trace of
// the projector batch that sent it.
const (
	HeaderTraceParent = "traceparent"
	HeaderTraceState  = "tracestate"
)

// HeaderCarrier lets the trace propagator read and write AMQP headers.
type HeaderCarrier amqp.Table

// Get returns the header key as a string ("" when absent or not a string).
func (h HeaderCarrier) Get(key string) string {
	switch v := h[key].(type) {
	case string:
		return v
	case []byte:
		return string(v)
	}
	return ""
}

// Set sets the header key.
func (h HeaderCarrier) Set(key, value string) { h[key] = value }

// Keys lists the headers.
func (h HeaderCarrier) Keys() []string {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	return keys
}

// TraceContext returns ctx continuing the trace in a delivery's headers,
// or ctx unchanged when they carry none.
func TraceContext(ctx context.Context, h amqp.Table) context.Context {
	if h == nil {
		return ctx
	}
	return tracing.Extract(ctx, HeaderCarrier(h))
}

// injectTrace writes ctx's trace context into h.
func injectTrace(ctx context.Context, h amqp.Table) amqp.Table {
	if h == nil {
		h = amqp.Table{}
	}
	tracing.Inject(ctx, HeaderCarrier(h))
	if len(h) == 0 {
		return nil
	}
	return h
}

// traceHeaders copies the trace context stored in an event's metadata to
// its message's headers.
func traceHeaders(h amqp.Table, m event.Metadata) {
	if m.TraceParent != "" {
		h[HeaderTraceParent] = m.TraceParent
	}
	if m.TraceState != "" {
		h[HeaderTraceState] = m.TraceState
	}
}
