package graph_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"

	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/graph/read"
)

func wsServer(t *testing.T, origins []string) string {
	t.Helper()
	ws, limit := graph.WebSocket(graph.WebSocketOptions{InitTimeout: 200 * time.Millisecond, KeepAlive: time.Second, MaxSubscriptions: 2, Origins: origins})
	srv := graph.NewServer(read.NewExecutableSchema(read.Config{Resolvers: &read.Resolver{}}), graph.Options{
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Transports: []graphql.Transport{ws}, AroundOperations: limit,
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return "ws" + strings.TrimPrefix(ts.URL, "http")
}

func dial(url, origin, protocol string) (*websocket.Conn, error) {
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: h, Subprotocols: []string{protocol}})
	return c, err
}

func TestWebSocketOrigins(t *testing.T) {
	strict := wsServer(t, nil)
	if _, err := dial(strict, "https://evil.example", "graphql-transport-ws"); err == nil {
		t.Fatal("a foreign origin was accepted with no origins configured")
	}
	c, err := dial(strict, "", "graphql-transport-ws")
	if err != nil {
		t.Fatalf("a client without Origin was refused: %v", err)
	}
	c.CloseNow()
	open := wsServer(t, []string{"*"})
	c, err = dial(open, "https://elsewhere.example", "graphql-transport-ws")
	if err != nil {
		t.Fatalf("* did not allow a foreign origin: %v", err)
	}
	c.CloseNow()
}

func TestWebSocketInitTimeoutCloses4408(t *testing.T) {
	url := wsServer(t, nil)
	c, err := dial(url, "", "graphql-transport-ws")
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var msg map[string]any
	err = wsjson.Read(ctx, c, &msg)
	if code := websocket.CloseStatus(err); code != 4408 {
		t.Fatalf("closed with %v (%v), want 4408", code, err)
	}
}
