package graph_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/graph/write"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/tracing"
)

// Each operation gets one server span named by its type and name, a child
// of the caller's traceparent, with the request id.
func TestOperationSpan(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer tp.Shutdown(context.Background())
	srv := graph.NewServer(write.NewExecutableSchema(write.Config{Resolvers: &write.Resolver{Version: "t"}}),
		graph.Options{Log: testenv.Logger(t), Tracer: tracing.Tracer(tp)})
	ts := httptest.NewServer(graph.Middleware(1<<20, srv))
	defer ts.Close()
	const caller = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
	for _, q := range []string{`query V { version }`, `{ version }`} {
		req, _ := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader(`{"query":"`+q+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("traceparent", caller)
		req.Header.Set("X-Request-Id", "req-1")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
	}
	spans := exp.GetSpans()
	if len(spans) != 2 || spans[0].Name != "graphql query V" || spans[1].Name != "graphql query version" {
		t.Fatalf("spans %v", spans)
	}
	s := spans[0]
	if s.SpanContext.TraceID().String() != "0af7651916cd43dd8448eb211c80319c" || s.Parent.SpanID().String() != "b7ad6b7169203331" || !s.Parent.IsRemote() {
		t.Errorf("span %s parent %s", s.SpanContext.TraceID(), s.Parent.SpanID())
	}
	found := false
	for _, a := range s.Attributes {
		found = found || a == attribute.String("request_id", "req-1")
	}
	if !found {
		t.Errorf("no request_id in %v", s.Attributes)
	}
}
