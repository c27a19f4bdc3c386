package query

import (
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/splitstream/splitstream/event"
)

// Events declares event documents: every event, for history and time
// travel, in the "events" read model. They have no stream of their own:
// the projector writes one per record (EventDoc), once.
var Events = declare[Event](Kind{
	Name:    "event",
	Index:   "events",
	Rebuilt: true,
}, nil, func(*Event) int { return 0 })

// Event is the events index document: every event, for history and time travel.
type Event struct {
	ID         string `json:"id"`
	StreamID   string `json:"streamId"`
	StreamType string `json:"streamType"`
	// ProductID is the product an event concerns (its own stream, or the
	// product a review is about), so a product's history includes its reviews.
	ProductID     string          `json:"productId,omitempty"`
	Version       int             `json:"version"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schemaVersion"`
	Position      int64           `json:"position"`
	Tx            uint64          `json:"tx"`
	OccurredAt    time.Time       `json:"occurredAt"`
	Data          json.RawMessage `json:"data"`
	Metadata      event.Metadata  `json:"metadata"`
}

// EventDoc turns a record into its events-index document.
func EventDoc(r event.Record, p event.Payload) Event {
	e := r.Envelope
	doc := Event{
		ID: e.ID, StreamID: e.StreamID, StreamType: e.StreamType, Version: e.Version, Type: e.Type,
		SchemaVersion: e.SchemaVersion, Position: e.Position, Tx: r.Cursor.Tx, OccurredAt: e.OccurredAt,
		Data: e.Data, Metadata: e.Metadata.WithoutTrace(),
	}
	if pid := reviewedProduct(p); pid != "" {
		doc.ProductID = pid
	} else if e.StreamType == event.StreamProduct {
		doc.ProductID = e.StreamID
	}
	return doc
}

// AppendJSON appends the document's JSON to b: what encoding/json makes of
// it, field for field, without its reflection (the projector and the
// rebuild encode one per event).
func (d Event) AppendJSON(b []byte) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = appendString(b, d.ID)
	b = append(b, `,"streamId":`...)
	b = appendString(b, d.StreamID)
	b = append(b, `,"streamType":`...)
	b = appendString(b, d.StreamType)
	if d.ProductID != "" {
		b = append(b, `,"productId":`...)
		b = appendString(b, d.ProductID)
	}
	b = append(b, `,"version":`...)
	b = strconv.AppendInt(b, int64(d.Version), 10)
	b = append(b, `,"type":`...)
	b = appendString(b, d.Type)
	b = append(b, `,"schemaVersion":`...)
	b = strconv.AppendInt(b, int64(d.SchemaVersion), 10)
	b = append(b, `,"position":`...)
	b = strconv.AppendInt(b, d.Position, 10)
	b = append(b, `,"tx":`...)
	b = strconv.AppendUint(b, d.Tx, 10)
	b = append(b, `,"occurredAt":`...)
	at, err := d.OccurredAt.MarshalJSON()
	if err != nil {
		return nil, err
	}
	b = append(b, at...)
	b = append(b, `,"data":`...)
	if len(d.Data) == 0 {
		b = append(b, "null"...)
	} else {
		var err error
		if b, err = jsontext.AppendFormat(b, d.Data, compactData...); err != nil {
			return nil, fmt.Errorf("event %s data: %w", d.ID, err)
		}
	}
	b = append(b, `,"metadata":{`...)
	m, first := d.Metadata, true
	for _, f := range [...]struct{ name, v string }{{"commandId", m.CommandID}, {"correlationId", m.CorrelationID},
		{"causationId", m.CausationID}, {"actor", m.Actor}, {"traceparent", m.TraceParent}, {"tracestate", m.TraceState}} {
		if f.v == "" {
			continue
		}
		if !first {
			b = append(b, ',')
		}
		first = false
		b = append(b, '"')
		b = append(b, f.name...)
		b = append(b, `":`...)
		b = appendString(b, f.v)
	}
	return append(b, "}}"...), nil
}

// compactData makes jsontext.AppendFormat do what json.Compact does (drop
// the whitespace between tokens, check the value, leave strings and
// numbers as they are) in under half its time.
var compactData = []jsontext.Options{
	jsontext.AllowDuplicateNames(true), jsontext.AllowInvalidUTF8(true), jsontext.PreserveRawStrings(true),
}

// appendString appends s as a JSON string: as is between quotes when it is
// printable ASCII with nothing to escape (ids, type names), else as
// encoding/json quotes it.
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			q, _ := json.Marshal(s)
			return append(b, q...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
