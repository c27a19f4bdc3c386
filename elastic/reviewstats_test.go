package elastic_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// The index's review sums follow query.StatsOf exactly: removed reviews,
// reviews of other products and not-yet-created ones do not count; the
// latest are the newest five, ties by id.
func TestReviewStatsEqualStatsOf(t *testing.T) {
	es, prefix := testenv.Elasticsearch(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := elastic.NewIndices(es, prefix, time.Hour).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	s := elastic.NewDocStore(es, prefix)
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	byProduct := map[string][]*query.Review{}
	var writes []projector.Write
	for i := range 60 {
		pid := fmt.Sprintf("p%d", i%3)
		r := &query.Review{ID: fmt.Sprintf("r%02d", i), ProductID: pid, Author: "a", Rating: 1 + i%5, Comment: "c",
			Removed: i%7 == 0, Version: 1 + i%2, CreatedAt: at.Add(time.Duration(i/4) * time.Minute)}
		byProduct[pid] = append(byProduct[pid], r)
		src, _ := json.Marshal(r)
		writes = append(writes, projector.Write{Ref: projector.Ref{Kind: query.Reviews.Name, ID: r.ID}, Op: projector.Create, Doc: src})
	}
	res, err := s.Write(ctx, writes)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	// The refresh interval is an hour: only ReviewStats' own refresh makes
	// the writes count.
	got, err := s.ReviewStats(ctx, []string{"p0", "p1", "p2", "none"})
	if err != nil {
		t.Fatal(err)
	}
	for _, pid := range []string{"p0", "p1", "p2", "none"} {
		want := query.StatsOf(byProduct[pid])
		g := got[pid]
		if diff := cmp.Diff(want, g); diff != "" {
			t.Errorf("%s (-StatsOf +index):\n%s", pid, diff)
		}
	}
}

// Keywords far over Lucene's 32,766-byte term limit do not make
// Elasticsearch refuse the document (ignore_above): it is stored whole.
func TestOverlongKeywordsAreStoredNotRefused(t *testing.T) {
	es, prefix := testenv.Elasticsearch(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := elastic.NewIndices(es, prefix, time.Second).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	for _, model := range []string{query.Products.Index, query.Reviews.Index, query.Orders.Index, query.Events.Index} {
		m, _ := elastic.Mapping(model)
		if strings.Contains(m, `{"type":"keyword"}`) {
			t.Errorf("%s has a keyword field without ignore_above", model)
		}
	}
	long := strings.Repeat("é", 40_000) // 80,000 bytes
	s := elastic.NewDocStore(es, prefix)
	order, _ := json.Marshal(query.Order{ID: "o1", CustomerID: long, Status: "PENDING", Currency: long,
		Lines: []query.OrderLine{{ProductID: long, ProductName: long, Quantity: 1}}, Version: 1})
	review, _ := json.Marshal(query.Review{ID: "r1", ProductID: long, Author: long, Rating: 3, Version: 1})
	res, err := s.Write(ctx, []projector.Write{
		{Ref: projector.Ref{Kind: query.Orders.Name, ID: "o1"}, Op: projector.Create, Doc: order},
		{Ref: projector.Ref{Kind: query.Reviews.Name, ID: "r1"}, Op: projector.Create, Doc: review},
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Errorf("write %d refused: %v", i, r.Err)
		}
	}
	got, err := s.Get(ctx, []projector.Ref{{Kind: query.Orders.Name, ID: "o1"}})
	if err != nil || !got[0].Found || !strings.Contains(string(got[0].Source), long) {
		t.Errorf("the order was not stored whole: %v", err)
	}
}
