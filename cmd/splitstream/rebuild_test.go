package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"reflect"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/query"
)

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// stack runs every role in this process on fresh servers and returns the
// command and query endpoints; extra settings override the test defaults.
func stack(t testing.TB, extra ...map[string]string) (env map[string]string, commandURL, queryURL string) {
	t.Helper()
	return tracedStack(t, nil, extra...)
}

// tracedStack is stack with tp as every role's tracer provider (nil: off).
func tracedStack(t testing.TB, tp trace.TracerProvider, extra ...map[string]string) (env map[string]string, commandURL, queryURL string) {
	t.Helper()
	dbURL, _ := testenv.Postgres(t)
	amqpURL := testenv.RabbitMQ(t)
	_, prefix := testenv.Elasticsearch(t)
	env = map[string]string{
		"DATABASE_URL": dbURL, "AMQP_URL": amqpURL, "SPLITSTREAM_INDEX_PREFIX": prefix,
		"SPLITSTREAM_COMMAND_ADDR": freeAddr(t), "SPLITSTREAM_QUERY_ADDR": freeAddr(t), "SPLITSTREAM_ADMIN_ADDR": freeAddr(t),
		"SPLITSTREAM_GATEWAY_ADDR": freeAddr(t), "SPLITSTREAM_REFRESH_INTERVAL": "200ms",
		"SPLITSTREAM_JWT_SECRET": testJWTSecret, "SPLITSTREAM_TOKEN_SECRET": testTokenSecret,
	}
	for _, m := range extra {
		maps.Copy(env, m)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- runTraced(ctx, []string{"all"}, func(k string) string { return env[k] }, io.Discard, io.Discard, tp)
	}()
	t.Cleanup(func() { cancel(); <-done })
	for _, addr := range []string{env["SPLITSTREAM_COMMAND_ADDR"], env["SPLITSTREAM_QUERY_ADDR"], env["SPLITSTREAM_ADMIN_ADDR"], env["SPLITSTREAM_GATEWAY_ADDR"]} {
		deadline := time.Now().Add(60 * time.Second)
		for {
			res, err := http.Get("http://" + addr + "/readyz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not ready", addr)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return env, "http://" + env["SPLITSTREAM_COMMAND_ADDR"] + "/graphql", "http://" + env["SPLITSTREAM_QUERY_ADDR"] + "/graphql"
}

func gql(url, query string, vars map[string]any, out any) error {
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	var env struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		return fmt.Errorf("status %s: %w", res.Status, err)
	}
	if len(env.Errors) > 0 {
		return fmt.Errorf("%s", env.Errors[0].Message)
	}
	if out != nil {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

// A rebuild while commands and queries run: no query fails, and a second
// rebuild from scratch equals what the live projector and the first
// rebuild left behind, document for document.
func TestRebuildUnderLoad(t *testing.T) {
	env, commandURL, queryURL := stack(t)
	ids := createLamps(t, commandURL)
	ctx, stop := context.WithCancel(context.Background())
	l := &rebuildLoad{}
	var wg sync.WaitGroup
	wg.Go(func() { l.write(ctx, commandURL, ids) })
	wg.Go(func() { l.read(ctx, queryURL, ids) })
	time.Sleep(500 * time.Millisecond)
	a := testApp(t, env)
	pool, err := a.postgres(ctx)
	if err != nil {
		t.Fatal(err)
	}
	es, err := a.elasticsearch(ctx)
	if err != nil {
		t.Fatal(err)
	}
	indices := elastic.NewIndices(es, env["SPLITSTREAM_INDEX_PREFIX"], 200*time.Millisecond)
	r := rebuilder{pool: pool, es: es, indices: indices, log: testenv.Logger(t), progress: io.Discard, batch: 100,
		retireAfter: 5 * time.Second} // the live projector writes throughout
	if _, err := r.run(context.Background(), elastic.Models, false); err != nil {
		t.Fatalf("rebuild under load: %v", err)
	}
	time.Sleep(300 * time.Millisecond)
	stop()
	wg.Wait()
	t.Logf("during the rebuild: %d queries, %d mutations", l.queries.Load(), l.mutations.Load())
	if l.failures.Load() > 0 {
		t.Fatalf("%d of %d queries failed during the rebuild; first: %v", l.failures.Load(), l.queries.Load(), l.firstFailure.Load())
	}
	// Let the live projector finish, then rebuild again beside the live indices.
	if tok, ok := l.lastToken.Load().(string); ok {
		if err := gql(queryURL, `query($t: String) { products(consistentWith: $t, first: 1) { totalCount } }`, map[string]any{"t": tok}, nil); err != nil {
			t.Fatal(err)
		}
	}
	waitForRelayHead(t, pool, es, env["SPLITSTREAM_INDEX_PREFIX"])
	compareWithLive(t, es, indices, &r)
}

// createLamps creates 60 products through the command service.
func createLamps(t *testing.T, commandURL string) []string {
	var ids []string
	for i := range 60 {
		var res struct{ CreateProduct struct{ ID string } }
		if err := gql(commandURL, `mutation($n: String!) { createProduct(input: {name: $n, description: "rebuild test", category: "c", priceCents: 100, currency: "EUR", stock: 5}) { id } }`,
			map[string]any{"n": fmt.Sprintf("Lamp %d", i)}, &res); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.CreateProduct.ID)
	}
	return ids
}

// rebuildLoad is the writers and readers that run during a rebuild, and
// what they saw.
type rebuildLoad struct {
	queries, failures atomic.Int64
	mutations         atomic.Int64
	lastToken         atomic.Value
	firstFailure      atomic.Value
}

// write renames, reviews and orders the products until ctx ends.
func (l *rebuildLoad) write(ctx context.Context, commandURL string, ids []string) {
	// Bounded: writers faster than the rebuild's replay would keep the
	// head of the log ahead of it for as long as they write. The first
	// rebuild still runs under these writes; the readers go on until
	// it is done.
	const maxWrites = 2000
	for i := 0; ctx.Err() == nil && i < maxWrites; i++ {
		id := ids[i%len(ids)]
		var res struct {
			AddReview struct{ Token string }
		}
		time.Sleep(3 * time.Millisecond)
		if i%10 == 5 {
			_ = gql(commandURL, `mutation($id: ID!) { placeOrder(input: {customerId: "c", lines: [{productId: $id, quantity: 1}]}) { id } }`, map[string]any{"id": id}, nil)
		} else if i%2 == 0 {
			_ = gql(commandURL, `mutation($id: ID!, $n: String!) { renameProduct(input: {id: $id, name: $n}) { token } }`, map[string]any{"id": id, "n": fmt.Sprintf("Lamp %d v%d", i%len(ids), i)}, nil)
		} else if err := gql(commandURL, `mutation($id: ID!) { addReview(input: {productId: $id, author: "R", rating: 4}) { token } }`, map[string]any{"id": id}, &res); err == nil {
			l.lastToken.Store(res.AddReview.Token)
		}
		l.mutations.Add(1)
	}
}

// read queries the products until ctx ends, counting failures.
func (l *rebuildLoad) read(ctx context.Context, queryURL string, ids []string) {
	for i := 0; ctx.Err() == nil; i++ {
		err := gql(queryURL, `query($id: ID!) { product(id: $id) { id name reviewCount } products(search: "lamp", first: 5) { totalCount } reviews(productId: $id) { totalCount } }`,
			map[string]any{"id": ids[i%len(ids)]}, nil)
		l.queries.Add(1)
		if err != nil {
			l.failures.Add(1)
			l.firstFailure.CompareAndSwap(nil, err.Error())
		}
	}
}

// compareWithLive rebuilds again beside the live indices and wants every
// document the same in both.
func compareWithLive(t *testing.T, es *elasticsearch.Client, indices *elastic.Indices, r *rebuilder) {
	var err error
	live := map[string]string{}
	for _, m := range elastic.Models {
		if live[m], err = indices.Current(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.run(context.Background(), elastic.Models, true); err != nil {
		t.Fatalf("second rebuild: %v", err)
	}
	for _, m := range elastic.Models {
		rebuilt, err := indices.Current(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		a, b := allDocs(t, es, live[m]), allDocs(t, es, rebuilt)
		// Every model the load writes has documents: products, reviews,
		// orders, events (it registers no customers).
		if len(a) != len(b) || len(a) == 0 && m != query.Customers.Index {
			t.Fatalf("%s: live has %d documents, rebuilt %d", m, len(a), len(b))
		}
		for id, doc := range a {
			// "reviews" holds a product's marks of recently counted
			// reviews, bookkeeping whose set depends on batch bounds.
			delete(doc, "reviews")
			delete(b[id], "reviews")
			if !reflect.DeepEqual(doc, b[id]) {
				t.Fatalf("%s %s differs:\nlive    %v\nrebuilt %v", m, id, doc, b[id])
			}
		}
	}
}

func testApp(t *testing.T, env map[string]string) *app {
	t.Helper()
	cfg, err := bindConfig(flagSet(), func(k string) string { return env[k] })()
	if err != nil {
		t.Fatal(err)
	}
	a := newApp(cfg, testenv.Logger(t), io.Discard, io.Discard)
	t.Cleanup(a.close)
	return a
}

func flagSet() *flag.FlagSet { return flag.NewFlagSet("test", flag.ContinueOnError) }

// waitForRelayHead waits until the relay has published the whole log and
// every lane's checkpoint covers the last record published in it
// (lanesCaughtUp; no writer runs any more).
func waitForRelayHead(t *testing.T, pool *pgxpool.Pool, es *elasticsearch.Client, prefix string) {
	t.Helper()
	ctx := context.Background()
	searcher := elastic.NewSearcher(es, prefix)
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, err := lanesCaughtUp(ctx, pool, searcher)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the live projector never caught up with the log: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// allDocs reads every document of an index by id.
func allDocs(t *testing.T, es *elasticsearch.Client, index string) map[string]map[string]any {
	t.Helper()
	ctx := context.Background()
	if err := elastic.Do(ctx, es, http.MethodPost, "/"+index+"/_refresh", "", nil); err != nil {
		t.Fatal(err)
	}
	// Scroll through every document: a plain search returns at most 10,000,
	// and two indices would then be compared on two arbitrary subsets.
	type page struct {
		ScrollID string `json:"_scroll_id"`
		Hits     struct {
			Hits []struct {
				ID     string         `json:"_id"`
				Source map[string]any `json:"_source"`
			} `json:"hits"`
		} `json:"hits"`
	}
	out := map[string]map[string]any{}
	var res page
	if err := elastic.Do(ctx, es, http.MethodPost, "/"+index+"/_search?scroll=1m", `{"size":5000,"sort":["_doc"]}`, &res); err != nil {
		t.Fatal(err)
	}
	for len(res.Hits.Hits) > 0 {
		for _, h := range res.Hits.Hits {
			out[h.ID] = h.Source
		}
		id := res.ScrollID
		res = page{}
		if err := elastic.Do(ctx, es, http.MethodPost, "/_search/scroll", fmt.Sprintf(`{"scroll":"1m","scroll_id":%q}`, id), &res); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
