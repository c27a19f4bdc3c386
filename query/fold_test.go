package query

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/splitstream/splitstream/event"
)

// 10,000 reviews of one product, each with a 400-character comment of
// '<' (six bytes each in Go's JSON; no comment reaches the product
// document, whatever its length), a tenth of them removed, delivered
// shuffled and twice: the product document stays under 64 KiB and its
// rating figures equal a count made straight from the events. Review
// documents are folded as the projector folds them (a gap is filled from
// the stream's history first); the product's figures are StatsOf the
// review documents.
func TestTenThousandReviewsKeepTheProductSmallAndExact(t *testing.T) {
	const n = 10_000
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	rh := drawReviews(t, n, at)
	reviews, counted := rh.deliver(t)
	all := make([]*Review, 0, len(reviews))
	for _, r := range reviews {
		all = append(all, r)
	}
	p := &Product{}
	ApplyProduct(p, event.Envelope{StreamID: "p1", Version: 1, Position: 1, OccurredAt: at},
		event.ProductCreated{Name: "Kettle", Category: "kitchen", PriceCents: 1000, Currency: "EUR", Stock: 5})
	p.SetReviewStats("p1", StatsOf(all))
	if p.ReviewCount != rh.wantCount || p.RatingSum != rh.wantSum || [5]int(p.RatingHistogram) != rh.wantHist {
		t.Errorf("product: %d reviews, sum %d, histogram %v; the events say %d, %d, %v",
			p.ReviewCount, p.RatingSum, p.RatingHistogram, rh.wantCount, rh.wantSum, rh.wantHist)
	}
	if len(p.LatestReviews) != LatestReviewsKept || p.LatestReviews[0].ID != "r09999" {
		t.Errorf("latest reviews = %+v, want the %d newest, r09999 first", p.LatestReviews, LatestReviewsKept)
	}
	// Summing again (a redelivery of everything) changes nothing.
	if p.SetReviewStats("p1", StatsOf(all)) {
		t.Error("summing the same reviews again changed the product")
	}
	// The counted product agrees with the sum over the review documents.
	if counted.LatestStale {
		counted.SetLatest(StatsOf(all).Latest) // the projector reads them again from the index
	}
	counted.Uncount(func(id string) int { return reviews[id].Version }) // the reviews are written
	if counted.ReviewCount != p.ReviewCount || counted.RatingSum != p.RatingSum || counted.AverageRating != p.AverageRating ||
		!slices.Equal(counted.RatingHistogram, p.RatingHistogram) || !slices.Equal(counted.LatestReviews, p.LatestReviews) || len(counted.Counted) != 0 {
		t.Errorf("counted product %+v\ndiffers from the sum over its reviews %+v", counted, p)
	}
	doc, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("product document with %d reviews (%d current): %d bytes", n, rh.wantCount, len(doc))
	if len(doc) >= 64<<10 {
		t.Errorf("product document is %d bytes, want under 64 KiB", len(doc))
	}
}

// reviewHistory is n reviews of product p1, every tenth removed again, with
// what their current reviews add up to.
type reviewHistory struct {
	history    map[string][]event.Envelope
	deliveries []event.Envelope // every event twice, shuffled
	wantCount  int
	wantSum    int
	wantHist   [5]int
}

func drawReviews(t *testing.T, n int, at time.Time) *reviewHistory {
	rng := rand.New(rand.NewPCG(1, 2))
	comment := strings.Repeat("<", 400)
	rh := &reviewHistory{history: map[string][]event.Envelope{}}
	var pos int64
	add := func(stream string, pl event.Payload) {
		typ, sv, data, err := event.Encode(pl)
		if err != nil {
			t.Fatal(err)
		}
		pos++
		e := event.Envelope{ID: fmt.Sprintf("ev%d", pos), Position: pos, StreamID: stream, StreamType: event.StreamReview,
			Version: len(rh.history[stream]) + 1, Type: typ, SchemaVersion: sv, Data: data, OccurredAt: at.Add(time.Duration(pos) * time.Second)}
		rh.history[stream] = append(rh.history[stream], e)
		rh.deliveries = append(rh.deliveries, e, e) // every event delivered twice
	}
	for i := range n {
		id := fmt.Sprintf("r%05d", i)
		rating := 1 + rng.IntN(5)
		add(id, event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: rating, Comment: comment})
		if i%10 == 0 {
			add(id, event.ReviewRemoved{ProductID: "p1", Rating: rating})
			continue
		}
		rh.wantCount, rh.wantSum = rh.wantCount+1, rh.wantSum+rating
		rh.wantHist[rating-1]++
	}
	rng.Shuffle(len(rh.deliveries), func(i, j int) { rh.deliveries[i], rh.deliveries[j] = rh.deliveries[j], rh.deliveries[i] })
	return rh
}

// deliver applies the deliveries to review documents, filling gaps from the
// history, and returns them with the product as the projector keeps it: a
// review event counts when it applies to its review document.
func (rh *reviewHistory) deliver(t *testing.T) (map[string]*Review, *Product) {
	reviews := map[string]*Review{}
	payloads := map[string]event.Payload{}
	counted := &Product{}
	apply := func(r *Review, e event.Envelope) Outcome {
		pl, ok := payloads[e.ID]
		if !ok {
			var err error
			if pl, err = e.Payload(); err != nil {
				t.Fatal(err)
			}
			payloads[e.ID] = pl
		}
		out := ApplyReview(r, e, pl)
		if out == Applied {
			counted.CountReview(e, pl)
		}
		return out
	}
	for _, e := range rh.deliveries {
		r := reviews[e.StreamID]
		if r == nil {
			r = &Review{}
			reviews[e.StreamID] = r
		}
		if apply(r, e) == Gap {
			for _, h := range rh.history[e.StreamID] {
				if h.Version > r.Version && h.Version < e.Version {
					apply(r, h)
				}
			}
			if apply(r, e) != Applied {
				t.Fatalf("%s v%d did not apply after filling the gap", e.StreamID, e.Version)
			}
		}
	}
	return reviews, counted
}

// Two reviews within one millisecond are ordered by id, as the index (whose
// dates keep milliseconds) orders them, not by their microseconds.
func TestSortLatestAtIndexPrecision(t *testing.T) {
	at := time.Date(2026, 12, 2, 2, 49, 55, 89_000_000, time.UTC)
	refs := []ReviewRef{
		{ID: "f7", CreatedAt: at.Add(518 * time.Microsecond)},
		{ID: "4c", CreatedAt: at.Add(156 * time.Microsecond)},
		{ID: "e3", CreatedAt: at.Add(time.Second)},
	}
	SortLatest(refs)
	if got := []string{refs[0].ID, refs[1].ID, refs[2].ID}; !slices.Equal(got, []string{"e3", "4c", "f7"}) {
		t.Fatalf("order %v, want [e3 4c f7]", got)
	}
}
