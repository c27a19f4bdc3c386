package rabbitmq

import (
	"encoding/json"
	"errors"
	"fmt"

	jsonv2 "github.com/go-json-experiment/json"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
)

// Header names on every event message. The body is the event.Envelope as JSON.
const (
	HeaderStreamID      = "stream-id"
	HeaderStreamType    = "stream-type"
	HeaderVersion       = "version"
	HeaderPosition      = "position"
	HeaderTx            = "tx"
	HeaderPrevTx        = "prev-tx"
	HeaderPrevPosition  = "prev-position"
	HeaderCausationID   = "causation-id"
	HeaderSchemaVersion = "schema-version"
)

// RoutingKey is "<streamType>.<eventType>", for example "product.ProductRenamed".
func RoutingKey(e event.Envelope) string { return e.StreamType + "." + e.Type }

// EncodeRecord turns a record into a persistent AMQP message.
func EncodeRecord(r event.Record) (amqp.Publishing, error) {
	body, err := json.Marshal(r.Envelope)
	if err != nil {
		return amqp.Publishing{}, fmt.Errorf("encode %s: %w", r.Envelope.ID, err)
	}
	e := r.Envelope
	m := amqp.Publishing{
		ContentType:   "application/json",
		DeliveryMode:  amqp.Persistent,
		MessageId:     e.ID,
		Type:          e.Type,
		Timestamp:     e.OccurredAt,
		CorrelationId: e.Metadata.CorrelationID,
		AppId:         "splitstream",
		Headers: amqp.Table{
			HeaderStreamID:      e.StreamID,
			HeaderStreamType:    e.StreamType,
			HeaderVersion:       int64(e.Version),
			HeaderPosition:      e.Position,
			HeaderTx:            int64(r.Cursor.Tx),
			HeaderPrevTx:        int64(r.Prev.Tx),
			HeaderPrevPosition:  r.Prev.Position,
			HeaderCausationID:   e.Metadata.CausationID,
			HeaderSchemaVersion: int64(e.SchemaVersion),
		},
		Body: body,
	}
	traceHeaders(m.Headers, e.Metadata)
	laneHeaders(m.Headers, r)
	return m, nil
}

// ErrBadMessage marks a message that can never be applied (bad JSON, missing
// headers); consumers dead-letter it rather than retry.
var ErrBadMessage = errors.New("malformed event message")

// DecodeRecord reads a record back from a delivery. The body is decoded
// with the v2 decoder, as event payloads are (event.Decode): a quarter of
// encoding/json's time, and stricter (exact names, no name twice, valid
// UTF-8), so what it refuses is dead-lettered as malformed.
func DecodeRecord(d amqp.Delivery) (event.Record, error) {
	var r event.Record
	if err := jsonv2.Unmarshal(d.Body, &r.Envelope); err != nil {
		return r, fmt.Errorf("%w: body: %v", ErrBadMessage, err)
	}
	if r.Envelope.ID == "" || r.Envelope.StreamID == "" || r.Envelope.Version < 1 || r.Envelope.Type == "" {
		return r, fmt.Errorf("%w: envelope lacks id, stream, version or type", ErrBadMessage)
	}
	tx, ok1 := int64Header(d.Headers, HeaderTx)
	prevTx, ok2 := int64Header(d.Headers, HeaderPrevTx)
	prevPos, ok3 := int64Header(d.Headers, HeaderPrevPosition)
	if !ok1 || !ok2 || !ok3 {
		return r, fmt.Errorf("%w: missing relay-order headers", ErrBadMessage)
	}
	r.Cursor = event.Cursor{Tx: uint64(tx), Position: r.Envelope.Position}
	r.Prev = event.Cursor{Tx: uint64(prevTx), Position: prevPos}
	if _, routed := d.Headers[HeaderLane]; routed {
		if err := decodeLane(d.Headers, &r); err != nil {
			return r, fmt.Errorf("%w: %v", ErrBadMessage, err)
		}
	}
	return r, nil
}

func int64Header(h amqp.Table, name string) (int64, bool) {
	switch v := h[name].(type) {
	case int64:
		return v, true
	case int32:
		return int64(v), true
	case int:
		return int64(v), true
	case int16:
		return int64(v), true
	case int8:
		return int64(v), true
	case uint8:
		return int64(v), true
	}
	return 0, false
}
