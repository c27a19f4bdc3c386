package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// One placeOrder, followed through `splitstream all`: the caller's
// traceparent reaches the GraphQL span, the command, the append and the
// saga (through the AMQP header); the relay's and the projector's batch
// spans link the trace; the subscription push continues the projector
// batch's trace (through the notice) and the subscriber gets its frame.
func TestOnePlaceOrderTraced(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	_, commandURL, queryURL := tracedStack(t, tp)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var created struct{ CreateProduct struct{ ID string } }
	if err := gql(commandURL, `mutation { createProduct(input: {name: "Traced", category: "t", priceCents: 100, currency: "EUR", stock: 5}) { id } }`, nil, &created); err != nil {
		t.Fatal(err)
	}
	// The subscriber connects first; it subscribes once the order has an id.
	ws := connectWS(t, ctx, "ws"+strings.TrimPrefix(queryURL, "http"))

	caller := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0x5e, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
		SpanID:  trace.SpanID{0xca, 1, 2, 3, 4, 5, 6, 7}, TraceFlags: trace.FlagsSampled,
	})
	orderID := placeOrderTraced(t, commandURL, created.CreateProduct.ID, caller)
	frames := subscribeOrder(t, ctx, ws, orderID)
	select {
	case status := <-frames:
		t.Logf("subscriber got orderChanged with status %s", status)
	case <-ctx.Done():
		t.Fatal("no orderChanged frame reached the subscriber")
	}

	T := caller.TraceID()
	var missing string
	for ctx.Err() == nil {
		if missing = checkTrace(exp.GetSpans(), T, caller.SpanID()); missing == "" {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("trace incomplete: %s\nspans:\n%s", missing, describe(exp.GetSpans()))
}

// checkTrace says what the trace of one placeOrder lacks ("" when nothing).
func checkTrace(spans tracetest.SpanStubs, T trace.TraceID, callerSpan trace.SpanID) string {
	find := func(ok func(s tracetest.SpanStub) bool) *tracetest.SpanStub {
		for i := range spans {
			if ok(spans[i]) {
				return &spans[i]
			}
		}
		return nil
	}
	childOf := func(name string, parent *tracetest.SpanStub) *tracetest.SpanStub {
		return find(func(s tracetest.SpanStub) bool {
			return strings.HasPrefix(s.Name, name) && s.SpanContext.TraceID() == parent.SpanContext.TraceID() &&
				s.Parent.SpanID() == parent.SpanContext.SpanID()
		})
	}
	links := func(s tracetest.SpanStub, id trace.TraceID) bool {
		for _, l := range s.Links {
			if l.SpanContext.TraceID() == id {
				return true
			}
		}
		return false
	}
	op := find(func(s tracetest.SpanStub) bool {
		return s.Name == "graphql mutation placeOrder" && s.SpanContext.TraceID() == T && s.Parent.SpanID() == callerSpan && s.Parent.IsRemote()
	})
	if op == nil {
		return "the GraphQL span continuing the caller's traceparent"
	}
	cmd := childOf("command placeOrder", op)
	if cmd == nil {
		return "the command span under the GraphQL span"
	}
	appendSpan := childOf("eventstore append", cmd)
	if appendSpan == nil {
		return "the append span under the command span"
	}
	saga := childOf("saga handle OrderPlaced", appendSpan)
	if saga == nil || !saga.Parent.IsRemote() {
		return "the saga span continuing the append's context from the message"
	}
	if childOf("command ", saga) == nil {
		return "a saga command under the saga span"
	}
	if find(func(s tracetest.SpanStub) bool { return s.Name == "relay publish" && links(s, T) }) == nil {
		return "a relay publish span linked to the trace"
	}
	for _, batch := range spans {
		if batch.Name != "projector batch" || !links(batch, T) {
			continue
		}
		if p := childOf("subscription push", &batch); p != nil && p.Parent.IsRemote() {
			return ""
		}
	}
	return "a subscription push continuing a projector batch linked to the trace"
}

func describe(spans tracetest.SpanStubs) string {
	var b strings.Builder
	for _, s := range spans {
		fmt.Fprintf(&b, "  %s trace %s span %s parent %s links %d\n", s.Name, s.SpanContext.TraceID(), s.SpanContext.SpanID(), s.Parent.SpanID(), len(s.Links))
	}
	return b.String()
}

// placeOrderTraced places an order of one unit of product, sending caller
// as the traceparent (as a gateway would), and returns the order's id.
func placeOrderTraced(t *testing.T, url, product string, caller trace.SpanContext) string {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": `mutation($p: ID!) { placeOrder(input: {customerId: "alice", lines: [{productId: $p, quantity: 1}]}) { id } }`,
		"variables": map[string]any{"p": product}})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("traceparent", fmt.Sprintf("00-%s-%s-01", caller.TraceID(), caller.SpanID()))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var out struct {
		Data struct{ PlaceOrder struct{ ID string } }
	}
	if err := json.NewDecoder(res.Body).Decode(&out); err != nil || out.Data.PlaceOrder.ID == "" {
		t.Fatalf("placeOrder: %v %+v", err, out)
	}
	return out.Data.PlaceOrder.ID
}

func connectWS(t *testing.T, ctx context.Context, url string) *websocket.Conn {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + adminToken}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "connection_init"}); err != nil {
		t.Fatal(err)
	}
	var ack struct{ Type string }
	if err := wsjson.Read(ctx, conn, &ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("connection_ack: %q %v", ack.Type, err)
	}
	return conn
}

// subscribeOrder subscribes to orderChanged(id) and sends the status of
// every frame pushed.
func subscribeOrder(t *testing.T, ctx context.Context, conn *websocket.Conn, id string) <-chan string {
	t.Helper()
	if err := wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!) { orderChanged(id: $id) { id status } }`, "variables": map[string]any{"id": id}}}); err != nil {
		t.Fatal(err)
	}
	frames := make(chan string, 16)
	go func() {
		for {
			var msg struct {
				Type    string
				Payload struct {
					Data struct{ OrderChanged struct{ Status string } }
				}
			}
			if err := wsjson.Read(ctx, conn, &msg); err != nil {
				return
			}
			if msg.Type == "next" {
				select {
				case frames <- msg.Payload.Data.OrderChanged.Status:
				default:
				}
			}
		}
	}()
	return frames
}
