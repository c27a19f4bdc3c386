package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// memStore is an in-memory Store with Elasticsearch's guard semantics and
// hooks to fail requests or items.
type memStore struct {
	mu     sync.Mutex
	docs   map[Ref]memDoc
	seq    int64
	writes [][]Write
	// failWrite, when set, is asked before each write request: a non-nil
	// error fails the request; a non-nil slice overrides item results
	// (nil entries are applied normally).
	failWrite func(call int, ws []Write) ([]*WriteResult, error)
	failGet   func() error
	// reads is every Get's refs, in order.
	reads [][]Ref
	// beforeWrite runs before a write request is applied, to simulate a
	// concurrent writer.
	beforeWrite func(call int)
}

type memDoc struct {
	seq, term int64
	src       json.RawMessage
}

func newMemStore() *memStore { return &memStore{docs: map[Ref]memDoc{}} }

func (s *memStore) Get(_ context.Context, refs []Ref) ([]Stored, error) {
	if s.failGet != nil {
		if err := s.failGet(); err != nil {
			return nil, err
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads = append(s.reads, slices.Clone(refs))
	out := make([]Stored, len(refs))
	for i, r := range refs {
		d, ok := s.docs[r]
		out[i] = Stored{Ref: r, Found: ok, SeqNo: d.seq, PrimaryTerm: d.term, Source: d.src}
	}
	return out, nil
}

func (s *memStore) Write(_ context.Context, ws []Write) ([]WriteResult, error) {
	s.mu.Lock()
	call := len(s.writes)
	s.writes = append(s.writes, ws)
	s.mu.Unlock()
	var override []*WriteResult
	if s.failWrite != nil {
		var err error
		if override, err = s.failWrite(call, ws); err != nil {
			return nil, err
		}
	}
	if s.beforeWrite != nil {
		s.beforeWrite(call)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]WriteResult, len(ws))
	for i, w := range ws {
		if override != nil && override[i] != nil {
			out[i] = *override[i]
			continue
		}
		cur, exists := s.docs[w.Ref]
		switch {
		case w.Op == Create && exists, w.Op == IfMatch && (!exists || cur.seq != w.SeqNo || cur.term != w.PrimaryTerm):
			out[i] = WriteResult{Err: fmt.Errorf("%s: %w", w.Ref.ID, ErrConflict)}
			continue
		}
		s.seq++
		s.docs[w.Ref] = memDoc{seq: s.seq, term: 1, src: append(json.RawMessage(nil), w.Doc...)}
		out[i] = WriteResult{SeqNo: s.seq, PrimaryTerm: 1}
	}
	return out, nil
}

// ReviewStats sums the review documents held, as Elasticsearch's
// aggregation does.
func (s *memStore) ReviewStats(_ context.Context, ids []string) (map[string]query.ReviewStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	byProduct := map[string][]*query.Review{}
	for r, d := range s.docs {
		if r.Kind != query.Reviews.Name {
			continue
		}
		var rv query.Review
		if err := json.Unmarshal(d.src, &rv); err != nil {
			return nil, err
		}
		byProduct[rv.ProductID] = append(byProduct[rv.ProductID], &rv)
	}
	out := map[string]query.ReviewStats{}
	for _, id := range ids {
		out[id] = query.StatsOf(byProduct[id])
	}
	return out, nil
}

func (s *memStore) product(t *testing.T, id string) query.Product {
	t.Helper()
	var p query.Product
	s.decode(t, Ref{query.Products.Name, id}, &p)
	return p
}

func (s *memStore) review(t *testing.T, id string) query.Review {
	t.Helper()
	var r query.Review
	s.decode(t, Ref{query.Reviews.Name, id}, &r)
	return r
}

func (s *memStore) decode(t *testing.T, r Ref, v any) {
	t.Helper()
	s.mu.Lock()
	d, ok := s.docs[r]
	s.mu.Unlock()
	if !ok {
		t.Fatalf("no %s %s", r.Kind, r.ID)
	}
	if err := json.Unmarshal(d.src, v); err != nil {
		t.Fatal(err)
	}
}

// memHistory is the event store: every event appended by the log builder.
type memHistory struct {
	mu      sync.Mutex
	streams map[string][]event.Envelope
	fail    error
}

func (h *memHistory) Load(_ context.Context, id string) ([]event.Envelope, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.fail != nil {
		return nil, h.fail
	}
	return append([]event.Envelope(nil), h.streams[id]...), nil
}

// eventLog builds records as the relay would: versions per stream, global
// positions, each record chained to the one before.
type eventLog struct {
	hist    *memHistory
	records []event.Record
	pos     int64
	prev    event.Cursor
	version map[string]int
	at      time.Time
}

func newEventLog() *eventLog {
	return &eventLog{hist: &memHistory{streams: map[string][]event.Envelope{}}, version: map[string]int{},
		at: time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)}
}

func (l *eventLog) add(t *testing.T, stream string, pl event.Payload) event.Record {
	t.Helper()
	typ, sv, data, err := event.Encode(pl)
	if err != nil {
		t.Fatal(err)
	}
	l.pos++
	l.version[stream]++
	l.at = l.at.Add(time.Second)
	e := event.Envelope{ID: fmt.Sprintf("ev-%d", l.pos), Position: l.pos, StreamID: stream, StreamType: event.StreamTypeOf(pl),
		Version: l.version[stream], Type: typ, SchemaVersion: sv, Data: data, OccurredAt: l.at}
	l.hist.mu.Lock()
	l.hist.streams[stream] = append(l.hist.streams[stream], e)
	l.hist.mu.Unlock()
	c := event.Cursor{Tx: uint64(1000 + l.pos), Position: l.pos}
	r := event.Record{Envelope: e, Cursor: c, Prev: l.prev}
	l.prev = c
	l.records = append(l.records, r)
	return r
}

// memLog reads the records the log builder made, in relay order.
type memLog struct{ l *eventLog }

func (m memLog) Next(_ context.Context, after event.Cursor, limit int) ([]event.Record, error) {
	var out []event.Record
	for _, r := range m.l.records {
		if after.Less(r.Cursor) && len(out) < limit {
			out = append(out, r)
		}
	}
	return out, nil
}

type memNotices struct {
	mu  sync.Mutex
	got []Notice
}

func (n *memNotices) PublishNotice(_ context.Context, x Notice) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.got = append(n.got, x)
	return nil
}

type fixture struct {
	p       *Projector
	store   *memStore
	log     *eventLog
	notices *memNotices
}

func newFixture(t *testing.T, tune func(*Config)) *fixture {
	t.Helper()
	f := &fixture{store: newMemStore(), log: newEventLog(), notices: &memNotices{}}
	cfg := Config{Store: f.store, History: f.log.hist, Notices: f.notices, MaxBackoff: 5 * time.Millisecond,
		BreakerOpen: 10 * time.Millisecond, DeadLetters: NewMemoryDeadLetters(), Registerer: prometheus.NewRegistry(),
		Log: slog.New(slog.DiscardHandler)}
	if tune != nil {
		tune(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	return f
}

func (f *fixture) handle(t *testing.T, recs ...event.Record) []Verdict {
	t.Helper()
	msgs := make([]Message, len(recs))
	for i, r := range recs {
		msgs[i] = Message{Record: r, Chained: true}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	v, err := f.p.Handle(ctx, msgs)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func acked(t *testing.T, vs []Verdict) {
	t.Helper()
	for i, v := range vs {
		if v.Action != Ack {
			t.Fatalf("message %d: %v (%s), want ack", i, v.Action, v.Reason)
		}
	}
}

func created(name string) event.ProductCreated {
	return event.ProductCreated{Name: name, Category: "kitchen", PriceCents: 1000, Currency: "EUR", Stock: 5}
}

func TestHandleFoldsAndAnnounces(t *testing.T) {
	f := newFixture(t, nil)
	l := f.log
	recs := []event.Record{
		l.add(t, "p1", created("Kettle")),
		l.add(t, "r1", event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 4}),
		l.add(t, "r2", event.ReviewAdded{ProductID: "p1", Author: "Bob", Rating: 2}),
		l.add(t, "o1", event.OrderPlaced{CustomerID: "c1", Lines: []event.OrderLine{{ProductID: "p1", ProductName: "Kettle", Quantity: 1, UnitPriceCents: 1000}}, TotalCents: 1000}),
		l.add(t, "p1", event.StockReserved{OrderID: "o1", Quantity: 1, Stock: 4}),
		l.add(t, "r2", event.ReviewRemoved{ProductID: "p1", Rating: 2}),
	}
	acked(t, f.handle(t, recs...))

	p := f.store.product(t, "p1")
	if p.Version != 2 || p.Stock != 4 || p.ReviewCount != 1 || p.AverageRating != 4 || p.RatingHistogram[3] != 1 {
		t.Errorf("product = %+v", p)
	}
	if r := f.store.review(t, "r1"); r.ProductName != "" || r.Author != "Ada" || r.Rating != 4 {
		t.Errorf("review r1 = %+v (the product name is read at read time, never stored)", r)
	}
	if len(p.LatestReviews) != 1 || p.LatestReviews[0].ID != "r1" {
		t.Errorf("latest reviews = %+v, want r1 only", p.LatestReviews)
	}
	if r := f.store.review(t, "r2"); !r.Removed || r.Version != 2 {
		t.Errorf("review r2 = %+v", r)
	}
	for _, r := range recs {
		if _, ok := f.store.docs[Ref{query.Events.Name, r.Envelope.ID}]; !ok {
			t.Errorf("no event document for %s", r.Envelope.ID)
		}
	}
	var cp query.Checkpoint
	f.store.decode(t, Ref{query.Checkpoints.Name, query.CheckpointID}, &cp)
	if last := recs[len(recs)-1].Cursor; cp.Tx != last.Tx || cp.Position != last.Position || f.p.Watermark() != last {
		t.Errorf("checkpoint %+v, watermark %v; want %v", cp, f.p.Watermark(), last)
	}
	if len(f.notices.got) != 1 {
		t.Fatalf("%d notices, want 1", len(f.notices.got))
	}
	n := f.notices.got[0]
	kinds := map[string]Change{}
	for _, c := range n.Changes {
		kinds[string(c.Kind)+"/"+c.ID] = c
	}
	if len(n.Changes) != 4 || n.Watermark != recs[len(recs)-1].Cursor {
		t.Errorf("notice = %+v", n)
	}
	if c := kinds["review/r1"]; c.ProductID != "p1" || c.Version != 1 || c.SeqNo == 0 || c.Types[0] != "ReviewAdded" {
		t.Errorf("review change = %+v", c)
	}
	if c := kinds["product/p1"]; c.Position != 6 || c.Version != 2 {
		t.Errorf("product change = %+v (want the position of the review removal)", c)
	}
}

func TestHandleDuplicatesAreNoOps(t *testing.T) {
	f := newFixture(t, nil)
	l := f.log
	recs := []event.Record{
		l.add(t, "p1", created("Kettle")),
		l.add(t, "r1", event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 5}),
	}
	acked(t, f.handle(t, append(recs, recs...)...))
	before := len(f.store.writes)
	acked(t, f.handle(t, recs...))
	if p := f.store.product(t, "p1"); p.ReviewCount != 1 || p.RatingSum != 5 {
		t.Errorf("product after duplicates = %+v", p)
	}
	for _, w := range f.store.writes[before:] {
		for _, x := range w {
			if x.Ref.Kind != query.Events.Name {
				t.Errorf("a redelivery wrote %s %s", x.Ref.Kind, x.Ref.ID)
			}
		}
	}
}

func TestHandleFillsGapsFromHistory(t *testing.T) {
	f := newFixture(t, nil)
	l := f.log
	l.add(t, "p1", created("Kettle"))
	l.add(t, "p1", event.ProductRenamed{Name: "Steel kettle"})
	l.add(t, "r1", event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 3})
	last := l.add(t, "r1", event.ReviewRemoved{ProductID: "p1", Rating: 3})
	price := l.add(t, "p1", event.ProductPriceChanged{PriceCents: 1500})

	acked(t, f.handle(t, price, last))
	p := f.store.product(t, "p1")
	if p.Version != 3 || p.Name != "Steel kettle" || p.PriceCents != 1500 || p.ReviewCount != 0 || len(p.LatestReviews) != 0 {
		t.Errorf("product = %+v", p)
	}
	if r := f.store.review(t, "r1"); !r.Removed || r.Version != 2 || r.Author != "Ada" {
		t.Errorf("review = %+v", r)
	}
	if w := f.p.Watermark(); w != (event.Cursor{}) {
		t.Errorf("watermark moved past the missing records: %v", w)
	}
}

// A rename writes the product alone: reviews read the name from it when
// they are read (query.FillProductNames), so no rename ever rewrites them.
// A batch does not read the documents its streams' first events create,
// but one per kind; a creation delivered again finds its document through
// the failed create, and leaves it as it is.
func TestHandleCreationsAreNotRead(t *testing.T) {
	f := newFixture(t, nil)
	l := f.log
	first := []event.Record{l.add(t, "p1", created("Kettle")), l.add(t, "p2", created("Pot")), l.add(t, "p3", created("Pan"))}
	acked(t, f.handle(t, first...))
	if read := productReads(f.store.reads); len(read) != 1 {
		t.Errorf("creating 3 products read %v, want one of them", read)
	}
	// The one read stays read when its creation comes twice in the batch.
	f.store.reads = nil
	more := []event.Record{l.add(t, "p4", created("Wok")), l.add(t, "p5", created("Lid"))}
	acked(t, f.handle(t, more[0], more[0], more[1]))
	if got := productReads(f.store.reads); len(got) != 1 || got[0].ID != "p4" {
		t.Errorf("creating p4 (delivered twice) and p5 read %v, want p4 alone", got)
	}
	acked(t, f.handle(t, l.add(t, "p2", event.ProductRenamed{Name: "Steel pot"})))
	acked(t, f.handle(t, first...)) // redelivered
	for id, name := range map[string]string{"p1": "Kettle", "p2": "Steel pot", "p3": "Pan"} {
		if p := f.store.product(t, id); p.Name != name || p.Version == 0 {
			t.Errorf("product %s after its creation came again = %+v, want %q", id, p, name)
		}
	}
	if p := f.store.product(t, "p2"); p.Version != 2 {
		t.Errorf("p2 version %d after its creation came again, want 2", p.Version)
	}
}

// productReads are the product documents among reads.
func productReads(reads [][]Ref) []Ref {
	var out []Ref
	for _, refs := range reads {
		for _, r := range refs {
			if r.Kind == query.Products.Name {
				out = append(out, r)
			}
		}
	}
	return out
}

func TestHandleRenameRewritesNoReview(t *testing.T) {
	f := newFixture(t, nil)
	l := f.log
	acked(t, f.handle(t,
		l.add(t, "p1", created("Kettle")),
		l.add(t, "r1", event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 3}),
	))
	acked(t, f.handle(t, l.add(t, "r2", event.ReviewAdded{ProductID: "p1", Author: "Bob", Rating: 4})))
	before := len(f.store.writes)
	acked(t, f.handle(t, l.add(t, "p1", event.ProductRenamed{Name: "Steel kettle"})))
	for _, w := range f.store.writes[before:] {
		for _, x := range w {
			if x.Ref.Kind == query.Reviews.Name {
				t.Errorf("the rename rewrote review %s", x.Ref.ID)
			}
		}
	}
	if p := f.store.product(t, "p1"); p.Name != "Steel kettle" || p.ReviewCount != 2 || p.RatingSum != 7 {
		t.Errorf("product = %+v", p)
	}
	n := f.notices.got[len(f.notices.got)-1]
	if len(n.Changes) != 1 || n.Changes[0].Kind != query.Products.Name {
		t.Errorf("rename notice = %+v, want the product alone", n.Changes)
	}
}

func TestHandleReappliesOnConflict(t *testing.T) {
	f := newFixture(t, nil)
	l := f.log
	acked(t, f.handle(t, l.add(t, "p1", created("Kettle"))))
	r1 := l.add(t, "r1", event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 3})
	r2 := l.add(t, "r2", event.ReviewAdded{ProductID: "p1", Author: "Bob", Rating: 5})
	// Between this batch's read and its write, another writer applies r1.
	first := true
	f.store.beforeWrite = func(int) {
		if !first {
			return
		}
		first = false
		var p query.Product
		f.store.decode(t, Ref{query.Products.Name, "p1"}, &p)
		pl, _ := r1.Envelope.Payload()
		p.CountReview(r1.Envelope, pl)
		src, _ := json.Marshal(p)
		f.store.mu.Lock()
		f.store.seq++
		f.store.docs[Ref{query.Products.Name, "p1"}] = memDoc{seq: f.store.seq, term: 1, src: src}
		f.store.mu.Unlock()
	}
	before := len(f.store.writes)
	acked(t, f.handle(t, r1, r2))
	if p := f.store.product(t, "p1"); p.ReviewCount != 2 || p.RatingSum != 8 {
		t.Errorf("product after conflict = %+v", p)
	}
	var bulks [][]Write
	for _, w := range f.store.writes[before:] {
		if w[0].Ref.Kind != query.Checkpoints.Name {
			bulks = append(bulks, w)
		}
	}
	// The product and the events go first; after the conflict the product
	// alone again; then the reviews.
	if len(bulks) != 3 || len(bulks[1]) != 1 || bulks[1][0].Ref != (Ref{query.Products.Name, "p1"}) {
		t.Errorf("bulks = %v, want the second to hold only the conflicting product", refsOfBulks(bulks))
	}
}

func TestHandleRetriesOnlyFailedItems(t *testing.T) {
	f := newFixture(t, nil)
	l := f.log
	recs := []event.Record{l.add(t, "p1", created("Kettle")), l.add(t, "p2", created("Mug"))}
	f.store.failWrite = func(call int, ws []Write) ([]*WriteResult, error) {
		if call > 0 {
			return nil, nil
		}
		out := make([]*WriteResult, len(ws))
		for i, w := range ws {
			if w.Ref.ID == "p2" {
				out[i] = &WriteResult{Err: errors.New("429 es_rejected_execution_exception"), Retryable: true}
			}
		}
		return out, nil
	}
	acked(t, f.handle(t, recs...))
	if len(f.store.writes) != 3 || len(f.store.writes[1]) != 1 || f.store.writes[1][0].Ref.ID != "p2" {
		t.Errorf("writes = %v, want the second to hold only p2", f.store.writes)
	}
	if p := f.store.product(t, "p2"); p.Name != "Mug" {
		t.Errorf("p2 = %+v", p)
	}
}

func TestHandleWaitsOutAnUnavailableStore(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.BreakerFailures = 2 })
	l := f.log
	var mu sync.Mutex
	fails := 0
	f.store.failWrite = func(call int, ws []Write) ([]*WriteResult, error) {
		mu.Lock()
		defer mu.Unlock()
		if fails < 6 {
			fails++
			return nil, errors.New("connection refused")
		}
		return nil, nil
	}
	acked(t, f.handle(t, l.add(t, "p1", created("Kettle")), l.add(t, "p1", event.ProductRenamed{Name: "K2"})))
	if p := f.store.product(t, "p1"); p.Name != "K2" || p.Version != 2 {
		t.Errorf("product = %+v", p)
	}
	if f.p.breakerOpen() {
		t.Error("breaker still open after a successful write")
	}
}

func TestHandlePoison(t *testing.T) {
	f := newFixture(t, nil)
	l := f.log
	good := l.add(t, "p1", created("Kettle"))
	unknown := l.add(t, "p9", event.ProductRenamed{Name: "x"})
	unknown.Envelope.Type = "ProductTeleported"
	malformed := l.add(t, "p8", created("y"))
	malformed.Envelope.Data = json.RawMessage(`{"name":`)
	wrongStream := l.add(t, "p7", created("z"))
	wrongStream.Envelope.StreamType = event.StreamOrder
	after := l.add(t, "p1", event.ProductRenamed{Name: "Steel kettle"})

	msgs := []Message{
		{Record: good, Chained: true},
		{Record: unknown, Chained: true},
		{Record: malformed, Chained: true},
		{Record: wrongStream, Chained: true},
		{Invalid: errors.New("malformed event message: body: unexpected end of JSON input")},
		{Record: after, Chained: true},
	}
	ctx := context.Background()
	for attempt := 1; attempt <= 3; attempt++ {
		vs, err := f.p.Handle(ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		if vs[0].Action != Ack || vs[5].Action != Ack {
			t.Fatalf("attempt %d: good records %v %v", attempt, vs[0], vs[5])
		}
		for _, i := range []int{2, 3, 4} {
			if vs[i].Action != DeadLetter || vs[i].Reason == "" {
				t.Fatalf("attempt %d: message %d = %+v, want dead-lettered at once", attempt, i, vs[i])
			}
		}
		want := Retry
		if attempt == 3 {
			want = DeadLetter
		}
		if vs[1].Action != want || !strings.Contains(vs[1].Reason, "ProductTeleported") {
			t.Fatalf("attempt %d: unknown type = %+v, want %v", attempt, vs[1], want)
		}
		if attempt < 3 && f.p.Watermark() != good.Cursor {
			t.Fatalf("attempt %d: watermark %v passed a record to retry", attempt, f.p.Watermark())
		}
	}
	if f.p.Watermark() != after.Cursor {
		t.Errorf("watermark = %v, want %v once the poison is dead-lettered", f.p.Watermark(), after.Cursor)
	}
	if p := f.store.product(t, "p1"); p.Name != "Steel kettle" {
		t.Errorf("p1 = %+v", p)
	}
}

func TestHandleGapTheEventStoreCannotFill(t *testing.T) {
	f := newFixture(t, func(c *Config) { c.MaxAttempts = 2 })
	l := f.log
	l.add(t, "p1", created("Kettle"))
	orphan := l.add(t, "p1", event.ProductRenamed{Name: "x"})
	orphan.Envelope.Version = 5
	other := l.add(t, "p2", created("Mug"))
	for attempt, want := range []Action{Retry, DeadLetter} {
		vs := f.handle(t, orphan, other)
		if vs[0].Action != want || !strings.Contains(vs[0].Reason, "not in the event store") || vs[1].Action != Ack {
			t.Fatalf("attempt %d: %+v", attempt+1, vs)
		}
	}
}

func TestHealthyTurnsRedWhenStalled(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	f := newFixture(t, func(c *Config) { c.Now = clock })
	f.p.Consuming(true)
	if err := f.p.Healthy(30 * time.Second); err != nil {
		t.Fatalf("fresh projector: %v", err)
	}
	down := make(chan struct{})
	f.store.failWrite = func(int, []Write) ([]*WriteResult, error) {
		select {
		case <-down:
			return nil, nil
		default:
			return nil, errors.New("connection refused")
		}
	}
	done := make(chan error, 1)
	go func() {
		_, err := f.p.Handle(context.Background(), []Message{{Record: f.log.add(t, "p1", created("Kettle")), Chained: true}})
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	if err := f.p.Healthy(30 * time.Second); err != nil {
		t.Fatalf("stalled briefly: %v", err)
	}
	advance(31 * time.Second)
	if err := f.p.Healthy(30 * time.Second); err == nil {
		t.Fatal("stalled for 31s and still healthy")
	}
	close(down)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := f.p.Healthy(30 * time.Second); err != nil {
		t.Fatalf("after the write: %v", err)
	}
	f.p.Consuming(false)
	advance(31 * time.Second)
	if err := f.p.Healthy(30 * time.Second); err == nil {
		t.Fatal("detached from the broker for 31s and still healthy")
	}
}

func TestHoleFilledFromTheLog(t *testing.T) {
	var mu sync.Mutex
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	f := newFixture(t, func(c *Config) { c.Now = clock; c.HoleTimeout = 10 * time.Second })
	f.p.cfg.EventLog = memLog{f.log}
	f.p.Idle(context.Background()) // before any batch: nothing to do, and no panic
	l := f.log
	a := l.add(t, "p1", created("Kettle"))
	l.add(t, "p1", event.ProductRenamed{Name: "Steel kettle"}) // acked before a restart, say: never comes
	c := l.add(t, "p2", created("Mug"))
	acked(t, f.handle(t, a, c))
	if f.p.Watermark() != a.Cursor {
		t.Fatalf("watermark = %v, want %v", f.p.Watermark(), a.Cursor)
	}
	f.p.Idle(context.Background())
	if f.p.Watermark() != a.Cursor {
		t.Fatal("the log was read before the hole timed out")
	}
	mu.Lock()
	now = now.Add(11 * time.Second)
	mu.Unlock()
	f.p.Idle(context.Background())
	if f.p.Watermark() != c.Cursor {
		t.Fatalf("watermark = %v after filling the hole, want %v", f.p.Watermark(), c.Cursor)
	}
	if p := f.store.product(t, "p1"); p.Name != "Steel kettle" || p.Version != 2 {
		t.Errorf("p1 = %+v; the record in the hole was not applied", p)
	}
}

func refsOfBulks(bulks [][]Write) [][]Ref {
	out := make([][]Ref, len(bulks))
	for i, b := range bulks {
		for _, w := range b {
			out[i] = append(out[i], w.Ref)
		}
	}
	return out
}

// The product is written, then the write of its reviews fails (a crash
// between the two, as far as the store can tell): the retry finds the
// product's marks and counts nothing twice.
func TestHandleCountsOnceWhenReviewsWereNotWritten(t *testing.T) {
	f := newFixture(t, nil)
	l := f.log
	acked(t, f.handle(t, l.add(t, "p1", created("Kettle"))))
	failed := false
	f.store.failWrite = func(_ int, ws []Write) ([]*WriteResult, error) {
		if !failed && ws[0].Ref.Kind == query.Reviews.Name {
			failed = true
			return nil, errors.New("connection reset")
		}
		return nil, nil
	}
	acked(t, f.handle(t,
		l.add(t, "r1", event.ReviewAdded{ProductID: "p1", Author: "Ada", Rating: 3}),
		l.add(t, "r2", event.ReviewAdded{ProductID: "p1", Author: "Bob", Rating: 5}),
		l.add(t, "r1", event.ReviewRemoved{ProductID: "p1", Rating: 3}),
	))
	if !failed {
		t.Fatal("the review write never failed")
	}
	p := f.store.product(t, "p1")
	if p.ReviewCount != 1 || p.RatingSum != 5 || len(p.LatestReviews) != 1 || p.LatestReviews[0].ID != "r2" {
		t.Errorf("product after a lost review write = %+v", p)
	}
	// And a redelivery of everything changes nothing.
	before := f.store.product(t, "p1")
	acked(t, f.handle(t, l.records...))
	if after := f.store.product(t, "p1"); after.ReviewCount != before.ReviewCount || after.RatingSum != before.RatingSum {
		t.Errorf("redelivery changed the product: %+v", after)
	}
}
