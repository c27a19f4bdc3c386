package graph

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// expiringWebsocket gives each connection an expiry that connection_init
// sets and the connection's close reads: gqlgen ends a connection whose
// context ends with 1000, and the close code must say the token expired.
type expiringWebsocket struct {
	transport.Websocket
}

func (t expiringWebsocket) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	t.Websocket.Do(w, r.WithContext(context.WithValue(r.Context(), expiryKey{}, &expiry{})), exec)
}

type expiryKey struct{}

// expiry is when a connection's token expires; zero until init sets it.
type expiry struct {
	mu     sync.Mutex
	at     time.Time
	cancel context.CancelFunc
}

// expireAt returns ctx ending at exp, and records exp for the close code.
func expireAt(ctx context.Context, exp time.Time) context.Context {
	e, ok := ctx.Value(expiryKey{}).(*expiry)
	if !ok {
		return ctx
	}
	ctx, cancel := context.WithDeadline(ctx, exp)
	e.mu.Lock()
	e.at, e.cancel = exp, cancel
	e.mu.Unlock()
	return ctx
}

// endExpiry releases the expiry's timer when the connection closes first.
func endExpiry(ctx context.Context) {
	if e, ok := ctx.Value(expiryKey{}).(*expiry); ok {
		e.mu.Lock()
		if e.cancel != nil {
			e.cancel()
		}
		e.mu.Unlock()
	}
}

func (e *expiry) passed() bool {
	if e == nil {
		return false
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return !e.at.IsZero() && !time.Now().Before(e.at)
}
