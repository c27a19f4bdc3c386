// Package tracing holds the small helpers every traced package shares: the
// tracer of a provider, the W3C trace context kept in an event's metadata
// and in message headers, span links, and a slog handler that adds the
// trace to log lines. The provider itself (the OTLP exporter from the
// OTEL_* environment) is built in tracing/provider, so the packages that
// only start spans do not import the exporters.
package tracing

import (
	"context"
	"encoding/hex"

	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/splitstream/splitstream/event"
)

// Scope is the instrumentation scope of every span Splitstream starts.
const Scope = "github.com/splitstream/splitstream"

// Tracer returns tp's tracer for Splitstream; a nil tp means tracing off.
func Tracer(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		tp = noop.NewTracerProvider()
	}
	return tp.Tracer(Scope)
}

// propagator reads and writes traceparent and tracestate. A value, not
// otel's global: nothing here depends on process-wide state.
var propagator = propagation.TraceContext{}

// Inject writes ctx's span context to carrier (nothing when ctx has none).
func Inject(ctx context.Context, carrier propagation.TextMapCarrier) {
	propagator.Inject(ctx, carrier)
}

// Extract returns ctx continuing the trace context in carrier, or ctx
// unchanged when carrier holds none (or a malformed one).
func Extract(ctx context.Context, carrier propagation.TextMapCarrier) context.Context {
	return propagator.Extract(ctx, carrier)
}

// End ends span, marking it failed when err is not nil.
func End(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// metadataCarrier lets the propagator read and write an event's metadata.
type metadataCarrier struct{ m *event.Metadata }

func (c metadataCarrier) Get(key string) string {
	switch key {
	case "traceparent":
		return c.m.TraceParent
	case "tracestate":
		return c.m.TraceState
	}
	return ""
}

func (c metadataCarrier) Set(key, value string) {
	switch key {
	case "traceparent":
		c.m.TraceParent = value
	case "tracestate":
		c.m.TraceState = value
	}
}

func (c metadataCarrier) Keys() []string { return []string{"traceparent", "tracestate"} }

// Stamp returns m carrying ctx's span context; m unchanged when ctx has no
// valid span context (tracing off and no caller's trace).
func Stamp(ctx context.Context, m event.Metadata) event.Metadata {
	if !trace.SpanContextFromContext(ctx).IsValid() {
		return m
	}
	m.TraceParent, m.TraceState = "", ""
	propagator.Inject(ctx, metadataCarrier{&m})
	if len(m.TraceState) > MaxTraceState {
		m.TraceState = "" // a caller's; W3C lets us drop what we cannot carry
	}
	return m
}

// MaxTraceState is the longest tracestate an event keeps (the 512
// characters W3C asks every vendor to carry): a caller's header is up to
// 32 members of 512 bytes, too much to store with every event.
const MaxTraceState = 512

// Continue returns ctx continuing the trace stored in m (as a remote
// parent), or ctx unchanged when m holds none.
func Continue(ctx context.Context, m event.Metadata) context.Context {
	if m.TraceParent == "" {
		return ctx
	}
	return propagator.Extract(ctx, metadataCarrier{&m})
}

// Stored returns the span context stored in m (remote); invalid when
// there is none or it is malformed. It reads version 00 of traceparent
// itself, without the propagator's allocations: a projector batch reads
// a thousand of them.
func Stored(m event.Metadata) trace.SpanContext {
	tp := m.TraceParent
	if len(tp) != 55 || tp[:3] != "00-" || tp[35] != '-' || tp[52] != '-' {
		return trace.SpanContext{}
	}
	tid, err1 := trace.TraceIDFromHex(tp[3:35])
	sid, err2 := trace.SpanIDFromHex(tp[36:52])
	flags, err3 := hex.DecodeString(tp[53:55])
	if err1 != nil || err2 != nil || err3 != nil {
		return trace.SpanContext{}
	}
	cfg := trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.TraceFlags(flags[0]) & trace.FlagsSampled, Remote: true}
	if m.TraceState != "" {
		if ts, err := trace.ParseTraceState(m.TraceState); err == nil {
			cfg.TraceState = ts
		}
	}
	return trace.NewSpanContext(cfg)
}

// Linker collects one span link per distinct trace, for a span that
// handles many events at once (a relay batch, a projector batch).
type Linker struct {
	seen map[trace.TraceID]bool
	span trace.Span
}

// NewLinker adds links to span; it does nothing when span is not recording.
func NewLinker(span trace.Span) *Linker {
	if !span.IsRecording() {
		return &Linker{}
	}
	return &Linker{seen: map[trace.TraceID]bool{}, span: span}
}

// Add links the trace stored in m, once per trace.
func (l *Linker) Add(m event.Metadata) {
	if l.span == nil || m.TraceParent == "" {
		return
	}
	sc := Stored(m)
	if !sc.IsValid() || l.seen[sc.TraceID()] {
		return
	}
	l.seen[sc.TraceID()] = true
	l.span.AddLink(trace.Link{SpanContext: sc})
}

// Len is how many traces are linked.
func (l *Linker) Len() int { return len(l.seen) }
