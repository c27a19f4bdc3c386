package projector

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/splitstream/splitstream/event"
)

// NoticeType is the AMQP type of a projected notice; the version changes
// only with an incompatible change of the JSON below.
const NoticeType = "splitstream.projected.v1"

// Notice is published to the fanout exchange "splitstream.projected" once
// per batch, after Elasticsearch has accepted every write of the batch: the
// documents the batch changed, and the applied watermark after it. One
// message per batch, not per document, because a batch of 500 events would
// otherwise cost 500+ publishes.
//
// JSON, for example:
//
//	{"changes":[
//	   {"kind":"review","id":"r1","productId":"p1","version":1,"position":913,
//	    "seqNo":4,"primaryTerm":1,"types":["ReviewAdded"]},
//	   {"kind":"product","id":"p1","version":7,"position":913,
//	    "seqNo":12,"primaryTerm":1,"types":["ReviewAdded"]}],
//	 "watermark":{"tx":8812,"position":913},
//	 "at":"2025-01-02T03:04:05.123Z"}
//
// A consumer reads the changed documents from the index (a real-time GET
// sees them at once; search sees them after the next refresh). Within one
// document, (primaryTerm, seqNo) grows with every write, so a subscriber
// can drop a notice older than the document it already sent. Notices are
// transient and may be lost (a broker restart); the next one carries a newer
// watermark, and the projector republishes the watermark while idle after a
// failed publish.
type Notice struct {
	Changes []Change `json:"changes"`
	// Watermark is the relay-order cursor up to which every event has been
	// applied (or dead-lettered), with no holes: a read-your-writes token
	// (event.ParseToken) is satisfied once it is not after the watermark.
	Watermark event.Cursor `json:"watermark"`
	At        time.Time    `json:"at"`
}

// Change is one document a batch changed.
type Change struct {
	Kind Kind   `json:"kind"` // "product", "review" or "order"
	ID   string `json:"id"`
	// ProductID is the product a review belongs to (reviews only), so
	// reviewAdded(productId) subscriptions can be routed without a read.
	ProductID string `json:"productId,omitempty"`
	// Version is the aggregate version the document is at. A product
	// changed only by one of its reviews keeps its version.
	Version int `json:"version"`
	// Position is the global position of the last event of this batch that
	// changed the document.
	Position    int64 `json:"position"`
	SeqNo       int64 `json:"seqNo"`
	PrimaryTerm int64 `json:"primaryTerm"`
	// Types are the event types that changed the document in this batch,
	// in order, without repeats ("ReviewAdded" on a review says it is new).
	Types []string `json:"types,omitempty"`
}

// After reports whether c is a newer write of its document than o.
func (c Change) After(o Change) bool {
	if c.PrimaryTerm != o.PrimaryTerm {
		return c.PrimaryTerm > o.PrimaryTerm
	}
	return c.SeqNo > o.SeqNo
}

// DecodeNotice reads a notice body.
func DecodeNotice(body []byte) (Notice, error) {
	var n Notice
	if err := json.Unmarshal(body, &n); err != nil {
		return Notice{}, fmt.Errorf("decode projected notice: %w", err)
	}
	return n, nil
}
