package graph_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
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

// authServer accepts connection_init payloads {"ttl": "<duration>"} and
// refuses any other.
func authServer(t *testing.T) string {
	t.Helper()
	ws, limit := graph.WebSocket(graph.WebSocketOptions{InitTimeout: 5 * time.Second, KeepAlive: time.Second, MaxSubscriptions: 2,
		Authenticate: func(ctx context.Context, p map[string]any) (context.Context, time.Time, error) {
			ttl, err := time.ParseDuration(p["ttl"].(string))
			if err != nil {
				return ctx, time.Time{}, errors.New("forbidden: bad token")
			}
			return ctx, time.Now().Add(ttl), nil
		}})
	srv := graph.NewServer(read.NewExecutableSchema(read.Config{Resolvers: &read.Resolver{}}), graph.Options{
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Transports: []graphql.Transport{ws}, AroundOperations: limit,
	})
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return "ws" + strings.TrimPrefix(ts.URL, "http")
}

// closeCode sends connection_init with payload and returns the close code
// the server ends with, and when, reading until then.
func closeCode(t *testing.T, url, protocol string, payload map[string]any) (websocket.StatusCode, time.Time) {
	t.Helper()
	c, err := dial(url, "", protocol)
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := wsjson.Write(ctx, c, map[string]any{"type": "connection_init", "payload": payload}); err != nil {
		t.Fatal(err)
	}
	for {
		var msg map[string]any
		if err := wsjson.Read(ctx, c, &msg); err != nil {
			return websocket.CloseStatus(err), time.Now()
		}
	}
}

func TestWebSocketRefusedTokenCloses4403(t *testing.T) {
	url := authServer(t)
	for _, protocol := range []string{"graphql-transport-ws", "graphql-ws"} {
		if code, _ := closeCode(t, url, protocol, map[string]any{"ttl": "nonsense"}); code != graph.CloseForbidden {
			t.Errorf("%s: closed with %v, want 4403", protocol, code)
		}
	}
}

// gqlgen checks credentials only at connection_init; the server must also
// close the socket, with 4403, once they expire.
func TestWebSocketClosesAtExpiry(t *testing.T) {
	url := authServer(t)
	for _, protocol := range []string{"graphql-transport-ws", "graphql-ws"} {
		start := time.Now()
		code, at := closeCode(t, url, protocol, map[string]any{"ttl": "1s"})
		if code != graph.CloseForbidden {
			t.Errorf("%s: closed with %v, want 4403", protocol, code)
		}
		if at.Sub(start) < time.Second {
			t.Errorf("%s: closed after %v, before the expiry", protocol, at.Sub(start))
		}
	}
}
