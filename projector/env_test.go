package projector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// world is the write side on a fresh database.
type world struct {
	pool  *pgxpool.Pool
	store *postgres.EventStore
	svc   *command.Service
}

func newWorld(t *testing.T) *world {
	t.Helper()
	_, pool := testenv.Postgres(t)
	store := testenv.EventStore(t, pool)
	svc, err := command.NewService(store)
	if err != nil {
		t.Fatal(err)
	}
	return &world{pool: pool, store: store, svc: svc}
}

// readModels is a fresh set of indices under a unique prefix.
type readModels struct {
	es     *elasticsearch.Client
	prefix string
	docs   *elastic.DocStore
	idx    *elastic.Indices
}

func newReadModels(t *testing.T) *readModels {
	t.Helper()
	es, prefix := testenv.Elasticsearch(t)
	idx := elastic.NewIndices(es, prefix, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := idx.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	return &readModels{es: es, prefix: prefix, docs: elastic.NewDocStore(es, prefix), idx: idx}
}

func newProjector(t *testing.T, w *world, rm *readModels, notices projector.NoticePublisher) (*projector.Projector, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	p, err := projector.New(projector.Config{Store: rm.docs, History: w.store, EventLog: testenv.RelaySource(t, w.pool),
		Notices: notices, Registerer: reg, DeadLetters: projector.NewMemoryDeadLetters(),
		Log: testenv.Logger(t), MaxBackoff: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return p, reg
}

// commander issues random commands of every kind, from several goroutines
// at once, so transactions interleave as in production.
type commander struct {
	svc *command.Service
	mu  sync.Mutex
	rng *rand.Rand

	products    []string
	reviews     []string
	orders      []string
	reserved    map[string][]string // order -> products with a reservation
	ok, refused map[string]int
}

func newCommander(svc *command.Service, seed uint64) *commander {
	return &commander{svc: svc, rng: rand.New(rand.NewPCG(seed, seed+1)), reserved: map[string][]string{},
		ok: map[string]int{}, refused: map[string]int{}}
}

var words = []string{"Kettle", "Mug", "Teapot", "Spoon", "Whisk", "Pan", "Grater", "Sieve", "Ladle", "Jar"}

func (c *commander) pick(ids []string) string {
	if len(ids) == 0 {
		return ""
	}
	return ids[c.rng.IntN(len(ids))]
}

// one runs one random command; refusals (a discontinued product, not
// enough stock) are part of the game.
func (c *commander) one(ctx context.Context) error {
	kind, res, err := c.send(ctx, c.draw())
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return err
		}
		c.refused[kind]++
		return nil
	}
	c.ok[kind]++
	switch kind {
	case "create":
		c.products = append(c.products, res.ID)
	case "addReview":
		c.reviews = append(c.reviews, res.ID)
	case "placeOrder":
		c.orders = append(c.orders, res.ID)
	}
	return nil
}

// commandDraw is what one command is made of, drawn under the lock.
type commandDraw struct {
	r                      int // 0 to 99: which command
	name                   string
	product, review, order string
	qty, rating            int
	price                  int64
	lines                  []event.OrderLine
}

func (c *commander) draw() commandDraw {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := c.rng.IntN(100)
	if len(c.products) < 5 {
		r = 0
	}
	d := commandDraw{r: r}
	d.name = fmt.Sprintf("%s %d", words[c.rng.IntN(len(words))], c.rng.IntN(1000))
	d.product, d.review, d.order = c.pick(c.products), c.pick(c.reviews), c.pick(c.orders)
	d.qty, d.rating, d.price = 1+c.rng.IntN(3), 1+c.rng.IntN(5), int64(100+c.rng.IntN(10000))
	for range 1 + c.rng.IntN(3) {
		d.lines = append(d.lines, event.OrderLine{ProductID: c.pick(c.products), Quantity: 1 + c.rng.IntN(2)})
	}
	return d
}

// send sends the drawn command and says which kind it was.
func (c *commander) send(ctx context.Context, d commandDraw) (string, command.Result, error) {
	if d.r < 40 {
		return c.sendCatalog(ctx, d)
	}
	return c.sendTrade(ctx, d)
}

// sendCatalog sends the product commands, drawn with r < 40.
func (c *commander) sendCatalog(ctx context.Context, d commandDraw) (string, command.Result, error) {
	m, name, product, price := command.Meta{}, d.name, d.product, d.price
	switch {
	case d.r < 10:
		res, err := c.svc.CreateProduct(ctx, m, command.CreateProduct{Name: name, Description: "A " + name, Category: words[int(price)%3], PriceCents: price, Currency: "EUR", Stock: 20})
		return "create", res, err
	case d.r < 20:
		res, err := c.svc.ChangeProduct(ctx, product, m, command.RenameProduct{Name: name})
		return "rename", res, err
	case d.r < 26:
		res, err := c.svc.ChangeProduct(ctx, product, m, command.ChangeProductDescription{Description: "Now " + name})
		return "description", res, err
	case d.r < 33:
		res, err := c.svc.ChangeProduct(ctx, product, m, command.ChangeProductPrice{PriceCents: price})
		return "price", res, err
	case d.r < 38:
		res, err := c.svc.ChangeProduct(ctx, product, m, command.RestockProduct{Quantity: d.qty * 5})
		return "restock", res, err
	default:
		res, err := c.svc.ChangeProduct(ctx, product, m, command.DiscontinueProduct{})
		return "discontinue", res, err
	}
}

// sendTrade sends the review, order and stock commands, drawn with r >= 40.
func (c *commander) sendTrade(ctx context.Context, d commandDraw) (string, command.Result, error) {
	m, product, order, qty := command.Meta{}, d.product, d.order, d.qty
	switch {
	case d.r < 60:
		res, err := c.svc.AddReview(ctx, m, command.AddReview{ProductID: product, Author: d.name, Rating: d.rating, Comment: "about " + d.name})
		return "addReview", res, err
	case d.r < 67:
		res, err := c.svc.RemoveReview(ctx, d.review, m)
		return "removeReview", res, err
	case d.r < 79:
		res, err := c.svc.PlaceOrder(ctx, m, command.PlaceOrder{CustomerID: fmt.Sprintf("c%d", qty), Lines: d.lines})
		return "placeOrder", res, err
	case d.r < 84:
		res, err := c.svc.ChangeOrder(ctx, order, m, command.CancelOrder{Reason: "changed my mind"})
		return "cancelOrder", res, err
	case d.r < 90:
		res, err := c.svc.ChangeProduct(ctx, product, m, command.ReserveStock{OrderID: order, Quantity: qty})
		if err == nil {
			c.mu.Lock()
			c.reserved[order] = append(c.reserved[order], product)
			c.mu.Unlock()
		}
		return "reserve", res, err
	case d.r < 94:
		c.mu.Lock()
		held := c.reserved[order]
		c.mu.Unlock()
		if len(held) > 0 {
			product = held[0]
		}
		res, err := c.svc.ChangeProduct(ctx, product, m, command.ReleaseStock{OrderID: order})
		return "release", res, err
	case d.r < 97:
		res, err := c.svc.ChangeOrder(ctx, order, m, command.ConfirmOrder{})
		return "confirmOrder", res, err
	default:
		res, err := c.svc.ChangeOrder(ctx, order, m, command.RejectOrder{Reason: "insufficient stock"})
		return "rejectOrder", res, err
	}
}

// run issues n commands from workers goroutines.
func (c *commander) run(t *testing.T, ctx context.Context, n, workers int) {
	t.Helper()
	// A few products first, so that the other commands have targets.
	for range 5 {
		if err := c.one(ctx); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	jobs := make(chan struct{})
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range jobs {
				if err := c.one(ctx); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for range n - 5 {
		jobs <- struct{}{}
	}
	close(jobs)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	t.Logf("commands: ok %v, refused %v", c.ok, c.refused)
}

// readLog reads every event in relay order, chained as the relay chains
// them, from a database where no transaction is running.
func readLog(t *testing.T, pool *pgxpool.Pool) []event.Record {
	t.Helper()
	return readLogAfter(t, pool, event.Cursor{})
}

func readLogAfter(t *testing.T, pool *pgxpool.Pool, after event.Cursor) []event.Record {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT position, tx_id::text::bigint, event_id::text, stream_id, stream_type,
		version, event_type, schema_version, data, metadata, occurred_at
		FROM events WHERE (tx_id::text::bigint, position) > ($1, $2) ORDER BY tx_id, position`, int64(after.Tx), after.Position)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var recs []event.Record
	prev := after
	for rows.Next() {
		var (
			e              event.Envelope
			tx             int64
			data, metadata []byte
		)
		if err := rows.Scan(&e.Position, &tx, &e.ID, &e.StreamID, &e.StreamType, &e.Version, &e.Type,
			&e.SchemaVersion, &data, &metadata, &e.OccurredAt); err != nil {
			t.Fatal(err)
		}
		e.Data = data
		if err := json.Unmarshal(metadata, &e.Metadata); err != nil {
			t.Fatal(err)
		}
		c := event.Cursor{Tx: uint64(tx), Position: e.Position}
		recs = append(recs, event.Record{Envelope: e, Cursor: c, Prev: prev})
		prev = c
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return recs
}

// handle feeds msgs to p in batches of size, as the consumer would.
func handle(t *testing.T, p *projector.Projector, recs []event.Record, size int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	for len(recs) > 0 {
		n := min(size, len(recs))
		msgs := make([]projector.Message, n)
		for i, r := range recs[:n] {
			msgs[i] = projector.Message{Record: r, Chained: true}
		}
		vs, err := p.Handle(ctx, msgs)
		if err != nil {
			t.Fatal(err)
		}
		for i, v := range vs {
			if v.Action != projector.Ack {
				t.Fatalf("%s %s v%d: %v %s", recs[i].Envelope.StreamID, recs[i].Envelope.Type, recs[i].Envelope.Version, v.Action, v.Reason)
			}
		}
		recs = recs[n:]
	}
}

// expected folds the log, stream by stream, with the rules of package query.
type expected struct {
	products map[string]*query.Product
	reviews  map[string]*query.Review
	orders   map[string]*query.Order
	// lastNamed is the product version of the last event that set the name.
	lastNamed map[string]int
}

func foldLog(t *testing.T, recs []event.Record) expected {
	t.Helper()
	x := expected{products: map[string]*query.Product{}, reviews: map[string]*query.Review{},
		orders: map[string]*query.Order{}, lastNamed: map[string]int{}}
	byStream := map[string][]event.Envelope{}
	for _, r := range recs {
		byStream[r.Envelope.StreamID] = append(byStream[r.Envelope.StreamID], r.Envelope)
	}
	product := func(id string) *query.Product {
		if x.products[id] == nil {
			x.products[id] = &query.Product{}
		}
		return x.products[id]
	}
	for id, evs := range byStream {
		sort.Slice(evs, func(i, j int) bool { return evs[i].Version < evs[j].Version })
		for _, e := range evs {
			pl, err := e.Payload()
			if err != nil {
				t.Fatal(err)
			}
			var out query.Outcome
			switch e.StreamType {
			case event.StreamProduct:
				out = query.ApplyProduct(product(id), e, pl)
				switch pl.(type) {
				case event.ProductCreated, event.ProductRenamed:
					x.lastNamed[id] = e.Version
				}
			case event.StreamReview:
				if x.reviews[id] == nil {
					x.reviews[id] = &query.Review{}
				}
				out = query.ApplyReview(x.reviews[id], e, pl)
			case event.StreamOrder:
				if x.orders[id] == nil {
					x.orders[id] = &query.Order{}
				}
				out = query.ApplyOrder(x.orders[id], e, pl)
			}
			if out != query.Applied {
				t.Fatalf("folding %s v%d: %v", id, e.Version, out)
			}
		}
	}
	byProduct := map[string][]*query.Review{}
	for _, r := range x.reviews {
		byProduct[r.ProductID] = append(byProduct[r.ProductID], r)
	}
	for id, rs := range byProduct {
		product(id).SetReviewStats(id, query.StatsOf(rs))
	}
	return x
}

// verify checks that every document equals the fold of its events read
// back from Postgres, field by field, and that the product's rating
// figures match a count made directly from the review streams.
func verify(t *testing.T, pool *pgxpool.Pool, rm *readModels) {
	t.Helper()
	recs := readLog(t, pool)
	x := foldLog(t, recs)
	types := map[string]bool{}
	for _, r := range recs {
		types[r.Envelope.Type] = true
	}

	verifyDocuments(t, rm, x)
	verifyRatings(t, x)
	verifyEventsIndex(t, rm, len(recs))
	t.Logf("verified %d products, %d reviews, %d orders, %d events of %d types",
		len(x.products), len(x.reviews), len(x.orders), len(recs), len(types))
}

// verifyDocuments checks every document in the index against the fold of its events.
func verifyDocuments(t *testing.T, rm *readModels, x expected) {
	t.Helper()
	var refs []projector.Ref
	for id := range x.products {
		refs = append(refs, projector.Ref{Kind: query.Products.Name, ID: id})
	}
	for id := range x.reviews {
		refs = append(refs, projector.Ref{Kind: query.Reviews.Name, ID: id})
	}
	for id := range x.orders {
		refs = append(refs, projector.Ref{Kind: query.Orders.Name, ID: id})
	}
	stored, err := rm.docs.Get(context.Background(), refs)
	if err != nil {
		t.Fatal(err)
	}
	// Counted is the projector's bookkeeping of recently counted reviews
	// (query.Product.Counted); the fold has none.
	opts := cmp.Options{cmpopts.EquateEmpty(), cmpopts.IgnoreFields(query.Product{}, "Counted")}
	bad := 0
	for _, s := range stored {
		if !s.Found {
			t.Errorf("%s %s missing from the index", s.Ref.Kind, s.Ref.ID)
			bad++
			continue
		}
		var diff string
		switch s.Ref.Kind {
		case query.Products.Name:
			var got query.Product
			mustDecode(t, s.Source, &got)
			diff = cmp.Diff(x.products[s.Ref.ID], &got, opts)
		case query.Reviews.Name:
			var got query.Review
			mustDecode(t, s.Source, &got)
			// The product's name is not stored: it is read at read time.
			diff = cmp.Diff(x.reviews[s.Ref.ID], &got, opts)
		case query.Orders.Name:
			var got query.Order
			mustDecode(t, s.Source, &got)
			diff = cmp.Diff(x.orders[s.Ref.ID], &got, opts)
		}
		if diff != "" {
			bad++
			if bad <= 5 {
				t.Errorf("%s %s differs from the fold of its events (-want +got):\n%s", s.Ref.Kind, s.Ref.ID, diff)
			}
		}
	}
	if bad > 0 {
		t.Fatalf("%d of %d documents differ", bad, len(stored))
	}
}

// verifyRatings checks the rating figures, counted straight from the review streams.
func verifyRatings(t *testing.T, x expected) {
	t.Helper()
	count := map[string][]int{}
	for _, r := range x.reviews {
		if !r.Removed {
			count[r.ProductID] = append(count[r.ProductID], r.Rating)
		}
	}
	for id, p := range x.products {
		ratings := count[id]
		hist, sum := make([]int, 5), 0
		for _, r := range ratings {
			hist[r-1]++
			sum += r
		}
		avg := 0.0
		if len(ratings) > 0 {
			avg = float64(int(float64(sum)/float64(len(ratings))*100+0.5)) / 100
		}
		if p.ReviewCount != len(ratings) || p.RatingSum != sum || !cmp.Equal(p.RatingHistogram, hist) || p.AverageRating != avg {
			t.Errorf("product %s: %d reviews, sum %d, histogram %v, average %v; the review streams say %d, %d, %v, %v",
				id, p.ReviewCount, p.RatingSum, p.RatingHistogram, p.AverageRating, len(ratings), sum, hist, avg)
		}
	}
}

// verifyEventsIndex checks that every event is in the events index.
func verifyEventsIndex(t *testing.T, rm *readModels, events int) {
	t.Helper()
	if err := rm.idx.Refresh(context.Background(), query.Events.Index); err != nil {
		t.Fatal(err)
	}
	var c struct {
		Count int `json:"count"`
	}
	if err := elastic.Do(context.Background(), rm.es, "GET", "/"+elastic.Alias(rm.prefix, query.Events.Index)+"/_count", "", &c); err != nil {
		t.Fatal(err)
	}
	if c.Count != events {
		t.Errorf("events index holds %d events, the store %d", c.Count, events)
	}
}

func mustDecode(t *testing.T, src []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(src, v); err != nil {
		t.Fatal(err)
	}
}

// checkpointOf reads the projector's checkpoint document.
func checkpointOf(t *testing.T, rm *readModels) event.Cursor {
	t.Helper()
	s, err := rm.docs.Get(context.Background(), []projector.Ref{{Kind: query.Checkpoints.Name, ID: query.CheckpointID}})
	if err != nil {
		t.Fatal(err)
	}
	var c event.Cursor
	if s[0].Found {
		mustDecode(t, s[0].Source, &c)
	}
	return c
}

// metric sums the samples of a gauge or counter in reg.
func metric(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		total := 0.0
		for _, m := range mf.GetMetric() {
			switch {
			case m.Gauge != nil:
				total += m.Gauge.GetValue()
			case m.Counter != nil:
				total += m.Counter.GetValue()
			}
		}
		return total
	}
	return 0
}
