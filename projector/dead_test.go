package projector

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// An event whose stream type has no read model is parked with the reason,
// never written as a (product) document, and the watermark passes it.
func TestHandleUnknownStreamTypeIsADeadLetter(t *testing.T) {
	dead := newMemDeadLetters()
	f := newFixture(t, func(c *Config) { c.DeadLetters = dead })
	l := f.log
	before := l.add(t, "p1", created("Kettle"))
	unknown := l.add(t, "c1", event.ProductRenamed{Name: "Ada"})
	unknown.Envelope.StreamType = "wishlist"
	after := l.add(t, "p2", created("Mug"))
	// The codec says the payload belongs to a "wishlist" stream, as it would
	// once such events exist.
	f.p.streamOf = func(pl event.Payload) string {
		if _, ok := pl.(event.ProductRenamed); ok {
			return "wishlist"
		}
		return event.StreamTypeOf(pl)
	}
	vs := f.handle(t, before, unknown, after)
	acked(t, vs)
	if !strings.Contains(vs[1].Reason, `stream type "wishlist" has no read model`) {
		t.Errorf("verdict = %+v, want the reason", vs[1])
	}
	for _, w := range f.store.writes {
		for _, x := range w {
			if x.Ref.ID == "c1" || x.Ref.ID == unknown.Envelope.ID {
				t.Errorf("wrote %s %s for an event of an unknown stream type", x.Ref.Kind, x.Ref.ID)
			}
		}
	}
	letters := dead.letters[Ref{Kind: "wishlist", ID: "c1"}]
	if len(letters) != 1 || letters[0].Record.Envelope.ID != unknown.Envelope.ID || !strings.Contains(letters[0].Reason, "no read model") {
		t.Fatalf("dead letters = %+v", dead.letters)
	}
	if f.p.Watermark() != after.Cursor {
		t.Errorf("watermark = %v, want %v: a dead letter is passed", f.p.Watermark(), after.Cursor)
	}
	if n := f.p.DeadLetterCount(); n != 1 {
		t.Errorf("dead letter count = %d, want 1", n)
	}
}

// A document the store refuses for good parks the events that made it and
// the later events of that document, in order; the others flow, the
// watermark passes; once the cause is gone, Replay brings the document to
// the fold of its events.
func TestHandleRefusedDocumentIsParkedAndReplayed(t *testing.T) {
	dead := newMemDeadLetters()
	f := newFixture(t, func(c *Config) { c.DeadLetters = dead })
	l := f.log
	refusing := true
	f.store.failWrite = func(_ int, ws []Write) ([]*WriteResult, error) {
		out := make([]*WriteResult, len(ws))
		for i, w := range ws {
			if refusing && w.Ref == (Ref{query.Products.Name, "p1"}) {
				out[i] = &WriteResult{Err: errors.New("product p1: 400 mapper_parsing_exception: failed to parse field [name]")}
			}
		}
		return out, nil
	}
	first := []event.Record{
		l.add(t, "p1", created("Kettle")),
		l.add(t, "p2", created("Mug")),
		l.add(t, "p1", event.ProductRenamed{Name: "Steel kettle"}),
	}
	vs := f.handle(t, first...)
	acked(t, vs)
	if !strings.Contains(vs[0].Reason, "mapper_parsing_exception") || !strings.Contains(vs[2].Reason, "mapper_parsing_exception") || vs[1].Reason != "" {
		t.Fatalf("verdicts = %+v", vs)
	}
	later := []event.Record{
		l.add(t, "r1", event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 4}), // touches p1: parked
		l.add(t, "p2", event.ProductRenamed{Name: "Big mug"}),                        // flows
		l.add(t, "p1", event.ProductPriceChanged{PriceCents: 1500}),                  // parked
	}
	vs = f.handle(t, later...)
	acked(t, vs)
	if !strings.Contains(vs[0].Reason, "earlier dead letters") || !strings.Contains(vs[2].Reason, "earlier dead letters") {
		t.Fatalf("later verdicts = %+v", vs)
	}
	if _, ok := f.store.docs[Ref{query.Products.Name, "p1"}]; ok {
		t.Error("p1 was written")
	}
	if _, ok := f.store.docs[Ref{query.Reviews.Name, "r1"}]; ok {
		t.Error("r1, parked behind p1, was written")
	}
	if p := f.store.product(t, "p2"); p.Name != "Big mug" {
		t.Errorf("p2 = %+v", p)
	}
	if w := f.p.Watermark(); w != later[2].Cursor {
		t.Errorf("watermark %v, want %v", w, later[2].Cursor)
	}
	letters := dead.letters[Ref{query.Products.Name, "p1"}]
	var ids []string
	for _, x := range letters {
		ids = append(ids, x.Record.Envelope.ID)
	}
	want := []string{first[0].Envelope.ID, first[2].Envelope.ID, later[0].Envelope.ID, later[2].Envelope.ID}
	if strings.Join(ids, ",") != strings.Join(want, ",") {
		t.Fatalf("dead letters of p1 = %v, want %v in order", ids, want)
	}

	replayWhileRefused(t, f, letters)
	refusing = false
	replayAll(t, f, letters)
	checkReplayedKettle(t, f)
}

// replayWhileRefused replays letters while the store still refuses p1: the
// replay reports and changes nothing.
func replayWhileRefused(t *testing.T, f *fixture, letters []Letter) {
	reasons, err := f.p.Replay(context.Background(), letters)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(reasons[0], "mapper_parsing_exception") {
		t.Fatalf("replay while refused = %q", reasons)
	}
}

// replayAll replays letters and wants every one of them handled.
func replayAll(t *testing.T, f *fixture, letters []Letter) {
	reasons, err := f.p.Replay(context.Background(), letters)
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range reasons {
		if r != "" {
			t.Fatalf("letter %d still dead: %s", i, r)
		}
	}
}

// checkReplayedKettle wants p1 to be the fold of its events and its review.
func checkReplayedKettle(t *testing.T, f *fixture) {
	got := f.store.product(t, "p1")
	got.Counted = nil // marks of the counted reviews, kept a while
	var wantP query.Product
	for _, r := range f.log.hist.streams["p1"] {
		pl, _ := r.Payload()
		query.ApplyProduct(&wantP, r, pl)
	}
	wantP.SetReviewStats("p1", query.StatsOf([]*query.Review{ptr(f.store.review(t, "r1"))}))
	a, _ := json.Marshal(got)
	b, _ := json.Marshal(wantP)
	if string(a) != string(b) {
		t.Errorf("p1 after replay:\n got %s\nwant %s", a, b)
	}
	if got.ReviewCount != 1 || got.Name != "Steel kettle" || got.PriceCents != 1500 {
		t.Errorf("p1 after replay = %+v", got)
	}
}

func ptr[T any](v T) *T { return &v }
