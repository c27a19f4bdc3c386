package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/query"
)

// Env is the running stack a bench measures and the raw servers under it.
type Env struct {
	Command  GraphQL
	Query    GraphQL
	Gateway  GraphQL // the gateway suite's (gateway.go)
	QueryWS  string
	Pool     *pgxpool.Pool
	ES       *elasticsearch.Client
	Prefix   string
	Refresh  time.Duration
	Quick    bool
	Progress io.Writer
	// Subscribers is how many WebSocket subscribers the subscriptions
	// suite opens; QueryMetrics the query instance's /metrics, if known.
	Subscribers  int
	QueryMetrics string
	// EnsureProducts makes at least n products exist in the index.
	EnsureProducts func(ctx context.Context, n int) error
}

func (e Env) say(format string, args ...any) {
	fmt.Fprintf(e.Progress, "bench: "+format+"\n", args...)
}

func (e Env) duration() time.Duration {
	if e.Quick {
		return 4 * time.Second
	}
	return 15 * time.Second
}

const createProduct = `mutation($in: CreateProductInput!) { createProduct(input: $in) { id version token } }`

func productInput(name string) map[string]any {
	return map[string]any{"in": map[string]any{
		"name": name, "description": "A benchmark product with a description of ordinary length.",
		"category": "bench", "priceCents": 1999, "currency": "EUR", "stock": 100,
	}}
}

// Write measures createProduct through the command service at 1, 8 and 32
// clients, beside plain pgx inserts of a ~1 KiB jsonb row per transaction.
func Write(ctx context.Context, e Env) ([]Result, error) {
	if _, err := e.Pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_ceiling (id bigserial PRIMARY KEY, data jsonb NOT NULL)`); err != nil {
		return nil, fmt.Errorf("ceiling table: %w", err)
	}
	defer e.Pool.Exec(context.WithoutCancel(ctx), `DROP TABLE IF EXISTS bench_ceiling`)
	row, _ := json.Marshal(map[string]any{"name": strings.Repeat("x", 900), "category": "bench", "priceCents": 1999})
	var out []Result
	for _, clients := range []int{1, 8, 32} {
		e.say("write: raw pgx inserts, %d clients, %s", clients, e.duration())
		rawRate, rawLat, err := Load(ctx, clients, e.duration(), func(ctx context.Context, _, _ int) error {
			tx, err := e.Pool.Begin(ctx)
			if err != nil {
				return err
			}
			defer tx.Rollback(ctx)
			if _, err := tx.Exec(ctx, `INSERT INTO bench_ceiling (data) VALUES ($1)`, row); err != nil {
				return err
			}
			return tx.Commit(ctx)
		})
		if err != nil {
			return nil, fmt.Errorf("raw inserts: %w", err)
		}
		e.say("write: createProduct mutations, %d clients, %s", clients, e.duration())
		rate, lat, err := Load(ctx, clients, e.duration(), func(ctx context.Context, c, i int) error {
			return e.Command.Do(ctx, createProduct, productInput(fmt.Sprintf("Bench %d-%d", c, i)), nil)
		})
		if err != nil {
			return nil, fmt.Errorf("mutations: %w", err)
		}
		e.say("write: %d clients: %.0f mutations/s (raw %.0f/s)", clients, rate, rawRate)
		p99, rawP99 := Percentile(lat, 99), Percentile(rawLat, 99)
		out = append(out,
			Rate(fmt.Sprintf("write.c%d.throughput", clients), rate, rawRate, "ops/s", 0.5),
			Latency(fmt.Sprintf("write.c%d.p50", clients), Percentile(lat, 50), Percentile(rawLat, 50), "reported beside raw p50", time.Hour),
			Latency(fmt.Sprintf("write.c%d.p99", clients), p99, rawP99, "≤ 2 × raw p99 + 5 ms", 2*rawP99+5*time.Millisecond),
		)
	}
	return out, nil
}

// Visible measures mutation → visible through product(id) (a real-time get)
// and through products(search:), beside Elasticsearch's own index → get and
// index → search visibility on the same node.
func Visible(ctx context.Context, e Env) ([]Result, time.Duration, error) {
	samples := 40
	if e.Quick {
		samples = 15
	}
	if err := settle(ctx, e); err != nil {
		return nil, 0, err
	}
	e.say("visible: %d mutations, polling product(id) and products(search:) (refresh interval %s)", samples, e.Refresh)
	var getLat, searchLat []time.Duration
	for i := range samples {
		word := "zq" + strings.ReplaceAll(uuid.NewString()[:8], "-", "")
		var res struct {
			CreateProduct struct{ ID string } `json:"createProduct"`
		}
		start := time.Now()
		if err := e.Command.Do(ctx, createProduct, productInput("Visible "+word), &res); err != nil {
			return nil, 0, err
		}
		// product(id) alone until it answers, then products(search:)
		// alone, as the raw ceiling polls a get and then a search: a poll
		// of both at once would add a search's time to every get.
		get, err := pollVisible(ctx, e, start, `query($id: ID!) { product(id: $id) { id } }`, map[string]any{"id": res.CreateProduct.ID},
			func(q visiblePoll) bool { return q.Product != nil })
		if err != nil {
			return nil, 0, fmt.Errorf("product %s: %w", res.CreateProduct.ID, err)
		}
		search, err := pollVisible(ctx, e, start, `query($s: String) { products(search: $s, first: 1) { totalCount } }`, map[string]any{"s": word},
			func(q visiblePoll) bool { return q.Products.TotalCount > 0 })
		if err != nil {
			return nil, 0, fmt.Errorf("product %s in search: %w", res.CreateProduct.ID, err)
		}
		getLat, searchLat = append(getLat, get), append(searchLat, search)
		if i%5 == 4 {
			e.say("visible: %d/%d", i+1, samples)
		}
	}
	rawGet, rawSearch, err := rawVisibility(ctx, e, samples)
	if err != nil {
		return nil, 0, err
	}
	getP99, searchP99 := Percentile(getLat, 99), Percentile(searchLat, 99)
	bound := e.Refresh + 250*time.Millisecond
	return []Result{
		Latency("visible.get.p50", Percentile(getLat, 50), Percentile(rawGet, 50), "≤ 20 ms at one client", 20*time.Millisecond),
		Latency("visible.get.p99", getP99, Percentile(rawGet, 99), "≤ 50 ms at one client", 50*time.Millisecond),
		Latency("visible.search.p50", Percentile(searchLat, 50), Percentile(rawSearch, 50), "reported beside raw index → search", time.Hour),
		Latency("visible.search.p99", searchP99, Percentile(rawSearch, 99), fmt.Sprintf("≤ refresh %s + 250 ms", e.Refresh), bound),
	}, getP99, nil
}

// visiblePoll is what the visible suite's polls read.
type visiblePoll struct {
	Product  *struct{ ID string }     `json:"product"`
	Products struct{ TotalCount int } `json:"products"`
}

// pollVisible sends query every 2 ms until seen says its answer shows the
// write made at start, and returns how long after start that answer came.
func pollVisible(ctx context.Context, e Env, start time.Time, query string, vars map[string]any, seen func(visiblePoll) bool) (time.Duration, error) {
	for {
		if time.Since(start) > 30*time.Second {
			return 0, errors.New("not visible after 30s")
		}
		var q visiblePoll
		if err := e.Query.Do(ctx, query, vars, &q); err != nil {
			return 0, err
		}
		if seen(q) {
			return time.Since(start), nil
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// rawVisibility indexes documents straight into a scratch index with the
// same refresh interval and times how soon a get and a search see them.
func rawVisibility(ctx context.Context, e Env, samples int) ([]time.Duration, []time.Duration, error) {
	index := e.Prefix + "-bench-raw-" + strings.ToLower(uuid.NewString()[:8])
	body := fmt.Sprintf(`{"settings":{"number_of_shards":1,"number_of_replicas":0,"refresh_interval":"%dms"},"mappings":{"properties":{"name":{"type":"text"}}}}`, e.Refresh.Milliseconds())
	if err := elastic.Do(ctx, e.ES, http.MethodPut, "/"+index, body, nil); err != nil {
		return nil, nil, fmt.Errorf("raw index: %w", err)
	}
	defer elastic.Do(context.WithoutCancel(ctx), e.ES, http.MethodDelete, "/"+index, "", nil)
	var gets, searches []time.Duration
	for range samples {
		id, word := uuid.NewString(), "zr"+strings.ReplaceAll(uuid.NewString()[:8], "-", "")
		start := time.Now()
		if err := elastic.Do(ctx, e.ES, http.MethodPut, "/"+index+"/_doc/"+id, fmt.Sprintf(`{"name":"raw %s"}`, word), nil); err != nil {
			return nil, nil, err
		}
		gotGet, gotSearch := false, false
		for !gotGet || !gotSearch {
			if !gotGet {
				var g struct{ Found bool }
				if err := elastic.Do(ctx, e.ES, http.MethodGet, "/"+index+"/_doc/"+id, "", &g); err == nil && g.Found {
					gotGet = true
					gets = append(gets, time.Since(start))
				}
			}
			if !gotSearch {
				var s struct {
					Hits struct {
						Total struct{ Value int } `json:"total"`
					} `json:"hits"`
				}
				q := fmt.Sprintf(`{"query":{"match":{"name":%q}},"size":0}`, word)
				if err := elastic.Do(ctx, e.ES, http.MethodPost, "/"+index+"/_search", q, &s); err == nil && s.Hits.Total.Value > 0 {
					gotSearch = true
					searches = append(searches, time.Since(start))
				}
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	return gets, searches, nil
}

// Query measures products with search, filter and facets at 16 clients,
// beside the same Elasticsearch query sent directly.
func Query(ctx context.Context, e Env) ([]Result, error) {
	n := 100_000
	if e.Quick {
		n = 5_000
	}
	e.say("query: making sure %d products are indexed", n)
	if err := e.EnsureProducts(ctx, n); err != nil {
		return nil, err
	}
	words := []string{"kettle", "lamp", "tent", "speaker", "scarf", "puzzle", "notebook", "knife"}
	inStock, minRating := true, 2.0
	const gql = `query($s: String, $f: ProductFilter) { products(search: $s, filter: $f, first: 20) {
		totalCount edges { cursor node { id name priceCents averageRating } }
		facets { categories { category count } ratings { rating count } priceRanges { fromCents toCents count } } } }`
	searcher := elastic.NewSearcher(e.ES, e.Prefix)
	e.say("query: direct Elasticsearch, 16 clients, %s", e.duration())
	rawRate, rawLat, err := Load(ctx, 16, e.duration(), func(ctx context.Context, c, i int) error {
		_, err := searcher.SearchProducts(ctx, query.ProductQuery{Search: words[(c+i)%len(words)],
			Filter: query.ProductFilter{InStock: &inStock, MinRating: &minRating}, Sort: query.SortRelevance, First: 20})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("direct search: %w", err)
	}
	e.say("query: GraphQL products, 16 clients, %s", e.duration())
	rate, lat, err := Load(ctx, 16, e.duration(), func(ctx context.Context, c, i int) error {
		return e.Query.Do(ctx, gql, map[string]any{"s": words[(c+i)%len(words)], "f": map[string]any{"inStock": true, "minRating": 2.0}}, nil)
	})
	if err != nil {
		return nil, fmt.Errorf("graphql search: %w", err)
	}
	e.say("query: %.0f queries/s (direct %.0f/s)", rate, rawRate)
	rawP99 := Percentile(rawLat, 99)
	gets, err := getByID(ctx, e, searcher)
	if err != nil {
		return nil, err
	}
	return append([]Result{
		Rate("query.c16.throughput", rate, rawRate, "q/s", 0.5),
		Latency("query.c16.p50", Percentile(lat, 50), Percentile(rawLat, 50), "reported beside direct p50", time.Hour),
		Latency("query.c16.p99", Percentile(lat, 99), rawP99, "≤ 2 × direct p99 + 5 ms", 2*rawP99+5*time.Millisecond),
	}, gets...), nil
}

// getByID measures product(id) at 16 clients over 100 products beside a
// real-time get of the same documents sent to Elasticsearch directly,
// alternating twice each so a neighbour's load falls on both. The query
// service keeps recently read documents (its read cache), so the goal is
// above the direct get: 1.2 ×.
func getByID(ctx context.Context, e Env, searcher *elastic.Searcher) ([]Result, error) {
	var page struct {
		Products struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	if err := e.Query.Do(ctx, `{ products(first: 100) { edges { node { id } } } }`, nil, &page); err != nil {
		return nil, fmt.Errorf("product ids: %w", err)
	}
	var ids []string
	for _, edge := range page.Products.Edges {
		ids = append(ids, edge.Node.ID)
	}
	if len(ids) == 0 {
		return nil, errors.New("no products to read")
	}
	const get = `query($id: ID!) { product(id: $id) { id name priceCents stock averageRating reviewCount } }`
	direct := func(ctx context.Context, c, i int) error {
		_, err := searcher.Get(ctx, query.Products, ids[(c*7+i)%len(ids)])
		return err
	}
	graphql := func(ctx context.Context, c, i int) error {
		return e.Query.Do(ctx, get, map[string]any{"id": ids[(c*7+i)%len(ids)]}, nil)
	}
	var rate, rawRate float64
	var lat, rawLat []time.Duration
	d := e.duration() / 2
	for round := range 2 {
		e.say("query: product(id), direct Elasticsearch get, 16 clients, %s (round %d)", d, round+1)
		r, l, err := Load(ctx, 16, d, direct)
		if err != nil {
			return nil, fmt.Errorf("direct get: %w", err)
		}
		rawRate, rawLat = rawRate+r/2, append(rawLat, l...)
		e.say("query: product(id), GraphQL, 16 clients, %s (round %d)", d, round+1)
		if r, l, err = Load(ctx, 16, d, graphql); err != nil {
			return nil, fmt.Errorf("graphql get: %w", err)
		}
		rate, lat = rate+r/2, append(lat, l...)
	}
	e.say("query: product(id) %.0f queries/s (direct get %.0f/s)", rate, rawRate)
	return []Result{
		Rate("query.get.c16.throughput", rate, rawRate, "q/s", 1.2),
		Latency("query.get.c16.p50", Percentile(lat, 50), Percentile(rawLat, 50), "reported beside direct p50", time.Hour),
		Latency("query.get.c16.p99", Percentile(lat, 99), Percentile(rawLat, 99), "reported beside direct p99", time.Hour),
	}, nil
}

// Subscriptions opens e.Subscribers WebSocket subscribers (one connection
// each, 100 per product), renames the products they watch at a steady 50
// renames/s (so 5,000 pushes/s whatever the subscriber count: what grows
// with --subscribers is what the instance holds, not the push rate) and
// measures mutation → push latency beside the mutation → visible
// (real-time get) p99 of this run, and what each subscriber costs the
// query instance in memory and goroutines when its /metrics is reachable.
func Subscriptions(ctx context.Context, e Env, visibleP99 time.Duration) ([]Result, error) {
	plan := planSubscriptions(e.Subscribers, e.Quick)
	ids, err := createWatched(ctx, e, plan.products)
	if err != nil {
		return nil, err
	}
	before, beforeErr := scrapeProcess(ctx, e)
	e.say("subscriptions: opening %d WebSocket subscribers over %d products", plan.subscribers, plan.products)
	pushes := &pushTimes{sent: map[string]time.Time{}}
	subCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	opened := time.Now()
	if err := openSubscribers(subCtx, e, ids, plan.subscribers, pushes); err != nil {
		return nil, err
	}
	e.say("subscriptions: %d subscribers open in %s", plan.subscribers, time.Since(opened).Round(time.Millisecond))
	time.Sleep(time.Second) // let the last subscriptions register
	after, afterErr := scrapeProcess(ctx, e)
	e.say("subscriptions: %d renames at %d/s", plan.renames*plan.products, renamesPerSecond)
	if err := renameWatched(ctx, e, ids, plan.renames, pushes); err != nil {
		return nil, err
	}
	want := int64(plan.renames * plan.subscribers)
	deadline := time.Now().Add(30 * time.Second)
	for pushes.received.Load() < want && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	pushes.mu.Lock()
	defer pushes.mu.Unlock()
	lat := pushes.lat
	e.say("subscriptions: %d of %d pushes received", pushes.received.Load(), want)
	p99 := Percentile(lat, 99)
	delivered := Rate("subscriptions.delivered", float64(pushes.received.Load()), float64(want), "msgs", 1)
	delivered.Goal = "every subscriber gets every change"
	n := fmt.Sprintf("(%d subscribers)", plan.subscribers)
	rs := []Result{
		delivered,
		Latency("subscriptions.push.p50 "+n, Percentile(lat, 50), visibleP99, "reported beside visible p99", time.Hour),
		Latency("subscriptions.push.p99 "+n, p99, visibleP99, "≤ visible p99 + 100 ms", visibleP99+100*time.Millisecond),
	}
	if beforeErr != nil || afterErr != nil {
		e.say("subscriptions: the query instance's memory is not measured (%v)", errors.Join(beforeErr, afterErr))
		return rs, nil
	}
	per := float64(plan.subscribers)
	return append(rs,
		Reported("subscriptions.rss_per_subscriber", (after.rss-before.rss)/per/1024, "KiB"),
		Reported("subscriptions.goroutines_per_subscriber", (after.goroutines-before.goroutines)/per, "goroutines"),
	), nil
}

// renamesPerSecond paces the subscriptions suite's renames.
const renamesPerSecond = 50

// subscriptionPlan is the subscriptions suite's size.
type subscriptionPlan struct{ subscribers, products, renames int }

// planSubscriptions puts 100 subscribers on each product (at least 10
// products) and renames each product often enough for about 200 renames
// in all (100 with quick), at least twice.
func planSubscriptions(subscribers int, quick bool) subscriptionPlan {
	p := subscriptionPlan{subscribers: subscribers, products: max(10, subscribers/100)}
	total := 200
	if quick {
		total = 100
	}
	p.renames = max(2, total/p.products)
	return p
}

// pushTimes is when each rename was sent and how long its pushes took.
type pushTimes struct {
	mu       sync.Mutex
	sent     map[string]time.Time // "id/name" -> when the rename was sent
	lat      []time.Duration
	received atomic.Int64
}

func (p *pushTimes) send(id, name string) {
	p.mu.Lock()
	p.sent[id+"/"+name] = time.Now()
	p.mu.Unlock()
}

func (p *pushTimes) pushed(id, name string) {
	now := time.Now()
	p.mu.Lock()
	if t, ok := p.sent[id+"/"+name]; ok { // a rename's push, not the creation's
		p.lat = append(p.lat, now.Sub(t))
		p.received.Add(1)
	}
	p.mu.Unlock()
}

// createWatched creates the products the subscribers watch.
func createWatched(ctx context.Context, e Env, products int) ([]string, error) {
	ids := make([]string, products)
	for i := range ids {
		var res struct {
			CreateProduct struct{ ID string } `json:"createProduct"`
		}
		if err := e.Command.Do(ctx, createProduct, productInput(fmt.Sprintf("Watched %d", i)), &res); err != nil {
			return nil, err
		}
		ids[i] = res.CreateProduct.ID
	}
	return ids, nil
}

// openSubscribers opens subscribers WebSockets, spread over ids, until ctx
// ends, at most 64 handshakes at a time, and waits (60 s plus 1 ms a
// subscriber) for all of them to be ready.
func openSubscribers(ctx context.Context, e Env, ids []string, subscribers int, pushes *pushTimes) error {
	ready := make(chan error, subscribers)
	dialing := make(chan struct{}, 64) // handshakes in flight: a burst of thousands would only time out
	go func() {
		for s := range subscribers {
			id := ids[s%len(ids)]
			select {
			case dialing <- struct{}{}:
			case <-ctx.Done():
				return
			}
			go func() {
				err := subscribe(ctx, e.QueryWS, e.Query.Token, id, func(name string) { pushes.pushed(id, name) })
				<-dialing
				ready <- err
			}()
		}
	}()
	timeout := time.After(60*time.Second + time.Duration(subscribers)*time.Millisecond)
	for range subscribers {
		select {
		case err := <-ready:
			if err != nil {
				return fmt.Errorf("subscriber: %w", err)
			}
		case <-timeout:
			return fmt.Errorf("%d subscribers not ready in time", subscribers)
		}
	}
	return nil
}

// renameWatched renames every watched product renames times, round robin
// at renamesPerSecond, noting when.
func renameWatched(ctx context.Context, e Env, ids []string, renames int, pushes *pushTimes) error {
	tick := time.NewTicker(time.Second / renamesPerSecond)
	defer tick.Stop()
	for r := range renames {
		for _, id := range ids {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
			name := fmt.Sprintf("Watched %s %d", id[:4], r)
			pushes.send(id, name)
			if err := e.Command.Do(ctx, `mutation($id: ID!, $n: String!) { renameProduct(input: {id: $id, name: $n}) { version } }`,
				map[string]any{"id": id, "n": name}, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// settle waits until the read side has drained what earlier suites wrote,
// so a latency is not a backlog's: a marker product must become visible,
// and then the node must go quiet (quiet).
func settle(ctx context.Context, e Env) error {
	var res struct {
		CreateProduct struct{ ID string } `json:"createProduct"`
	}
	if err := e.Command.Do(ctx, createProduct, productInput("Settle marker"), &res); err != nil {
		return err
	}
	start := time.Now()
	for {
		var q struct {
			Product *struct{ ID string } `json:"product"`
		}
		if err := e.Query.Do(ctx, `query($id: ID!) { product(id: $id) { id } }`, map[string]any{"id": res.CreateProduct.ID}, &q); err != nil {
			return err
		}
		if q.Product != nil {
			if d := time.Since(start); d > time.Second {
				e.say("read side caught up with earlier writes in %s", d.Round(time.Millisecond))
			}
			return quiet(ctx, e)
		}
		if time.Since(start) > 10*time.Minute {
			return fmt.Errorf("the read side did not catch up within 10 minutes")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// quiet waits, up to a minute, until Elasticsearch (every node of it) has
// indexed nothing and merged nothing for a second: the marker is in one lane, and the other
// lanes may still be writing what an earlier suite left, or the node still
// merging its segments, and a latency "at low load" should not be theirs.
func quiet(ctx context.Context, e Env) error {
	start := time.Now()
	last, still := int64(-1), 0
	for still < 2 {
		if time.Since(start) > time.Minute {
			e.say("Elasticsearch still busy after a minute (indexing or merging); measuring anyway")
			return nil
		}
		var res struct {
			Nodes map[string]struct {
				Indices struct {
					Indexing struct {
						IndexTotal int64 `json:"index_total"`
					} `json:"indexing"`
					Merges struct {
						Current int64 `json:"current"`
					} `json:"merges"`
				} `json:"indices"`
			} `json:"nodes"`
		}
		if err := elastic.Do(ctx, e.ES, http.MethodGet, "/_nodes/stats/indices/indexing,merge", "", &res); err != nil {
			return err
		}
		total, merging := int64(0), int64(0)
		for _, n := range res.Nodes {
			total, merging = total+n.Indices.Indexing.IndexTotal, merging+n.Indices.Merges.Current
		}
		if total == last && merging == 0 {
			still++
		} else {
			still = 0
		}
		last = total
		if still < 2 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(500 * time.Millisecond):
			}
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		e.say("Elasticsearch went quiet in %s", d.Round(time.Millisecond))
	}
	return nil
}
