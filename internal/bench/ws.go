package bench

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// subscribe opens one graphql-transport-ws connection watching product id;
// it returns once the subscription is sent and calls onName for every
// pushed name until ctx ends.
func subscribe(ctx context.Context, url, token, id string, onName func(string)) error {
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}}
	if token != "" {
		// In the upgrade's header, so the upgrade is an admin's (not rate limited).
		opts.HTTPHeader = http.Header{"Authorization": {"Bearer " + token}}
	}
	conn, _, err := websocket.Dial(dctx, url, opts)
	if err != nil {
		return err
	}
	conn.SetReadLimit(1 << 20)
	if err := wsjson.Write(dctx, conn, map[string]any{"type": "connection_init"}); err != nil {
		return err
	}
	var ack struct{ Type string }
	if err := wsjson.Read(dctx, conn, &ack); err != nil || ack.Type != "connection_ack" {
		return fmt.Errorf("no connection_ack (%q, %v)", ack.Type, err)
	}
	if err := wsjson.Write(dctx, conn, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!) { productChanged(id: $id) { id name version } }`, "variables": map[string]any{"id": id},
	}}); err != nil {
		return err
	}
	go func() {
		defer conn.CloseNow()
		for {
			var msg struct {
				Type    string `json:"type"`
				Payload struct {
					Data struct {
						ProductChanged struct{ Name string } `json:"productChanged"`
					} `json:"data"`
				} `json:"payload"`
			}
			if err := wsjson.Read(ctx, conn, &msg); err != nil {
				return
			}
			switch msg.Type {
			case "next":
				onName(msg.Payload.Data.ProductChanged.Name)
			case "ping":
				_ = wsjson.Write(ctx, conn, map[string]any{"type": "pong"})
			}
		}
	}()
	return nil
}
