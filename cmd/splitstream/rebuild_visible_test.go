package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/query"
)

// TestRebuildNeverShowsFewerDocuments has readers search in a loop while a
// rebuild runs and checks that no search, during the rebuild or right after
// it, sees fewer documents than before it. The indices' refresh interval is
// a minute, so only an explicit refresh makes a new index searchable: a swap
// to an index not yet refreshed shows up as a count of 0, every time, not
// just when the swap happens to fall between two scheduled refreshes.
func TestRebuildNeverShowsFewerDocuments(t *testing.T) {
	_, pool := testenv.Postgres(t)
	es, prefix := testenv.Elasticsearch(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	seedLamps(t, ctx, pool)
	indices := elastic.NewIndices(es, prefix, time.Minute)
	r := rebuilder{pool: pool, es: es, indices: indices, log: testenv.Logger(t), progress: io.Discard, batch: 20}
	// The first rebuild fills the live indices; make them searchable by hand
	// so the baseline does not depend on the code under test.
	if _, err := r.run(ctx, elastic.Models, false); err != nil {
		t.Fatal(err)
	}
	searcher := elastic.NewSearcher(es, prefix)
	counts := func() (map[string]int, error) { return lampCounts(ctx, es, prefix, searcher) }
	for _, m := range elastic.Models {
		if err := indices.Refresh(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	before, err := counts()
	if err != nil {
		t.Fatal(err)
	}
	for what, n := range before {
		if n == 0 {
			t.Fatalf("before the rebuild %s counts nothing: %v", what, before)
		}
	}

	seen := &fewestCounts{fewest: map[string]int{}}
	for k, v := range before {
		seen.fewest[k] = v
	}
	var wg sync.WaitGroup
	rebuilt := make(chan struct{})
	for range 2 {
		wg.Go(func() { seen.watch(counts, rebuilt) })
	}
	_, err = r.run(ctx, elastic.Models, false)
	close(rebuilt)
	wg.Wait()
	if err != nil {
		t.Fatalf("rebuild under readers: %v", err)
	}
	if seen.readErr != nil {
		t.Fatalf("a search failed during the rebuild: %v", seen.readErr)
	}
	t.Logf("%d searches; before %v, fewest seen %v", seen.searches, before, seen.fewest)
	for k, n := range before {
		if seen.fewest[k] < n {
			t.Errorf("%s: a search during the rebuild saw %d documents, %d before it", k, seen.fewest[k], n)
		}
	}
}

// seedLamps writes 80 products with a review each, and an order and a
// customer for every fourth.
func seedLamps(t *testing.T, ctx context.Context, pool *pgxpool.Pool) {
	svc, err := command.NewService(testenv.EventStore(t, pool))
	if err != nil {
		t.Fatal(err)
	}
	for i := range 80 {
		p, err := svc.CreateProduct(ctx, command.Meta{Actor: "test"}, command.CreateProduct{Name: fmt.Sprintf("Lamp %d", i),
			Description: "rebuild visibility test", Category: "c", PriceCents: 100, Currency: "EUR", Stock: 5})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.AddReview(ctx, command.Meta{Actor: "test"}, command.AddReview{ProductID: p.ID, Author: "R", Rating: 4}); err != nil {
			t.Fatal(err)
		}
		if i%4 == 0 {
			if _, err := svc.RegisterCustomer(ctx, command.Meta{Actor: "test"}, command.RegisterCustomer{ID: fmt.Sprintf("lamp-c%d", i),
				DisplayName: "Ada", Email: "ada@example.com", ShippingAddress: "1 Loop Rd"}); err != nil {
				t.Fatal(err)
			}
			if _, err := svc.PlaceOrder(ctx, command.Meta{Actor: "test"}, command.PlaceOrder{CustomerID: "c", Currency: "EUR",
				Lines: []event.OrderLine{{ProductID: p.ID, Quantity: 1}}}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// lampCounts is what a reader sees: the lamps a search finds, and the
// documents of each model.
func lampCounts(ctx context.Context, es *elasticsearch.Client, prefix string, searcher *elastic.Searcher) (map[string]int, error) {
	out := map[string]int{}
	page, err := searcher.SearchProducts(ctx, query.ProductQuery{Search: "lamp", First: 5})
	if err != nil {
		return nil, err
	}
	out["products(search: lamp)"] = page.TotalCount
	for _, m := range elastic.Models {
		var res struct{ Count int }
		if err := elastic.Do(ctx, es, http.MethodGet, "/"+elastic.Alias(prefix, m)+"/_count", "", &res); err != nil {
			return nil, err
		}
		out[m] = res.Count
	}
	return out, nil
}

// fewestCounts is the fewest documents readers saw of each count; read it
// after the readers are done.
type fewestCounts struct {
	mu       sync.Mutex
	fewest   map[string]int
	searches int
	readErr  error
}

// watch counts until 20 searches after rebuilt is closed, or one fails.
func (f *fewestCounts) watch(counts func() (map[string]int, error), rebuilt <-chan struct{}) {
	after := 0 // searches since the rebuild ended
	for after < 20 {
		select {
		case <-rebuilt:
			after++
		default:
		}
		got, err := counts()
		f.mu.Lock()
		f.searches++
		if err != nil && f.readErr == nil {
			f.readErr = err
		}
		for k, v := range got {
			f.fewest[k] = min(f.fewest[k], v)
		}
		f.mu.Unlock()
		if err != nil {
			return
		}
	}
}
