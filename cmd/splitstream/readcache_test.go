package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// cacheHits reads a query instance's read cache hit counter.
func cacheHits(t *testing.T, addr string) float64 {
	t.Helper()
	return cacheCount(t, addr, "splitstream_query_cache_hits_total")
}

// cacheCount reads one of a query instance's read cache counters.
func cacheCount(t *testing.T, addr, name string) float64 {
	t.Helper()
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		var n float64
		if _, err := fmt.Sscanf(line, name+" %g", &n); err == nil {
			return n
		}
	}
	t.Fatalf("no %s on /metrics", name)
	return 0
}

// With the read cache on (the default), product(id) is answered from it,
// and a rename shows as soon as this instance has seen the rename's
// notice: its productChanged push proves the notice arrived (the cache
// drops the document before the hub pushes), and from then on no read
// gives the old name.
func TestReadCacheFollowsNotices(t *testing.T) {
	env, commandURL, queryURL := stack(t)
	addr := env["SPLITSTREAM_QUERY_ADDR"]
	id, _ := createCached(t, commandURL, queryURL)
	// The create's notice may come after the first reads (it drops the
	// product once): a few reads, then one must be a hit.
	before, hit := cacheHits(t, addr), false
	for range 10 {
		if q := readCached(t, queryURL, id, ""); q.Product.Name != "Cached 0" {
			t.Fatalf("a plain read after the create: %+v", q)
		}
		if hit = cacheHits(t, addr) > before; hit {
			break
		}
	}
	if !hit {
		t.Fatal("ten reads of the product and not one answered from the cache: is it on?")
	}
	pushed := make(chan int, 64)
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	watch(t, ctx, "ws://"+addr+"/graphql", id, func(v int) { pushed <- v })
	for subscriptions(addr) < 1 {
		time.Sleep(20 * time.Millisecond)
	}
	for i := 1; i <= 10; i++ {
		name := fmt.Sprintf("Cached %d", i)
		version, _ := renameCached(t, commandURL, id, name)
		waitPush(t, pushed, version)
		for range 3 {
			if q := readCached(t, queryURL, id, ""); q.Product.Name != name || q.Product.Version != version {
				t.Fatalf("rename %d: after its push a read gave %+v, want %q v%d", i, q, name, version)
			}
		}
	}
}

// With the read cache on, a consistentWith read right after a rename,
// while the cache still holds the old name and the notice may be on its
// way, gives the rename's result, and plain reads after it never go back.
func TestReadCacheKeepsReadYourWrites(t *testing.T) {
	env, commandURL, queryURL := stack(t)
	addr := env["SPLITSTREAM_QUERY_ADDR"]
	id, token := createCached(t, commandURL, queryURL)
	// A consistentWith read is never a hit, even of a document the cache
	// holds: this is what the race below depends on, and the race itself
	// is usually won by the notice.
	readCached(t, queryURL, id, "")
	hits, misses := cacheHits(t, addr), cacheCount(t, addr, "splitstream_query_cache_misses_total")
	readCached(t, queryURL, id, token)
	if h, m := cacheHits(t, addr), cacheCount(t, addr, "splitstream_query_cache_misses_total"); h != hits || m != misses+1 {
		t.Fatalf("a consistentWith read of a cached product: hits %v → %v, misses %v → %v; want one miss", hits, h, misses, m)
	}
	for i := 1; i <= 20; i++ {
		if q := readCached(t, queryURL, id, ""); q.Product.Name != fmt.Sprintf("Cached %d", i-1) {
			t.Fatalf("before rename %d a read gave %+v", i, q) // the last consistentWith read was kept
		}
		name := fmt.Sprintf("Cached %d", i)
		version, token := renameCached(t, commandURL, id, name)
		if q := readCached(t, queryURL, id, token); q.Product.Name != name || q.Product.Version != version {
			t.Fatalf("rename %d: the consistentWith read gave %+v, want %q v%d", i, q, name, version)
		}
	}
}

type cachedRead struct {
	Product struct {
		Name    string
		Version int
	}
}

// createCached creates the product "Cached 0" and reads it once with its
// token, which puts it in the cache; it returns the id and the token.
func createCached(t *testing.T, commandURL, queryURL string) (string, string) {
	t.Helper()
	var c struct{ CreateProduct struct{ ID, Token string } }
	if err := gql(commandURL, `mutation { createProduct(input: {name: "Cached 0", category: "c", priceCents: 100, currency: "EUR", stock: 1}) { id token } }`, nil, &c); err != nil {
		t.Fatal(err)
	}
	if q := readCached(t, queryURL, c.CreateProduct.ID, c.CreateProduct.Token); q.Product.Name != "Cached 0" {
		t.Fatalf("after the create: %+v", q)
	}
	return c.CreateProduct.ID, c.CreateProduct.Token
}

func readCached(t *testing.T, queryURL, id, token string) cachedRead {
	t.Helper()
	var q cachedRead
	if err := gql(queryURL, `query($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { name version } }`,
		map[string]any{"id": id, "t": token}, &q); err != nil {
		t.Fatal(err)
	}
	return q
}

func renameCached(t *testing.T, commandURL, id, name string) (version int, token string) {
	t.Helper()
	var r struct {
		RenameProduct struct {
			Version int
			Token   string
		}
	}
	if err := gql(commandURL, `mutation($id: ID!, $n: String!) { renameProduct(input: {id: $id, name: $n}) { version token } }`,
		map[string]any{"id": id, "n": name}, &r); err != nil {
		t.Fatal(err)
	}
	return r.RenameProduct.Version, r.RenameProduct.Token
}

// waitPush waits for the push of version v (a minute at most: the notice
// is lost otherwise).
func waitPush(t *testing.T, pushed <-chan int, v int) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		select {
		case got := <-pushed:
			if got >= v {
				return
			}
		case <-timeout:
			t.Fatalf("no push of version %d within a minute", v)
		}
	}
}
