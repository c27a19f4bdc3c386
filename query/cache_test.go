package query

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/splitstream/splitstream/event"
)

// countingIndex serves products from memory with their Position as the
// revision, counts its reads and runs during, when set, in the middle of
// a read (after the document is taken, before it is returned): a notice
// arriving while the read is on its way.
type countingIndex struct {
	Index
	mu       sync.Mutex
	products map[string]Product
	reads    int
	during   func()
}

func (f *countingIndex) Get(_ context.Context, k *Kind, id string) (*Doc, error) {
	f.mu.Lock()
	p, ok := f.products[id]
	f.reads++
	during := f.during
	f.during = nil
	f.mu.Unlock()
	if during != nil {
		during()
	}
	if k != Products || !ok {
		return nil, nil
	}
	return &Doc{ID: id, Value: &p, Rev: p.Position}, nil
}

func (f *countingIndex) set(p Product) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.products[p.ID] = p
}

func (f *countingIndex) readCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads
}

func newCache(t *testing.T, size int) (*Cache, *countingIndex) {
	t.Helper()
	idx := &countingIndex{products: map[string]Product{}}
	c, err := NewCache(idx, size, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	c.Live(true)
	return c, idx
}

func mustName(t *testing.T, c *Cache, id string) string {
	t.Helper()
	d, err := c.Get(context.Background(), Products, id)
	if err != nil {
		t.Fatal(err)
	}
	if d == nil {
		return ""
	}
	return d.Value.(*Product).Name
}

func changed(id string) []Change { return []Change{{Kind: Products.Name, ID: id}} }

func TestCacheServesRepeatedReadsAndCounts(t *testing.T) {
	c, idx := newCache(t, 10)
	idx.set(Product{ID: "p1", Name: "one", Version: 1, Position: 1})
	for range 3 {
		if got := mustName(t, c, "p1"); got != "one" {
			t.Fatalf("name %q", got)
		}
	}
	if n := idx.readCount(); n != 1 {
		t.Fatalf("%d index reads for three gets of one document, want 1", n)
	}
	if h, m := testutil.ToFloat64(c.hits), testutil.ToFloat64(c.misses); h != 2 || m != 1 {
		t.Fatalf("hits %v misses %v, want 2 and 1", h, m)
	}
}

func TestCacheForgetsWhatANoticeChanged(t *testing.T) {
	c, idx := newCache(t, 10)
	idx.set(Product{ID: "p1", Name: "old", Version: 1, Position: 1})
	mustName(t, c, "p1")
	idx.set(Product{ID: "p1", Name: "new", Version: 2, Position: 2})
	c.Forget(changed("p1"))
	if got := mustName(t, c, "p1"); got != "new" {
		t.Fatalf("after the notice the cache served %q", got)
	}
}

// A read that began before a notice may carry the revision the notice
// replaced: it is answered but not kept, whether or not the cache still
// remembers that notice (size 1, and other notices push it out).
func TestCacheDoesNotKeepAReadOlderThanANotice(t *testing.T) {
	for _, evicted := range []bool{false, true} {
		t.Run(fmt.Sprintf("evicted=%v", evicted), func(t *testing.T) {
			c, idx := newCache(t, 1)
			idx.set(Product{ID: "p1", Name: "old", Version: 1, Position: 1})
			idx.during = func() {
				idx.set(Product{ID: "p1", Name: "new", Version: 2, Position: 2})
				c.Forget(changed("p1"))
				if evicted {
					c.Forget(changed("p2"))
				}
			}
			if got := mustName(t, c, "p1"); got != "old" {
				t.Fatalf("the racing read gave %q", got)
			}
			if got := mustName(t, c, "p1"); got != "new" {
				t.Fatalf("after the notice the cache served %q", got)
			}
		})
	}
}

// A read another document's notice raced is kept: only the documents a
// notice names are in doubt.
func TestCacheKeepsAReadRacedByAnotherDocumentsNotice(t *testing.T) {
	c, idx := newCache(t, 10)
	idx.set(Product{ID: "p1", Name: "one", Version: 1, Position: 1})
	idx.during = func() { c.Forget(changed("p2")) }
	mustName(t, c, "p1")
	mustName(t, c, "p1")
	if n := idx.readCount(); n != 1 {
		t.Fatalf("%d index reads, want 1", n)
	}
}

func TestCacheServesNothingWhileTheNoticeStreamIsDown(t *testing.T) {
	c, idx := newCache(t, 10)
	idx.set(Product{ID: "p1", Name: "old", Version: 1, Position: 1})
	mustName(t, c, "p1")
	c.Live(false)
	idx.set(Product{ID: "p1", Name: "new", Version: 2, Position: 2})
	if got := mustName(t, c, "p1"); got != "new" {
		t.Fatalf("with the stream down the cache served %q", got)
	}
	mustName(t, c, "p1")
	if n := c.docs.Len(); n != 0 {
		t.Fatalf("%d documents kept with the stream down", n)
	}
	if n := idx.readCount(); n != 3 {
		t.Fatalf("%d index reads, want 3 (nothing kept while down)", n)
	}
	// Bound again: emptied, then kept again.
	c.Live(true)
	mustName(t, c, "p1")
	mustName(t, c, "p1")
	if n := idx.readCount(); n != 4 {
		t.Fatalf("%d index reads, want 4", n)
	}
}

// A read that began while the stream was down, and ends after it is
// bound again, is not kept: notices may have been missed before the bind.
func TestCacheDoesNotKeepAReadAcrossAReconnect(t *testing.T) {
	c, idx := newCache(t, 10)
	idx.set(Product{ID: "p1", Name: "old", Version: 1, Position: 1})
	idx.during = func() {
		c.Live(false)
		idx.set(Product{ID: "p1", Name: "new", Version: 2, Position: 2})
		c.Live(true)
	}
	mustName(t, c, "p1")
	if got := mustName(t, c, "p1"); got != "new" {
		t.Fatalf("after a reconnect the cache served %q", got)
	}
}

func TestCacheCallersCannotChangeWhatItKeeps(t *testing.T) {
	c, idx := newCache(t, 10)
	idx.set(Product{ID: "p1", Name: "one", Version: 1, Position: 1, RatingHistogram: []int{1, 2, 3, 4, 5},
		Counted: map[string]ReviewMark{"r1": {Version: 1}}, LatestReviews: []ReviewRef{{ID: "r1"}}})
	for range 2 { // the first read fills, the second is a hit
		d, err := c.Get(context.Background(), Products, "p1")
		if err != nil {
			t.Fatal(err)
		}
		p := d.Value.(*Product)
		p.Name = "changed"
		p.RatingHistogram[0] = 99
		p.Counted["r2"] = ReviewMark{}
		p.LatestReviews[0].ID = "changed"
	}
	d, err := c.Get(context.Background(), Products, "p1")
	if err != nil {
		t.Fatal(err)
	}
	p := d.Value.(*Product)
	if p.Name != "one" || p.RatingHistogram[0] != 1 || len(p.Counted) != 1 || p.LatestReviews[0].ID != "r1" {
		t.Fatalf("a caller's change reached the cache: %+v", p)
	}
}

func TestCacheIsBounded(t *testing.T) {
	c, idx := newCache(t, 2)
	for i := range 5 {
		idx.set(Product{ID: fmt.Sprint("p", i), Version: 1, Position: 1})
		mustName(t, c, fmt.Sprint("p", i))
	}
	if n := c.docs.Len(); n != 2 {
		t.Fatalf("%d documents kept, size 2", n)
	}
}

func TestCacheReadsAgainAfterMaxAge(t *testing.T) {
	c, idx := newCache(t, 10)
	now := time.Now()
	c.now = func() time.Time { return now }
	idx.set(Product{ID: "p1", Name: "old", Version: 1, Position: 1})
	mustName(t, c, "p1")
	idx.set(Product{ID: "p1", Name: "new", Version: 2, Position: 2}) // no notice
	now = now.Add(CacheMaxAge)
	if got := mustName(t, c, "p1"); got != "new" {
		t.Fatalf("past the maximum age the cache served %q", got)
	}
}

// Fresh reads the index whatever is cached, and what it reads replaces
// an older cached revision, so a later plain read never goes back.
func TestCacheFreshReadsTheIndexAndKeepsTheNewer(t *testing.T) {
	c, idx := newCache(t, 10)
	idx.set(Product{ID: "p1", Name: "old", Version: 1, Position: 1})
	mustName(t, c, "p1")
	idx.set(Product{ID: "p1", Name: "new", Version: 2, Position: 2}) // notice not here yet
	d, err := c.Fresh(context.Background(), Products, "p1")
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Value.(*Product).Name; got != "new" {
		t.Fatalf("Fresh gave %q", got)
	}
	if got := mustName(t, c, "p1"); got != "new" {
		t.Fatalf("after a fresh read the cache served %q", got)
	}
}

// Of two reads racing, the one that saw the older revision does not
// replace the newer one the other kept.
func TestCacheKeepsTheNewerOfTwoRacingReads(t *testing.T) {
	c, idx := newCache(t, 10)
	idx.set(Product{ID: "p1", Name: "old", Version: 1, Position: 1})
	idx.during = func() {
		idx.set(Product{ID: "p1", Name: "new", Version: 2, Position: 2})
		if _, err := c.Fresh(context.Background(), Products, "p1"); err != nil {
			t.Error(err)
		}
	}
	if got := mustName(t, c, "p1"); got != "old" {
		t.Fatalf("the slow read gave %q", got)
	}
	if got := mustName(t, c, "p1"); got != "new" {
		t.Fatalf("the cache went back to %q", got)
	}
}

func TestNewCacheRefuses(t *testing.T) {
	idx := &countingIndex{}
	for _, tc := range []struct {
		index Index
		size  int
		reg   prometheus.Registerer
	}{{nil, 1, prometheus.NewRegistry()}, {idx, 0, prometheus.NewRegistry()}, {idx, 1, nil}} {
		if _, err := NewCache(tc.index, tc.size, tc.reg); err == nil {
			t.Errorf("NewCache(%v, %d, %v) accepted", tc.index, tc.size, tc.reg)
		}
	}
}

// caughtUp is a watermark that has always reached the token: as when the
// read polled the checkpoint before this instance saw the notice.
type caughtUp struct{}

func (caughtUp) WaitFor(context.Context, []event.ReadPoint) error { return nil }

// A consistentWith read is not answered from the cache: the cached
// revision may predate the token while its notice is still on its way.
// Once it has read the newer revision, plain reads show that one too.
func TestServiceConsistentReadGoesPastTheCache(t *testing.T) {
	c, idx := newCache(t, 10)
	s, err := NewService(c, caughtUp{}, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	idx.set(Product{ID: "p1", Name: "old", Version: 1, Position: 1})
	if p, err := s.Product(ctx, "p1", nil); err != nil || p.Name != "old" {
		t.Fatalf("first read: %+v %v", p, err)
	}
	idx.set(Product{ID: "p1", Name: "new", Version: 2, Position: 2}) // its notice is not here yet
	token := event.Cursor{Tx: 2, Position: 2}.Token()
	if p, err := s.Product(ctx, "p1", &token); err != nil || p.Name != "new" {
		t.Fatalf("consistentWith read: %+v %v, want the new name", p, err)
	}
	if p, err := s.Product(ctx, "p1", nil); err != nil || p.Name != "new" {
		t.Fatalf("plain read after it: %+v %v, want the new name", p, err)
	}
}

func TestCacheClearEmptiesAndRefusesOlderReads(t *testing.T) {
	c, idx := newCache(t, 10)
	idx.set(Product{ID: "p1", Name: "old", Version: 1, Position: 1})
	mustName(t, c, "p1")
	idx.set(Product{ID: "p1", Name: "new", Version: 2, Position: 2}) // no notice yet
	c.Clear()
	if got := mustName(t, c, "p1"); got != "new" {
		t.Fatalf("after Clear the cache served %q", got)
	}
	idx.set(Product{ID: "p1", Name: "newer", Version: 3, Position: 3})
	idx.during = c.Clear // a read that began before a Clear is not kept
	c.Forget(changed("p1"))
	mustName(t, c, "p1")
	idx.set(Product{ID: "p1", Name: "newest", Version: 4, Position: 4})
	if got := mustName(t, c, "p1"); got != "newest" {
		t.Fatalf("a read from before Clear was kept: %q", got)
	}
}

// A checkpoint poll that moves a watermark tells ahead before the new
// mark can be seen; one that does not move it says nothing.
func TestMarksTellWhenAPollGoesAheadOfTheNotices(t *testing.T) {
	checkpoint := event.Cursor{Tx: 5, Position: 5}
	var told []event.Cursor
	var m *Marks
	m, err := NewMarks(func(context.Context, int) (event.Cursor, error) { return checkpoint, nil }, time.Millisecond, func() {
		mark, _ := m.Tracker(0).Mark()
		told = append(told, mark)
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := m.WaitFor(ctx, []event.ReadPoint{{Lane: 0, Cursor: checkpoint}}); err != nil {
		t.Fatal(err)
	}
	if len(told) != 1 || told[0] != (event.Cursor{}) {
		t.Fatalf("told %v, want once, before the mark moved from zero", told)
	}
	// A notice moves the mark to 9 and the checkpoint shows 9 too: the
	// polls of a wait for 10 (cut short) move nothing.
	m.Advance(0, event.Cursor{Tx: 9, Position: 9})
	checkpoint = event.Cursor{Tx: 9, Position: 9}
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if err := m.WaitFor(wctx, []event.ReadPoint{{Lane: 0, Cursor: event.Cursor{Tx: 10, Position: 10}}}); err == nil {
		t.Fatal("waited for a cursor nothing reached")
	}
	if len(told) != 1 {
		t.Fatalf("told %d times, want once: only the notice moved the mark", len(told))
	}
}
