package gateway

import (
	"context"
	"crypto/rand"
	"net/http"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"
)

// propagateTrace writes W3C trace context (traceparent, tracestate) for an
// upstream request: the caller's trace, if it sent a valid one, continued
// with a span id of the gateway's hop; else a new trace. The propagator
// drops a malformed header and bounds tracestate (32 members).
func propagateTrace(in, out http.Header) {
	tc := propagation.TraceContext{}
	sc := trace.SpanContextFromContext(tc.Extract(context.Background(), propagation.HeaderCarrier(in)))
	cfg := trace.SpanContextConfig{TraceID: sc.TraceID(), TraceFlags: sc.TraceFlags(), TraceState: sc.TraceState()}
	if !sc.IsValid() {
		_, _ = rand.Read(cfg.TraceID[:])
	}
	_, _ = rand.Read(cfg.SpanID[:])
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(cfg))
	tc.Inject(ctx, propagation.HeaderCarrier(out))
}
