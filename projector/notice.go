package projector

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
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
	// Lanes is how many lanes the projector's lanes are (0: the watermark
	// is the whole log's), and Lane the lane whose watermark this is: a
	// lane's watermark covers the events of that lane only.
	Lanes int `json:"lanes,omitempty"`
	Lane  int `json:"lane,omitempty"`
}

// Change is one document a batch changed; the query side's type, so a
// notice's changes go to the hub as they are.
type Change = query.Change

// DecodeNotice reads a notice body.
func DecodeNotice(body []byte) (Notice, error) {
	var n Notice
	if err := json.Unmarshal(body, &n); err != nil {
		return Notice{}, fmt.Errorf("decode projected notice: %w", err)
	}
	return n, nil
}

func (p *Projector) publish(ctx context.Context, n Notice) {
	if p.cfg.Notices == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	err := p.cfg.Notices.PublishNotice(ctx, n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.log.Warn("publish projected notice", "err", err, "changes", len(n.Changes))
		p.notice = &n
		return
	}
	p.notice = nil
}
