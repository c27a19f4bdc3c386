package graph

import (
	"context"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	coderws "github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// WebSocketOptions configures subscriptions over WebSocket.
type WebSocketOptions struct {
	// InitTimeout closes a connection that sends no connection_init in time
	// (4408 on graphql-transport-ws).
	InitTimeout time.Duration
	// KeepAlive is the interval of server pings (both protocols).
	KeepAlive time.Duration
	// MaxSubscriptions caps the subscriptions one connection may hold.
	MaxSubscriptions int
	// Origins lists Origin host patterns allowed besides the request's own
	// host; "*" allows any. A request without an Origin header (not from a
	// browser) is always allowed.
	Origins []string
}

// WebSocket returns the transport for both graphql-transport-ws and the
// legacy graphql-ws sub-protocols, and the operation middleware that caps
// subscriptions per connection.
func WebSocket(o WebSocketOptions) (transport.Websocket, graphql.OperationMiddleware) {
	accept := coderws.AcceptOptions{OriginPatterns: o.Origins, CompressionMode: coderws.CompressionDisabled}
	for _, p := range o.Origins {
		if p == "*" {
			accept.InsecureSkipVerify = true // any origin, as configured
		}
	}
	ws := transport.Websocket{
		Implementation:        initTimeoutCode{transport.CoderWebsocketImplementation{AcceptOptions: accept}},
		InitTimeout:           o.InitTimeout,
		KeepAlivePingInterval: o.KeepAlive,
		PingPongInterval:      o.KeepAlive,
		MissingPongOk:         true,
		InitFunc: func(ctx context.Context, _ transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			return context.WithValue(ctx, subsKey{}, new(atomic.Int64)), nil, nil
		},
	}
	limit := func(ctx context.Context, next graphql.OperationHandler) graphql.ResponseHandler {
		op := graphql.GetOperationContext(ctx)
		n, ok := ctx.Value(subsKey{}).(*atomic.Int64)
		if !ok || op.Operation == nil || op.Operation.Operation != ast.Subscription || o.MaxSubscriptions <= 0 {
			return next(ctx)
		}
		if n.Add(1) > int64(o.MaxSubscriptions) {
			n.Add(-1)
			return graphql.OneShot(&graphql.Response{Errors: gqlerror.List{{
				Message:    "too many subscriptions on this connection",
				Extensions: map[string]any{"code": "BAD_USER_INPUT"},
			}}})
		}
		go func() { <-ctx.Done(); n.Add(-1) }()
		return next(ctx)
	}
	return ws, limit
}

type subsKey struct{}

// initTimeoutCode reports an init timeout with the close code the
// graphql-transport-ws protocol names, 4408.
type initTimeoutCode struct {
	inner transport.WebsocketImplementation
}

func (i initTimeoutCode) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	conn, err := i.inner.Accept(w, r, o)
	if err != nil {
		return nil, err
	}
	return &codeConn{WebsocketConn: conn}, nil
}

type codeConn struct {
	transport.WebsocketConn
}

func (c *codeConn) WriteClose(code int, message string) error {
	if code == transport.WebsocketCloseProtocolError && message == "connection initialisation timeout" &&
		c.Subprotocol() == "graphql-transport-ws" {
		code, message = 4408, "Connection initialisation timeout"
	}
	return c.WebsocketConn.WriteClose(code, message)
}

// SetReadLimit keeps the payload limit working through the wrapper.
func (c *codeConn) SetReadLimit(limit int64) {
	if l, ok := c.WebsocketConn.(transport.WebsocketReadLimiter); ok {
		l.SetReadLimit(limit)
	}
}

// SetReadDeadline keeps ping/pong deadlines working through the wrapper.
func (c *codeConn) SetReadDeadline(t time.Time) error {
	if d, ok := c.WebsocketConn.(transport.WebsocketReadDeadliner); ok {
		return d.SetReadDeadline(t)
	}
	return nil
}
