package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/coder/websocket"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/splitstream/splitstream/graph"
)

// subscriptionBuffer is how many upstream events wait for a slow caller;
// past it the gateway stops reading the upstream socket, and the query
// service's write timeout drops the subscription.
const subscriptionBuffer = 16

// wsMessage is a graphql-transport-ws message.
type wsMessage struct {
	ID      string          `json:"id,omitempty"`
	Type    string          `json:"type"`
	Payload json.RawMessage `json:"payload,omitempty"`
}

// subscribe runs op on the query service over its own graphql-transport-ws
// socket, opened with the caller's connection_init payload (a WebSocket
// caller's, as it sent it; {} for SSE) and headers, and relays its events
// until either side ends.
func (g *Gateway) subscribe(ctx context.Context, op *graphql.OperationContext) graphql.ResponseHandler {
	u := g.query
	events := make(chan *result, subscriptionBuffer)
	_, err := u.breaker.Execute(func() (*result, error) {
		return nil, u.openSubscription(ctx, op, events)
	})
	if err != nil {
		if ctx.Err() == nil {
			u.log.WarnContext(ctx, "gateway: upstream unavailable", "upstream", u.name, "err", err, "request_id", graph.RequestID(ctx))
		}
		return once(u.unavailable())
	}
	return func(ctx context.Context) *graphql.Response {
		select {
		case r, ok := <-events:
			if !ok {
				return nil
			}
			return r.response(ctx)
		case <-ctx.Done():
			return nil
		}
	}
}

// openSubscription dials, initialises and subscribes within the connect
// timeout twice over, then reads the socket in its own goroutine.
func (u *upstream) openSubscription(ctx context.Context, op *graphql.OperationContext, events chan<- *result) error {
	setup, cancel := context.WithTimeout(ctx, 2*u.dialer.Timeout)
	defer cancel()
	hdr := upstreamHeaders(ctx, op)
	conn, _, err := websocket.Dial(setup, u.wsURL, &websocket.DialOptions{
		HTTPClient: u.ws, HTTPHeader: hdr, Subprotocols: []string{"graphql-transport-ws"},
	})
	if err != nil {
		return fmt.Errorf("dial: %w", err)
	}
	conn.SetReadLimit(maxUpstreamBytes)
	payload := transport.GetInitPayload(ctx)
	if payload == nil {
		payload = transport.InitPayload{}
	}
	if err := writeMessage(setup, conn, "", "connection_init", payload); err != nil {
		conn.CloseNow()
		return err
	}
	if err := awaitAck(setup, conn); err != nil {
		conn.CloseNow()
		return err
	}
	if err := writeMessage(setup, conn, "1", "subscribe", requestOf(op)); err != nil {
		conn.CloseNow()
		return err
	}
	stop := context.AfterFunc(ctx, func() {
		wctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = writeMessage(wctx, conn, "1", "complete", nil)
		conn.Close(websocket.StatusNormalClosure, "")
	})
	go func() {
		defer close(events)
		defer stop()
		defer conn.CloseNow()
		u.relay(ctx, conn, events)
	}()
	return nil
}

func awaitAck(ctx context.Context, conn *websocket.Conn) error {
	for {
		m, err := readMessage(ctx, conn)
		if err != nil {
			return fmt.Errorf("connection_init: %w", err)
		}
		switch m.Type {
		case "connection_ack":
			return nil
		case "ping":
			if err := writeMessage(ctx, conn, "", "pong", nil); err != nil {
				return err
			}
		}
	}
}

// relay passes events on until the upstream completes, fails or goes.
func (u *upstream) relay(ctx context.Context, conn *websocket.Conn, events chan<- *result) {
	send := func(r *result) bool {
		select {
		case events <- r:
			return true
		case <-ctx.Done():
			return false
		}
	}
	for {
		m, err := readMessage(ctx, conn)
		if err != nil {
			if ctx.Err() == nil {
				u.log.WarnContext(ctx, "gateway: subscription upstream ended", "upstream", u.name, "err", err, "request_id", graph.RequestID(ctx))
				send(u.unavailable())
			}
			return
		}
		switch m.Type {
		case "next":
			var r result
			if err := json.Unmarshal(m.Payload, &r); err != nil || !send(&r) {
				return
			}
		case "error":
			var errs gqlerror.List
			if err := json.Unmarshal(m.Payload, &errs); err != nil || len(errs) == 0 {
				errs = u.unavailable().Errors
			}
			send(&result{Errors: errs})
			return
		case "complete":
			return
		case "ping":
			_ = writeMessage(ctx, conn, "", "pong", nil)
		}
	}
}

func readMessage(ctx context.Context, conn *websocket.Conn) (wsMessage, error) {
	var m wsMessage
	_, data, err := conn.Read(ctx)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(data, &m); err != nil {
		return m, fmt.Errorf("not a graphql-transport-ws message: %w", err)
	}
	return m, nil
}

func writeMessage(ctx context.Context, conn *websocket.Conn, id, typ string, payload any) error {
	m := wsMessage{ID: id, Type: typ}
	if payload != nil {
		b, err := json.Marshal(payload)
		if err != nil {
			return err
		}
		m.Payload = b
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return conn.Write(ctx, websocket.MessageText, b)
}
