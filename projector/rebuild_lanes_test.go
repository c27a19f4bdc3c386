package projector_test

import (
	"context"
	"errors"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// TestRebuildLanesFoldEveryDocument rebuilds a mixed history with four
// lanes and small batches and checks every document against the fold of
// its events: products and their reviews (a product's ratings count its
// reviews, so a review applied on another lane than its product would show
// in the ratings), orders and the events index.
func TestRebuildLanesFoldEveryDocument(t *testing.T) {
	w := newWorld(t)
	rm := newReadModels(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	newCommander(w.svc, 14).run(t, ctx, 600, 4)

	const lanes = 4
	checkFamiliesShareLanes(t, readLog(t, w.pool), lanes)
	var mu sync.Mutex
	var last []projector.LaneProgress
	stats, err := projector.Rebuild{Log: relaySource(t, w), History: w.store, Indices: rm.idx,
		Registerer: prometheus.NewRegistry(), Logger: testenv.Logger(t), Batch: 25, Lanes: lanes,
		LaneProgress: func(l []projector.LaneProgress) { mu.Lock(); last = l; mu.Unlock() },
	}.Run(ctx, query.RebuiltKinds(), false)
	if err != nil {
		t.Fatal(err)
	}
	busy := 0
	var sum int64
	for _, l := range last {
		sum += l.Events
		if l.Events > 0 {
			busy++
		}
	}
	if len(last) != lanes || busy < 2 || sum != stats.Events {
		t.Fatalf("lanes' progress %+v, %d events in all: want %d lanes, more than one busy", last, stats.Events, lanes)
	}
	verify(t, w.pool, rm)
}

// checkFamiliesShareLanes checks the premise of the test: every review
// event is routed to its product's lane.
func checkFamiliesShareLanes(t *testing.T, recs []event.Record, lanes int) {
	t.Helper()
	reviews, lanesSeen := 0, map[int]bool{}
	for _, r := range recs {
		pl, err := r.Envelope.Payload()
		if err != nil {
			t.Fatal(err)
		}
		lane := query.LaneOfEvent(r.Envelope, pl, lanes)
		lanesSeen[lane] = true
		var product string
		switch pl := pl.(type) {
		case event.ReviewAdded:
			product = pl.ProductID
		case event.ReviewRemoved:
			product = pl.ProductID
		default:
			continue
		}
		reviews++
		if want := query.LaneOfEvent(event.Envelope{StreamType: event.StreamProduct, StreamID: product}, nil, lanes); lane != want {
			t.Fatalf("review %s is on lane %d, its product %s on %d", r.Envelope.StreamID, lane, product, want)
		}
	}
	if reviews == 0 || len(lanesSeen) < 2 {
		t.Fatalf("%d review events over %d lanes: the history does not test lanes", reviews, len(lanesSeen))
	}
}

// TestRebuildLaneFailureSwapsNothing has one kind's writes fail for good
// (so only the lanes holding orders fail): the rebuild must fail, leave
// every alias where it was and remove the indices it created.
func TestRebuildLaneFailureSwapsNothing(t *testing.T) {
	w := newWorld(t)
	rm := newReadModels(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	newCommander(w.svc, 15).run(t, ctx, 200, 2)
	before := currentIndices(t, rm)
	rctx, rcancel := context.WithTimeout(ctx, 5*time.Second)
	defer rcancel()
	_, err := projector.Rebuild{Log: relaySource(t, w), History: w.store, Indices: failingOrders{rm.idx},
		Registerer: prometheus.NewRegistry(), Logger: testenv.Logger(t), Batch: 25, Lanes: 4,
	}.Run(rctx, query.RebuiltKinds(), false)
	if err == nil {
		t.Fatal("the rebuild succeeded with a lane that cannot write")
	}
	if after := currentIndices(t, rm); len(after) != len(before) {
		t.Fatalf("indices before %v, after the failed rebuild %v", before, after)
	} else {
		for m, idx := range before {
			if after[m] != idx {
				t.Fatalf("%s's alias moved from %s to %s", m, idx, after[m])
			}
		}
	}
	var got map[string]any
	if err := elastic.Do(ctx, rm.es, http.MethodGet, "/"+rm.prefix+"-*", "", &got); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(before) {
		t.Fatalf("after the failed rebuild the prefix holds %d indices (%v), want the %d live ones", len(got), keys(got), len(before))
	}
}

// TestRebuildCatchUpReadsTheLiveWrites has the live projector apply new
// events to the new indices between the swap and the catch-up, as it does
// under writes: the lanes must read those documents again rather than
// trust what they kept in memory before the swap, so the catch-up finds
// them done and has no write conflict to recover from.
func TestRebuildCatchUpReadsTheLiveWrites(t *testing.T) {
	w := newWorld(t)
	rm := newReadModels(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := newCommander(w.svc, 16)
	c.run(t, ctx, 200, 2)
	live, _ := newProjector(t, w, rm, nil)
	recs := readLog(t, w.pool)
	handle(t, live, recs, 100)
	last := recs[len(recs)-1].Cursor

	renamed := 0
	reg := prometheus.NewRegistry()
	_, err := projector.Rebuild{Log: relaySource(t, w), History: w.store, Indices: rm.idx,
		Registerer: reg, Logger: testenv.Logger(t), Batch: 50, Lanes: 4,
		Phase: func(phase string) {
			if phase != "catching up" {
				return
			}
			for _, id := range c.products {
				if _, err := w.svc.ChangeProduct(ctx, id, command.Meta{}, command.RenameProduct{Name: "Renamed " + id}); err == nil {
					renamed++
				}
			}
			handle(t, live, readLogAfter(t, w.pool, last), 100)
		},
	}.Run(ctx, query.RebuiltKinds(), false)
	if err != nil {
		t.Fatal(err)
	}
	if renamed == 0 {
		t.Fatal("no product renamed between the swap and the catch-up: the test tests nothing")
	}
	if n := conflictRetries(t, reg); n != 0 {
		t.Fatalf("the catch-up found %v write conflicts: it wrote from documents it kept from before the swap", n)
	}
	verify(t, w.pool, rm)
}

// conflictRetries sums the rebuild's lanes' retries after a write conflict.
func conflictRetries(t *testing.T, reg *prometheus.Registry) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "splitstream_projector_write_retries_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == "conflict" {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// currentIndices is the index behind each read model's alias.
func currentIndices(t *testing.T, rm *readModels) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range query.Kinds() {
		idx, err := rm.idx.Current(context.Background(), k.Index)
		if err != nil {
			t.Fatal(err)
		}
		out[k.Index] = idx
	}
	return out
}

// failingOrders is the real indices, with every write of an order
// failing.
type failingOrders struct{ *elastic.Indices }

func (f failingOrders) StoreOn(indices map[projector.Kind]string) projector.Store {
	return failingStore{f.Indices.StoreOn(indices)}
}

type failingStore struct{ projector.Store }

func (s failingStore) Write(ctx context.Context, writes []projector.Write) ([]projector.WriteResult, error) {
	for _, w := range writes {
		if w.Ref.Kind == query.Orders.Name {
			return nil, errors.New("orders cannot be written")
		}
	}
	return s.Store.Write(ctx, writes)
}

func relaySource(t *testing.T, w *world) *postgres.RelaySource {
	t.Helper()
	src, err := postgres.NewRelaySource(w.pool)
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func keys(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
