package elastic_test

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/query"
)

var allModels = append(append([]string{}, elastic.Models...), query.Checkpoints.Index)

// layout returns, per model, the indices under prefix and which of them the
// model's alias points at as its write index.
func layout(t *testing.T, es *elasticsearch.Client, prefix string) (indices, writes map[string][]string) {
	t.Helper()
	var got map[string]struct {
		Aliases map[string]struct {
			IsWriteIndex bool `json:"is_write_index"`
		} `json:"aliases"`
	}
	if err := elastic.Do(context.Background(), es, http.MethodGet, "/"+prefix+"-*/_alias?allow_no_indices=true", "", &got); err != nil {
		t.Fatal(err)
	}
	indices, writes = map[string][]string{}, map[string][]string{}
	for name, idx := range got {
		model := ""
		for _, m := range allModels {
			if strings.HasPrefix(name, prefix+"-"+m+"-") {
				model = m
			}
		}
		if model == "" {
			t.Errorf("index %s belongs to no model", name)
			continue
		}
		indices[model] = append(indices[model], name)
		for alias, a := range idx.Aliases {
			if alias != elastic.Alias(prefix, model) {
				t.Errorf("index %s has foreign alias %s", name, alias)
			}
			if a.IsWriteIndex {
				writes[model] = append(writes[model], name)
			}
		}
	}
	for _, m := range allModels {
		sort.Strings(indices[m])
	}
	return indices, writes
}

// ensureAll runs Ensure from n goroutines at once, each with its own client
// (as separate processes would), and returns their errors.
func ensureAll(t *testing.T, prefix string, n int) []error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	clients := make([]*elasticsearch.Client, n)
	for i := range clients {
		c, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{testenv.ElasticsearchURL()}})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = elastic.NewIndices(c, prefix, time.Second).Ensure(ctx)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// TestEnsureConcurrent starts many copies at once on fresh prefixes, ten
// times over: every copy succeeds, and each alias ends with exactly one
// index, which is its write index, and no index is left over. Then, after a
// rebuild swapped every alias to a new index and deleted the first ones,
// concurrent copies again change nothing.
func TestEnsureConcurrent(t *testing.T) {
	es, base := testenv.Elasticsearch(t)
	const copies = 8
	for round := range 10 {
		prefix := fmt.Sprintf("%s-r%d", base, round)
		for i, err := range ensureAll(t, prefix, copies) {
			if err != nil {
				t.Errorf("round %d, copy %d: %v", round, i, err)
			}
		}
		indices, writes := layout(t, es, prefix)
		for _, m := range allModels {
			if len(indices[m]) != 1 || len(writes[m]) != 1 || writes[m][0] != indices[m][0] {
				t.Errorf("round %d, %s: indices %v, write indices %v; want one index, its alias's write index", round, m, indices[m], writes[m])
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}

	prefix := base + "-r0"
	x := elastic.NewIndices(es, prefix, time.Second)
	ctx := context.Background()
	swapped := map[string]string{}
	for _, m := range allModels {
		first, err := x.Current(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		next, err := x.Create(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.Swap(ctx, m, next); err != nil {
			t.Fatal(err)
		}
		if err := x.Delete(ctx, first); err != nil {
			t.Fatal(err)
		}
		if cur, err := x.Current(ctx, m); err != nil || cur != next {
			t.Fatalf("%s: current %s, %v; want %s", m, cur, err, next)
		}
		swapped[m] = next
	}
	for i, err := range ensureAll(t, prefix, copies) {
		if err != nil {
			t.Errorf("after a rebuild, copy %d: %v", i, err)
		}
	}
	indices, writes := layout(t, es, prefix)
	for _, m := range allModels {
		if len(indices[m]) != 1 || indices[m][0] != swapped[m] || len(writes[m]) != 1 || writes[m][0] != swapped[m] {
			t.Errorf("after a rebuild, %s: indices %v, write indices %v; want only %s", m, indices[m], writes[m], swapped[m])
		}
	}
}

// TestSwapMakesTheNewIndexSearchable fills a new index whose refresh
// interval is a minute, so nothing in it is searchable yet, swaps the alias
// to it, and searches through the alias at once: every document must be
// there, not just those of a refresh that happened to run.
func TestSwapMakesTheNewIndexSearchable(t *testing.T) {
	es, prefix := testenv.Elasticsearch(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	x := elastic.NewIndices(es, prefix, time.Minute)
	if err := x.Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	next, err := x.Create(ctx, query.Products.Index)
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	var bulk strings.Builder
	for i := range n {
		fmt.Fprintf(&bulk, `{"index":{"_index":%q,"_id":"p%d"}}`+"\n"+`{"id":"p%d","name":"Lamp %d","version":1}`+"\n", next, i, i, i)
	}
	var res struct{ Errors bool }
	if err := elastic.DoNDJSON(ctx, es, "/_bulk", bulk.String(), &res); err != nil || res.Errors {
		t.Fatalf("bulk: %v (item errors: %v)", err, res.Errors)
	}
	if _, err := x.Swap(ctx, query.Products.Index, next); err != nil {
		t.Fatal(err)
	}
	var count struct{ Count int }
	if err := elastic.Do(ctx, es, http.MethodGet, "/"+elastic.Alias(prefix, query.Products.Index)+"/_count", "", &count); err != nil {
		t.Fatal(err)
	}
	if count.Count != n {
		t.Fatalf("right after the swap a search through the alias counts %d documents, want %d", count.Count, n)
	}
}
