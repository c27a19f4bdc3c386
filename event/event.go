// Package event owns the wire contract of the write side: the envelope that
// carries a stored event through Postgres, RabbitMQ and Elasticsearch, the
// payload of every event type, and the codec that reads old schema versions.
package event

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jsonv2 "github.com/go-json-experiment/json"
)

// Each stream type (one per aggregate) is declared in a file of its own
// with its payloads: product.go, review.go, order.go, customer.go.

// Metadata says why an event happened; it never affects state.
type Metadata struct {
	CommandID     string `json:"commandId,omitempty"`
	CorrelationID string `json:"correlationId,omitempty"`
	CausationID   string `json:"causationId,omitempty"`
	Actor         string `json:"actor,omitempty"`
	// TraceParent and TraceState are the W3C trace context of the append
	// that stored the event (empty when tracing is off): consumers continue
	// or link the trace. Operational, not history: read models drop them.
	TraceParent string `json:"traceparent,omitempty"`
	TraceState  string `json:"tracestate,omitempty"`
}

// WithoutTrace returns m without its trace context.
func (m Metadata) WithoutTrace() Metadata {
	m.TraceParent, m.TraceState = "", ""
	return m
}

// Envelope is one stored event as it travels: Postgres row, AMQP body,
// Elasticsearch doc.
type Envelope struct {
	ID            string          `json:"id"`       // UUID
	Position      int64           `json:"position"` // global position; 0 before append
	StreamID      string          `json:"streamId"`
	StreamType    string          `json:"streamType"` // StreamProduct, StreamReview, ...
	Version       int             `json:"version"`    // aggregate version, first event = 1
	Type          string          `json:"type"`       // e.g. "ProductCreated"
	SchemaVersion int             `json:"schemaVersion"`
	Data          json.RawMessage `json:"data"`
	Metadata      Metadata        `json:"metadata"`
	OccurredAt    time.Time       `json:"occurredAt"`
}

// Payload is the data of one event. Decode returns payloads as values
// (ProductCreated, not *ProductCreated), so consumers switch on value types.
type Payload interface{ EventType() string }

// Sentinel errors of Decode and Encode; check them with errors.Is.
var (
	// ErrUnknownType: the event type, or its schema version, is not known to
	// this build. A consumer should not ack such an event as handled: a newer
	// writer may have produced it.
	ErrUnknownType = errors.New("unknown event type")
	// ErrMalformed: the data does not parse as the declared type and version.
	ErrMalformed = errors.New("malformed event data")
)

// Payload decodes the envelope's data.
func (e Envelope) Payload() (Payload, error) {
	return Decode(e.Type, e.SchemaVersion, e.Data)
}

// Payloads decodes the payloads of a stream's events, in order; the first
// that cannot be read fails the whole with its stream and version.
func Payloads(h []Envelope) ([]Payload, error) {
	out := make([]Payload, len(h))
	for i, e := range h {
		p, err := e.Payload()
		if err != nil {
			return nil, fmt.Errorf("decode %s v%d: %w", e.StreamID, e.Version, err)
		}
		out[i] = p
	}
	return out, nil
}

// StreamTypeOf returns the stream type that p belongs to, or "" when p is
// not a known event.
func StreamTypeOf(p Payload) string {
	if p == nil {
		return ""
	}
	return schemas[p.EventType()].stream
}

// Encode returns what an envelope stores for p: its type, the current
// schema version of that type, and its JSON.
func Encode(p Payload) (eventType string, schemaVersion int, data []byte, err error) {
	return schemas.encode(p)
}

// Decode reads data written as schemaVersion of eventType, upcasting older
// versions to the current payload type.
func Decode(eventType string, schemaVersion int, data []byte) (Payload, error) {
	return schemas.decode(eventType, schemaVersion, data)
}

// upcaster rewrites the JSON of one schema version into the next.
type upcaster func(data []byte) ([]byte, error)

// schema is what the codec knows about one event type.
type schema struct {
	stream string
	decode func(data []byte) (Payload, error)
	// upcast[i] lifts version i+1 to i+2, so the current version is
	// len(upcast)+1. Changing a payload incompatibly means appending an
	// upcaster here, never rewriting stored events.
	upcast []upcaster
}

func (s schema) current() int { return len(s.upcast) + 1 }

// codec maps an event type to its schema. Kept as a value, not a registry,
// so tests can decode with a table of their own.
type codec map[string]schema

// schemas is filled by the stream files' declareStream calls while the
// package's variables are initialised, and never written after.
var schemas = codec{}

// declareStream adds the event types of one stream type to the codec and
// returns them, so each stream's file declares its events in one place.
func declareStream(stream string, types ...eventType) []eventType {
	for _, t := range types {
		schemas[t.name] = schema{stream: stream, decode: t.decode, upcast: t.upcast}
	}
	return types
}

// eventType is one entry of a stream's declaration.
type eventType struct {
	name   string
	decode func(data []byte) (Payload, error)
	upcast []upcaster
}

// typeOf declares payload type T, with the upcasters of its older schema
// versions.
func typeOf[T Payload](upcast ...upcaster) eventType {
	var zero T
	return eventType{name: zero.EventType(), decode: decodeAs[T], upcast: upcast}
}

func (c codec) encode(p Payload) (string, int, []byte, error) {
	if p == nil {
		return "", 0, nil, fmt.Errorf("encode nil payload: %w", ErrUnknownType)
	}
	t := p.EventType()
	s, ok := c[t]
	if !ok {
		return "", 0, nil, fmt.Errorf("encode %q: %w", t, ErrUnknownType)
	}
	data, err := json.Marshal(p)
	if err != nil {
		return "", 0, nil, fmt.Errorf("encode %s: %w", t, err)
	}
	return t, s.current(), data, nil
}

func (c codec) decode(eventType string, version int, data []byte) (Payload, error) {
	s, ok := c[eventType]
	if !ok {
		return nil, fmt.Errorf("decode %q: %w", eventType, ErrUnknownType)
	}
	if version < 1 || version > s.current() {
		return nil, fmt.Errorf("decode %s: schema version %d, this build knows 1 to %d: %w",
			eventType, version, s.current(), ErrUnknownType)
	}
	for v := version; v < s.current(); v++ {
		up, err := s.upcast[v-1](data)
		if err != nil {
			return nil, fmt.Errorf("decode %s: upcast version %d to %d: %w: %w", eventType, v, v+1, ErrMalformed, err)
		}
		data = up
	}
	p, err := s.decode(data)
	if err != nil {
		return nil, fmt.Errorf("decode %s version %d: %w: %w", eventType, version, ErrMalformed, err)
	}
	return p, nil
}

// decodeAs decodes data as T with the v2 decoder (go-json-experiment/json,
// what encoding/json/v2 is staged from): a third of encoding/json's time,
// and every consumer decodes one payload per event. It is stricter than
// encoding/json, never looser: names match exactly, a name given twice and
// invalid UTF-8 are errors. Data this build encoded (encoding/json, then
// jsonb) is never any of those.
func decodeAs[T Payload](data []byte) (Payload, error) {
	// Unmarshal accepts null as a zero struct; a stored event is always an object.
	if bytes.Equal(bytes.TrimSpace(data), []byte("null")) {
		return nil, errors.New("data is null, want an object")
	}
	var p T
	if err := jsonv2.Unmarshal(data, &p); err != nil {
		return nil, err
	}
	return p, nil
}
