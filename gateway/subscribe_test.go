package gateway

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/internal/testenv"
)

// flakyQueryService speaks graphql-transport-ws: it acks, records the
// connection_init payload and the upgrade's Authorization, answers a
// subscribe with one event, then drops the connection without a word.
func flakyQueryService(t *testing.T, got chan<- string) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"graphql-transport-ws"}})
		if err != nil {
			return
		}
		defer conn.CloseNow()
		ctx := r.Context()
		var init struct{ Payload map[string]any }
		if wsjson.Read(ctx, conn, &init) != nil {
			return
		}
		got <- r.Header.Get("Authorization") + " | " + init.Payload["authorization"].(string)
		_ = wsjson.Write(ctx, conn, map[string]any{"type": "connection_ack"})
		var sub struct{ ID string }
		if wsjson.Read(ctx, conn, &sub) != nil {
			return
		}
		_ = wsjson.Write(ctx, conn, map[string]any{"id": sub.ID, "type": "next", "payload": map[string]any{"data": map[string]any{"productChanged": map[string]any{"id": "p1"}}}})
		time.Sleep(100 * time.Millisecond)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// A WebSocket caller's connection_init payload reaches the query service
// as it was sent, and a subscription whose upstream drops ends with one
// SERVICE_UNAVAILABLE event.
func TestSubscriptionUpstreamDrops(t *testing.T) {
	got := make(chan string, 1)
	g, err := New(Options{CommandURL: "http://127.0.0.1:1", QueryURL: flakyQueryService(t, got), Log: testenv.Logger(t),
		QueryTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(graph.Middleware(1<<20, g))
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(srv.URL, "http")+"/", &websocket.DialOptions{
		Subprotocols: []string{"graphql-transport-ws"}, HTTPHeader: http.Header{"Authorization": {"Bearer from-header"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseNow()
	_ = wsjson.Write(ctx, conn, map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer from-init"}})
	var ack struct{ Type string }
	if err := wsjson.Read(ctx, conn, &ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("ack: %v %v", ack, err)
	}
	_ = wsjson.Write(ctx, conn, map[string]any{"id": "a", "type": "subscribe", "payload": map[string]any{"query": `subscription { productChanged(id: "p1") { id } }`}})
	if s := <-got; s != "Bearer from-init | Bearer from-init" {
		t.Errorf("upstream got authorization %q, want the connection_init payload's in both places", s)
	}
	var events []string
	for {
		var m struct {
			Type    string
			Payload json.RawMessage
		}
		if err := wsjson.Read(ctx, conn, &m); err != nil {
			t.Fatalf("after %v: %v", events, err)
		}
		if m.Type == "complete" {
			break
		}
		if m.Type == "next" {
			events = append(events, string(m.Payload))
		}
	}
	if len(events) != 2 || !strings.Contains(events[0], `"productChanged":{"id":"p1"}`) || !strings.Contains(events[1], CodeUnavailable) {
		t.Fatalf("events %v, want the upstream's one and then SERVICE_UNAVAILABLE", events)
	}
}
