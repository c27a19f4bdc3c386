package elastic_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// swapRecords builds a product and one review of it, as the relay would.
func swapRecords(t *testing.T) []event.Record {
	t.Helper()
	var recs []event.Record
	prev := event.Cursor{}
	for i, x := range []struct {
		stream string
		pl     event.Payload
	}{
		{"p1", event.ProductCreated{Name: "Lamp", Description: "d", Category: "c", PriceCents: 100, Currency: "EUR", Stock: 1}},
		{"r1", event.ReviewAdded{ProductID: "p1", Author: "a", Rating: 4, Comment: "c"}},
	} {
		typ, sv, data, err := event.Encode(x.pl)
		if err != nil {
			t.Fatal(err)
		}
		e := event.Envelope{ID: fmt.Sprintf("ev-%d", i+1), Position: int64(i + 1), StreamID: x.stream, StreamType: event.StreamTypeOf(x.pl),
			Version: 1, Type: typ, SchemaVersion: sv, Data: data, OccurredAt: time.Date(2025, 1, 1, 0, 0, i, 0, time.UTC)}
		c := event.Cursor{Tx: uint64(100 + i), Position: int64(i + 1)}
		recs = append(recs, event.Record{Envelope: e, Cursor: c, Prev: prev})
		prev = c
	}
	return recs
}

// noHistory is an event store with no streams (no gap is ever filled).
type noHistory struct{}

func (noHistory) Load(context.Context, string) ([]event.Envelope, error) { return nil, nil }

// hookedStore runs hook once, after the nth call of the kind it watches.
type hookedStore struct {
	projector.Store
	mu           sync.Mutex
	gets, writes int
	afterGet     int
	afterWrite   int
	hook         func()
	hooked       bool
}

func (s *hookedStore) fire(n, at int) {
	if at > 0 && n == at && !s.hooked {
		s.hooked = true
		s.hook()
	}
}

func (s *hookedStore) Get(ctx context.Context, refs []projector.Ref) ([]projector.Stored, error) {
	out, err := s.Store.Get(ctx, refs)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gets++
	s.fire(s.gets, s.afterGet)
	return out, err
}

func (s *hookedStore) Write(ctx context.Context, w []projector.Write) ([]projector.WriteResult, error) {
	out, err := s.Store.Write(ctx, w)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes++
	s.fire(s.writes, s.afterWrite)
	return out, err
}

func newTestProjector(t *testing.T, store projector.Store) *projector.Projector {
	t.Helper()
	p, err := projector.New(projector.Config{Store: store, History: noHistory{}, DeadLetters: projector.NewMemoryDeadLetters(),
		Registerer: prometheus.NewRegistry(), Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A rebuild's swap that falls inside a live projector batch — between its
// reads, or between its write of a product and of the review the product
// counts — never leaves the new indices with a review the product does not
// count: the batch writes back only where it read, the old indices are
// read-only after the swap, and the batch starts over on the new ones. The
// rebuild catching up afterwards (the same review event, on the new
// indices) then finds it counted once.
func TestSwapInsideALiveBatchLosesNoCount(t *testing.T) {
	for _, c := range []struct {
		name                 string
		afterGet, afterWrite int
		aliasesOnly          bool // the moment after the aliases moved, before the old indices are read-only
	}{
		{"between the reads", 1, 0, false},
		{"between the reads, old indices still writable", 1, 0, true},
		{"between the product's and the review's write", 0, 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			es, prefix := testenv.Elasticsearch(t)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			x := elastic.NewIndices(es, prefix, time.Second)
			if err := x.Ensure(ctx); err != nil {
				t.Fatal(err)
			}
			recs := swapRecords(t)
			msg := func(r event.Record) []projector.Message { return []projector.Message{{Record: r, Chained: true}} }
			live := &hookedStore{Store: elastic.NewDocStore(es, prefix)}
			p := newTestProjector(t, live)
			if _, err := p.Handle(ctx, msg(recs[0])); err != nil {
				t.Fatal(err)
			}
			// The rebuild: fresh indices holding the product as its replay
			// left it (the review not yet), swapped in during the live
			// batch that applies the review.
			target := map[projector.Kind]string{}
			for _, k := range []*query.Kind{query.Products, query.Reviews, query.Events, query.Checkpoints} {
				name, err := x.Create(ctx, k.Index)
				if err != nil {
					t.Fatal(err)
				}
				target[k.Name] = name
			}
			rebuilt := newTestProjector(t, elastic.NewDocStoreOn(es, target))
			if _, err := rebuilt.Handle(ctx, msg(recs[0])); err != nil {
				t.Fatal(err)
			}
			live.mu.Lock()
			live.gets, live.writes, live.afterGet, live.afterWrite = 0, 0, c.afterGet, c.afterWrite
			live.hook = func() {
				to := map[string]string{}
				for _, k := range []*query.Kind{query.Products, query.Reviews, query.Events} {
					to[k.Index] = target[k.Name]
				}
				if c.aliasesOnly {
					moveAliases(t, es, prefix, to)
					return
				}
				if _, err := x.SwapAll(ctx, to); err != nil {
					t.Error(err)
				}
			}
			live.mu.Unlock()
			if _, err := p.Handle(ctx, msg(recs[1])); err != nil {
				t.Fatal(err)
			}
			if !live.hooked {
				t.Fatal("the swap never happened inside the batch")
			}
			// The rebuild catches up with the review after the swap.
			if _, err := rebuilt.Handle(ctx, msg(recs[1])); err != nil {
				t.Fatal(err)
			}
			got, err := elastic.NewSearcher(es, prefix).Get(ctx, query.Products, "p1")
			if err != nil || got == nil {
				t.Fatalf("product: %v %v", got, err)
			}
			if n := got.Value.(*query.Product).ReviewCount; n != 1 {
				t.Fatalf("the new product index counts %d reviews, want 1", n)
			}
		})
	}
}

// moveAliases points each model's alias at its new index in one action,
// and does nothing else.
func moveAliases(t *testing.T, es *elasticsearch.Client, prefix string, to map[string]string) {
	t.Helper()
	var actions []string
	for model, index := range to {
		alias := elastic.Alias(prefix, model)
		actions = append(actions, fmt.Sprintf(`{"remove":{"index":"%s-%s-*","alias":%q}}`, prefix, model, alias),
			fmt.Sprintf(`{"add":{"index":%q,"alias":%q,"is_write_index":true}}`, index, alias))
	}
	body := `{"actions":[` + strings.Join(actions, ",") + `]}`
	if err := elastic.Do(context.Background(), es, http.MethodPost, "/_aliases", body, nil); err != nil {
		t.Error(err)
	}
}
