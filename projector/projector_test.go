package projector_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// TestProjectionEqualsFold runs 1,000 random commands of every kind on the
// real event store, then projects the log into real Elasticsearch three
// ways — in relay order, with every record delivered twice, and shuffled
// — and checks each time that every document equals the fold of its
// events read back from Postgres.
func TestProjectionEqualsFold(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	newCommander(w.svc, 42).run(t, ctx, 1000, 8)
	recs := readLog(t, w.pool)
	seen := map[string]bool{}
	for _, r := range recs {
		seen[r.Envelope.Type] = true
	}
	for _, typ := range []string{"ProductCreated", "ProductRenamed", "ProductDescriptionChanged", "ProductPriceChanged",
		"ProductRestocked", "ProductDiscontinued", "StockReserved", "StockReleased", "ReviewAdded", "ReviewRemoved",
		"OrderPlaced", "OrderConfirmed", "OrderRejected", "OrderCancelled"} {
		if !seen[typ] {
			t.Errorf("the commands produced no %s", typ)
		}
	}
	last := recs[len(recs)-1].Cursor

	t.Run("in order", func(t *testing.T) {
		rm := newReadModels(t)
		p, _ := newProjector(t, w, rm, nil)
		start := time.Now()
		handle(t, p, recs, 500)
		took := time.Since(start)
		t.Logf("projected %d events in %s: %.0f events/s", len(recs), took.Round(time.Millisecond), float64(len(recs))/took.Seconds())
		verify(t, w.pool, rm)
		if p.Watermark() != last || checkpointOf(t, rm) != last {
			t.Errorf("watermark %v, checkpoint %v; want %v", p.Watermark(), checkpointOf(t, rm), last)
		}
	})

	t.Run("every record twice", func(t *testing.T) {
		rm := newReadModels(t)
		p, _ := newProjector(t, w, rm, nil)
		rng := rand.New(rand.NewPCG(7, 8))
		var deliveries, later []event.Record
		for i, r := range recs {
			deliveries = append(deliveries, r)
			if rng.IntN(2) == 0 {
				deliveries = append(deliveries, r) // redelivered at once
			} else {
				later = append(later, r) // redelivered after others
			}
			if i%300 == 299 {
				deliveries, later = append(deliveries, later...), nil
			}
		}
		deliveries = append(deliveries, later...)
		if len(deliveries) != 2*len(recs) {
			t.Fatalf("%d deliveries for %d records", len(deliveries), len(recs))
		}
		handle(t, p, deliveries, 500)
		verify(t, w.pool, rm)
		if p.Watermark() != last {
			t.Errorf("watermark %v, want %v", p.Watermark(), last)
		}
	})

	t.Run("shuffled", func(t *testing.T) {
		rm := newReadModels(t)
		p, _ := newProjector(t, w, rm, nil)
		shuffled := append([]event.Record(nil), recs...)
		rand.New(rand.NewPCG(9, 10)).Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
		// Small batches: most gaps lie across batches, and are filled
		// from the event store.
		handle(t, p, shuffled, 100)
		verify(t, w.pool, rm)
		if p.Watermark() != last || checkpointOf(t, rm) != last {
			t.Errorf("watermark %v, checkpoint %v; want %v", p.Watermark(), checkpointOf(t, rm), last)
		}
	})
}

// 300 reviews of 4,000 '<' characters each (six bytes apiece in Go's JSON:
// several megabytes if the product carried them) on one product, projected
// into real Elasticsearch with every record delivered twice and shuffled:
// the product document stays small, its rating equals the review streams'
// (verify), and reviews read the product's current name after a rename.
func TestLongReviewsKeepTheProductSmall(t *testing.T) {
	w := newWorld(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	m := command.Meta{}
	res, err := w.svc.CreateProduct(ctx, m, command.CreateProduct{Name: "Kettle", Description: "d", Category: "c", PriceCents: 100, Currency: "EUR", Stock: 5})
	if err != nil {
		t.Fatal(err)
	}
	pid := res.ID
	comment := strings.Repeat("<", 4000)
	var reviews []string
	for i := range 300 {
		r, err := w.svc.AddReview(ctx, m, command.AddReview{ProductID: pid, Author: fmt.Sprintf("a%d", i), Rating: 1 + i%5, Comment: comment})
		if err != nil {
			t.Fatal(err)
		}
		reviews = append(reviews, r.ID)
	}
	for _, id := range reviews[:30] {
		if _, err := w.svc.RemoveReview(ctx, id, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := w.svc.ChangeProduct(ctx, pid, m, command.RenameProduct{Name: "Steel kettle"}); err != nil {
		t.Fatal(err)
	}
	recs := readLog(t, w.pool)
	deliveries := append(append([]event.Record(nil), recs...), recs...)
	rand.New(rand.NewPCG(3, 4)).Shuffle(len(deliveries), func(i, j int) { deliveries[i], deliveries[j] = deliveries[j], deliveries[i] })

	rm := newReadModels(t)
	p, _ := newProjector(t, w, rm, nil)
	handle(t, p, deliveries, 100)
	verify(t, w.pool, rm)

	stored, err := rm.docs.Get(ctx, []projector.Ref{{Kind: query.Products.Name, ID: pid}})
	if err != nil {
		t.Fatal(err)
	}
	var got query.Product
	mustDecode(t, stored[0].Source, &got)
	t.Logf("product document with 300 reviews of 4,000 '<': %d bytes", len(stored[0].Source))
	if len(stored[0].Source) >= 64<<10 {
		t.Errorf("product document is %d bytes, want under 64 KiB", len(stored[0].Source))
	}
	if got.ReviewCount != 270 {
		t.Errorf("review count = %d, want 270", got.ReviewCount)
	}

	// Reviews read the current name from the product, at read time.
	searcher := elastic.NewSearcher(rm.es, rm.prefix)
	svc, err := query.NewService(searcher, nowMark{}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if err := rm.idx.Refresh(ctx, query.Reviews.Index); err != nil {
		t.Fatal(err)
	}
	page, err := svc.Reviews(ctx, query.ReviewQuery{ProductID: pid, First: 100}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if page.TotalCount != 270 || len(page.Items) != 100 {
		t.Fatalf("reviews page: %d of %d", len(page.Items), page.TotalCount)
	}
	for _, r := range page.Items {
		if r.ProductName != "Steel kettle" {
			t.Fatalf("review %s reads product name %q, want the current one", r.ID, r.ProductName)
		}
	}
	latest, err := svc.LatestReviews(ctx, &got)
	if err != nil {
		t.Fatal(err)
	}
	// The newest review is the one the index's order puts first: reviews
	// created in the same millisecond follow by id, so it is not always
	// the last one added.
	var kept []query.ReviewRef
	for _, r := range recs {
		if e := r.Envelope; e.StreamType == event.StreamReview && e.Version == 1 && !slices.Contains(reviews[:30], e.StreamID) {
			kept = append(kept, query.ReviewRef{ID: e.StreamID, CreatedAt: e.OccurredAt})
		}
	}
	query.SortLatest(kept)
	if len(latest) != query.LatestReviewsKept || latest[0].ID != kept[0].ID || latest[0].Comment != comment || latest[0].ProductName != "Steel kettle" {
		t.Errorf("latest reviews: %d, first %s (want %s)", len(latest), latest[0].ID, kept[0].ID)
	}
}

// nowMark is a watermark that is always there (the test passes no token).
type nowMark struct{}

func (nowMark) WaitFor(context.Context, []event.ReadPoint) error { return nil }
