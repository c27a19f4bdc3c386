package projector_test

import (
	"context"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/splitstream/splitstream/event"
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
