package graph

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"sync"
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
	// WriteTimeout bounds each message the server writes; a client that
	// stops reading is dropped when it passes.
	WriteTimeout time.Duration
	// MaxMessageBytes caps one client message (a subscribe with its query
	// and variables); a larger one closes the connection (1009).
	MaxMessageBytes int64
	// Origins lists Origin host patterns allowed besides the request's own
	// host; "*" allows any. A request without an Origin header (not from a
	// browser) is always allowed.
	Origins []string
	// Authenticate, if set, decides who a connection's caller is from its
	// connection_init payload and the upgrade request's context, and returns
	// the context for its operations and when its credentials expire (zero:
	// never). An error closes the socket with 4403 at once; at the expiry
	// the server closes it with 4403 (gqlgen alone checks only at init).
	Authenticate func(ctx context.Context, payload map[string]any) (context.Context, time.Time, error)
}

// CloseForbidden is the close code for a refused or expired token, as
// graphql-transport-ws names it.
const CloseForbidden = 4403

// WebSocket returns the transport for both graphql-transport-ws and the
// legacy graphql-ws sub-protocols, and the operation middleware that caps
// subscriptions per connection.
func WebSocket(o WebSocketOptions) (graphql.Transport, graphql.OperationMiddleware) {
	accept := coderws.AcceptOptions{OriginPatterns: o.Origins, CompressionMode: coderws.CompressionDisabled}
	for _, p := range o.Origins {
		if p == "*" {
			accept.InsecureSkipVerify = true // any origin, as configured
		}
	}
	readLimit := o.MaxMessageBytes
	ws := transport.Websocket{
		Implementation:        initTimeoutCode{inner: transport.CoderWebsocketImplementation{AcceptOptions: accept}, writeTimeout: o.WriteTimeout},
		PayloadReadLimit:      &readLimit,
		InitTimeout:           o.InitTimeout,
		KeepAlivePingInterval: o.KeepAlive,
		PingPongInterval:      o.KeepAlive,
		MissingPongOk:         true,
		InitFunc: func(ctx context.Context, payload transport.InitPayload) (context.Context, *transport.InitPayload, error) {
			ctx = context.WithValue(ctx, subsKey{}, new(atomic.Int64))
			if o.Authenticate == nil {
				return ctx, nil, nil
			}
			ctx, exp, err := o.Authenticate(ctx, payload)
			if err != nil {
				return transport.WithWebsocketCloseCode(ctx, CloseForbidden), nil, err
			}
			if !exp.IsZero() {
				ctx = expireAt(ctx, exp)
			}
			return ctx, nil, nil
		},
		CloseFunc: func(ctx context.Context, _ int) { endExpiry(ctx) },
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
		context.AfterFunc(ctx, func() { n.Add(-1) })
		return next(ctx)
	}
	return expiringWebsocket{ws}, limit
}

type subsKey struct{}

// initTimeoutCode reports an init timeout with the close code the
// graphql-transport-ws protocol names, 4408, and puts a deadline on every
// write (gqlgen's coder adapter writes with context.Background, so a
// client that stops reading would hold its writer forever).
type initTimeoutCode struct {
	inner        transport.WebsocketImplementation
	writeTimeout time.Duration
}

func (i initTimeoutCode) Accept(w http.ResponseWriter, r *http.Request, o transport.WebsocketAcceptOptions) (transport.WebsocketConn, error) {
	hw := &hijackWriter{ResponseWriter: w}
	conn, err := i.inner.Accept(hw, r, o)
	if err != nil {
		return nil, err
	}
	exp, _ := r.Context().Value(expiryKey{}).(*expiry)
	return &codeConn{WebsocketConn: conn, expiry: exp, net: hw.conn, writeTimeout: i.writeTimeout}, nil
}

// hijackWriter keeps the hijacked connection, so writes can have
// deadlines, and clears any deadline the HTTP server's timeouts left on it
// (Go's server does so today; http.Hijacker leaves it to the caller): from
// here on the WebSocket's keep-alive and write deadlines bound it.
type hijackWriter struct {
	http.ResponseWriter
	conn net.Conn
}

func (h *hijackWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(h.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	_ = c.SetDeadline(time.Time{})
	h.conn = c
	return c, brw, nil
}

// Unwrap lets http.ResponseController reach the real writer.
func (h *hijackWriter) Unwrap() http.ResponseWriter { return h.ResponseWriter }

type codeConn struct {
	transport.WebsocketConn
	expiry       *expiry
	net          net.Conn
	writeTimeout time.Duration
	mu           sync.Mutex // one deadline at a time; gqlgen serialises its writes, this keeps it true
}

// WriteJSON writes one message under the write deadline. A failed write
// closes the connection: gqlgen only reports write errors and would go on
// writing into a stream with half a frame in it, and the close is what
// ends its read loop and so the connection's handler.
func (c *codeConn) WriteJSON(v any) error {
	if c.net == nil || c.writeTimeout <= 0 {
		return c.WebsocketConn.WriteJSON(v)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	_ = c.net.SetWriteDeadline(time.Now().Add(c.writeTimeout))
	err := c.WebsocketConn.WriteJSON(v)
	if err != nil {
		_ = c.net.Close()
		return err
	}
	_ = c.net.SetWriteDeadline(time.Time{})
	return nil
}

func (c *codeConn) WriteClose(code int, message string) error {
	if code == transport.WebsocketCloseProtocolError && message == "connection initialisation timeout" &&
		c.Subprotocol() == "graphql-transport-ws" {
		code, message = 4408, "Connection initialisation timeout"
	}
	if c.expiry.passed() {
		code, message = CloseForbidden, "Forbidden: token expired"
	}
	if code == CloseForbidden && message == "terminated" {
		message = "Forbidden" // a refused connection_init
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
