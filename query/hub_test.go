package query

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/event"
)

// fakeIndex serves products from memory, each with a revision (which the
// tests also keep in Position, to see what was sent).
type fakeIndex struct {
	Index
	mu       sync.Mutex
	products map[string]Product
}

func (f *fakeIndex) Get(_ context.Context, k *Kind, id string) (*Doc, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.products[id]
	if k != Products || !ok {
		return nil, nil
	}
	return &Doc{ID: id, Value: &p, Rev: p.Position}, nil
}

func (f *fakeIndex) set(p Product) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.products[p.ID] = p
}

func newHub(t *testing.T) (*Hub, *fakeIndex) {
	idx := &fakeIndex{products: map[string]Product{}}
	h, err := NewHub(idx, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), 8, 1000)
	if err != nil {
		t.Fatal(err)
	}
	return h, idx
}

func TestHubCutsOffAStalledSubscriberOnly(t *testing.T) {
	h, idx := newHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stalled, err := h.ProductChanged(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	live, err := h.ProductChanged(ctx, "p1")
	if err != nil {
		t.Fatal(err)
	}
	var got []int
	done := make(chan struct{})
	go func() {
		defer close(done)
		for p := range live {
			got = append(got, p.Version)
		}
	}()
	for v := 1; v <= 50; v++ {
		idx.set(Product{ID: "p1", Version: v, Position: int64(v)})
		start := time.Now()
		h.Publish(ctx, []Change{{Kind: Products.Name, ID: "p1"}})
		if time.Since(start) > time.Second {
			t.Fatal("Publish blocked on a subscriber")
		}
		time.Sleep(time.Millisecond) // the live reader keeps up
	}
	// The stalled one got its buffer's worth, then its channel closed.
	n := 0
	for range stalled {
		n++
	}
	if n != 8 {
		t.Fatalf("stalled subscriber got %d before the cut, want its buffer of 8", n)
	}
	cancel()
	<-done
	if len(got) != 50 || got[0] != 1 || got[49] != 50 {
		t.Fatalf("live subscriber got %d changes (%v...), want all 50 in order", len(got), got[:min(5, len(got))])
	}
}

func TestHubNeverSendsAnOlderRevision(t *testing.T) {
	h, idx := newHub(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, _ := h.ProductChanged(ctx, "p1")
	for _, rev := range []int64{3, 2, 3, 5, 4} {
		idx.set(Product{ID: "p1", Version: 1, Position: rev})
		h.Publish(ctx, []Change{{Kind: Products.Name, ID: "p1"}})
	}
	cancel()
	var revs []int64
	for p := range ch {
		revs = append(revs, p.Position)
	}
	if len(revs) != 2 || revs[0] != 3 || revs[1] != 5 {
		t.Fatalf("got revisions %v, want [3 5]", revs)
	}
}

func TestHubFiltersAndLimits(t *testing.T) {
	idx := &fakeIndex{products: map[string]Product{}}
	h, err := NewHub(idx, slog.New(slog.NewTextHandler(io.Discard, nil)), prometheus.NewRegistry(), 8, 2)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cat := "kitchen"
	kitchen, _ := h.ProductsChanged(ctx, ProductFilter{Category: &cat})
	if _, err := h.ProductChanged(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ProductChanged(ctx, "y"); err != ErrTooManySubscribers {
		t.Fatalf("third subscription over a limit of 2: %v", err)
	}
	idx.set(Product{ID: "a", Category: "garden", Version: 1, Position: 1})
	idx.set(Product{ID: "b", Category: "kitchen", Version: 1, Position: 1})
	h.Publish(ctx, []Change{{Kind: Products.Name, ID: "a"}, {Kind: Products.Name, ID: "b"}})
	cancel()
	var ids []string
	for p := range kitchen {
		ids = append(ids, p.ID)
	}
	if len(ids) != 1 || ids[0] != "b" {
		t.Fatalf("filtered subscriber got %v, want [b]", ids)
	}
}

func TestTrackerWaitsForTheToken(t *testing.T) {
	tr, err := NewTracker(func(context.Context) (event.Cursor, error) { return event.Cursor{}, nil }, 10*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- tr.WaitFor(ctx, cursorAt(5, 50)) }()
	tr.Advance(cursorAt(5, 49))
	select {
	case err := <-errc:
		t.Fatalf("returned before the token was applied: %v", err)
	case <-time.After(30 * time.Millisecond):
	}
	tr.Advance(cursorAt(6, 10)) // later in relay order, although a lower position
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := tr.WaitFor(short, cursorAt(9, 1)); err == nil {
		t.Fatal("a token beyond the watermark did not time out")
	}
}

func cursorAt(tx uint64, pos int64) event.Cursor { return event.Cursor{Tx: tx, Position: pos} }
