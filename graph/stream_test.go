package graph_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/graph/read"
	"github.com/splitstream/splitstream/query"
)

// bigIndex answers every product get with a new revision of a 64 KiB product.
type bigIndex struct {
	query.Index
	rev *atomic.Int64
}

func (b bigIndex) Get(_ context.Context, _ *query.Kind, id string) (*query.Doc, error) {
	return &query.Doc{ID: id, Value: &query.Product{ID: id, Name: strings.Repeat("n", 64<<10), Version: 1, Status: "ACTIVE"}, Rev: b.rev.Add(1)}, nil
}

// streamServer serves subscriptions from a hub of big products over
// WebSocket and SSE with a short write timeout, and reports on ended when
// a request's handler returns.
func streamServer(t *testing.T) (*query.Hub, string, <-chan struct{}) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	hub, err := query.NewHub(bigIndex{rev: new(atomic.Int64)}, log, prometheus.NewRegistry(), 1<<20, 100)
	if err != nil {
		t.Fatal(err)
	}
	ws, limit := graph.WebSocket(graph.WebSocketOptions{InitTimeout: 5 * time.Second, KeepAlive: time.Hour, MaxSubscriptions: 2,
		WriteTimeout: 300 * time.Millisecond, MaxMessageBytes: 64 << 10})
	srv := graph.NewServer(read.NewExecutableSchema(read.Config{Resolvers: &read.Resolver{Changes: hub}}), graph.Options{
		Log: log, Transports: []graphql.Transport{ws, transport.SSE{}}, AroundOperations: limit,
	})
	ended := make(chan struct{}, 16)
	h := graph.Middleware(1<<20, graph.Limit(graph.StreamLimits{Timeout: time.Minute, WriteTimeout: 300 * time.Millisecond, MaxStreams: 1}, srv))
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.ServeHTTP(w, r)
		ended <- struct{}{}
	}))
	t.Cleanup(ts.Close)
	return hub, ts.URL, ended
}

// pushUntil publishes changes to product p until a handler ends, or fails
// the test after a minute (a bound on the test, not a speed goal).
func pushUntil(t *testing.T, hub *query.Hub, ended <-chan struct{}) {
	t.Helper()
	deadline := time.After(time.Minute)
	for {
		select {
		case <-ended:
			return
		case <-deadline:
			t.Fatal("the server still holds a client that stopped reading")
		case <-time.After(time.Millisecond):
			hub.Publish(context.Background(), []query.Change{{Kind: query.Products.Name, ID: "p"}})
		}
	}
}

// A WebSocket client that stops reading is dropped: the write deadline
// fails the blocked write and the connection's handler returns.
func TestWebSocketDropsAClientThatStopsReading(t *testing.T) {
	hub, url, ended := streamServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 30)
	if err := wsjson.Write(ctx, c, map[string]any{"type": "connection_init"}); err != nil {
		t.Fatal(err)
	}
	var ack struct{ Type string }
	if err := wsjson.Read(ctx, c, &ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("ack: %v %v", ack, err)
	}
	if err := wsjson.Write(ctx, c, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription { productChanged(id: "p") { id name } }`}}); err != nil {
		t.Fatal(err)
	}
	// From here the client reads nothing.
	pushUntil(t, hub, ended)
}

// The same for SSE: the stream's per-write deadline ends it.
func TestSSEDropsAClientThatStopsReading(t *testing.T) {
	hub, url, ended := streamServer(t)
	body, _ := json.Marshal(map[string]any{"query": `subscription { productChanged(id: "p") { id name } }`})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("status %s, content type %q", res.Status, res.Header.Get("Content-Type"))
	}
	// A second stream is over MaxStreams (1): 429 RATE_LIMITED.
	req2, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req2.Header = req.Header.Clone()
	res2, err := http.DefaultClient.Do(req2)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(res2.Body)
	res2.Body.Close()
	if res2.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(raw), "RATE_LIMITED") {
		t.Fatalf("second stream: %s %s, want 429 RATE_LIMITED", res2.Status, raw)
	}
	<-ended // the refused request's handler
	pushUntil(t, hub, ended)
}

// A WebSocket message over MaxMessageBytes closes the socket with 1009.
func TestWebSocketRefusesAnOversizedMessage(t *testing.T) {
	_, url, _ := streamServer(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, _, err := websocket.Dial(ctx, "ws"+strings.TrimPrefix(url, "http"), &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	_ = wsjson.Write(ctx, c, map[string]any{"type": "connection_init"})
	var ack struct{ Type string }
	if err := wsjson.Read(ctx, c, &ack); err != nil {
		t.Fatal(err)
	}
	_ = wsjson.Write(ctx, c, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": "{" + strings.Repeat(" __typename", 10_000) + "}"}})
	var msg map[string]any
	err = wsjson.Read(ctx, c, &msg)
	if code := websocket.CloseStatus(err); code != websocket.StatusMessageTooBig {
		t.Fatalf("got %v / %v, want close 1009", msg, err)
	}
}
