package graph

import (
	"context"
	"net/http"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/tracing"
)

// Tracing is a gqlgen extension that wraps each GraphQL operation in a
// server span, continuing the caller's traceparent header when it sends
// one. A subscription's span lasts as long as the subscription.
type Tracing struct{ Tracer trace.Tracer }

var (
	_ graphql.HandlerExtension     = Tracing{}
	_ graphql.OperationInterceptor = Tracing{}
)

// ExtensionName implements graphql.HandlerExtension.
func (Tracing) ExtensionName() string { return "Tracing" }

// Validate implements graphql.HandlerExtension.
func (Tracing) Validate(graphql.ExecutableSchema) error { return nil }

// InterceptOperation implements graphql.OperationInterceptor.
func (t Tracing) InterceptOperation(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
	oc := graphql.GetOperationContext(ctx)
	kind, name := operation(oc)
	ctx = tracing.Extract(ctx, propagation.HeaderCarrier(http.Header(oc.Headers)))
	ctx, span := t.Tracer.Start(ctx, "graphql "+kind+" "+name, trace.WithSpanKind(trace.SpanKindServer))
	if span.IsRecording() {
		span.SetAttributes(attribute.String("graphql.operation.type", kind), attribute.String("graphql.operation.name", name))
		if id := RequestID(ctx); id != "" {
			span.SetAttributes(attribute.String("request_id", id))
		}
	}
	handler := next(ctx)
	done := false
	return func(ctx context.Context) *graphql.Response {
		if done {
			return handler(ctx)
		}
		res := handler(ctx)
		if res == nil || kind != "subscription" {
			done = true
			if res != nil && len(res.Errors) > 0 && span.IsRecording() {
				span.SetAttributes(attribute.String("graphql.error", res.Errors[0].Message))
			}
			span.End()
		}
		return res
	}
}

// operation returns the operation's type and its name (the first root
// field when the operation has none).
func operation(oc *graphql.OperationContext) (kind, name string) {
	if oc == nil || oc.Operation == nil {
		return "operation", "unknown"
	}
	kind, name = string(oc.Operation.Operation), oc.Operation.Name
	if name == "" {
		for _, s := range oc.Operation.SelectionSet {
			if f, ok := s.(*ast.Field); ok {
				name = f.Name
				break
			}
		}
	}
	if len(name) > 64 {
		name = name[:64]
	}
	return kind, name
}
