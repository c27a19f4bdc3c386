package query

import (
	"encoding/json"
	"time"

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
