package query

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"github.com/prometheus/client_golang/prometheus"
)

// DefaultCacheSize is how many documents the read cache keeps unless
// SPLITSTREAM_QUERY_CACHE_SIZE says otherwise (0 turns it off).
const DefaultCacheSize = 10_000

// CacheMaxAge bounds how long a document is served from the cache without
// being read again. Notices keep entries fresh; this is for the changes no
// notice announces: a notice the projector failed to publish, one the
// notice queue dropped past its length limit, a rebuild's alias swap.
const CacheMaxAge = 30 * time.Second

// Cache is an Index that keeps the documents it reads by id (Get), up to
// a size, least recently used first out. The projector's notices keep it
// fresh: Forget drops every document a notice changed before the notice
// moves the watermark or reaches a subscriber, so once a notice is seen
// the older revision is never served. While the notice stream is down
// (Live(false)), notices may be missed: the cache is emptied and every
// read goes to the index until the stream is bound again.
//
// Entries are copies: a caller may change the document it gets (the read
// path fills references into it) without touching what others are served.
// Searches, multi-gets and everything else go to the index as they are.
type Cache struct {
	Index
	now    func() time.Time
	maxAge time.Duration

	mu   sync.Mutex
	docs *simplelru.LRU[cacheKey, cached]
	// dropped holds, for the documents notices changed lately, the number
	// of the last change (gen): a read that began before it may have
	// read the older revision and is not kept. forgotten is the newest
	// number it has let go of, cleared the number of the last emptying.
	dropped   *simplelru.LRU[cacheKey, uint64]
	gen       uint64
	forgotten uint64
	cleared   uint64
	live      bool

	hits, misses prometheus.Counter
}

type cacheKey struct {
	kind Name
	id   string
}

type cached struct {
	doc Doc
	at  time.Time
}

// NewCache returns a cache of up to size documents in front of index, not
// live until Live(true). It refuses a nil dependency and a size below one.
func NewCache(index Index, size int, reg prometheus.Registerer) (*Cache, error) {
	switch {
	case index == nil:
		return nil, errors.New("query: nil index for the cache")
	case reg == nil:
		return nil, errors.New("query: nil metrics registerer")
	case size < 1:
		return nil, errors.New("query: cache size must be at least 1")
	}
	c := &Cache{Index: index, now: time.Now, maxAge: CacheMaxAge,
		hits: prometheus.NewCounter(prometheus.CounterOpts{Name: "splitstream_query_cache_hits_total",
			Help: "Reads by id answered from the query service's document cache."}),
		misses: prometheus.NewCounter(prometheus.CounterOpts{Name: "splitstream_query_cache_misses_total",
			Help: "Reads by id the document cache sent to Elasticsearch."}),
	}
	var err error
	if c.docs, err = simplelru.NewLRU[cacheKey, cached](size, nil); err != nil {
		return nil, fmt.Errorf("query: cache: %w", err)
	}
	c.dropped, err = simplelru.NewLRU(size, func(_ cacheKey, gen uint64) { c.forgotten = max(c.forgotten, gen) })
	if err != nil {
		return nil, fmt.Errorf("query: cache: %w", err)
	}
	for _, m := range []prometheus.Collector{c.hits, c.misses} {
		if err := reg.Register(m); err != nil {
			return nil, fmt.Errorf("query: register cache metrics: %w", err)
		}
	}
	return c, nil
}

// Get returns a copy of the cached document, or reads it from the index
// and keeps a copy.
func (c *Cache) Get(ctx context.Context, k *Kind, id string) (*Doc, error) {
	key := cacheKey{k.Name, id}
	c.mu.Lock()
	e, ok := c.docs.Get(key)
	if ok && c.now().Sub(e.at) < c.maxAge { // nothing is kept while not live
		c.mu.Unlock()
		c.hits.Inc()
		d := e.doc.clone()
		return &d, nil
	}
	began := c.gen
	c.mu.Unlock()
	c.misses.Inc()
	return c.fill(ctx, k, key, began)
}

// Fresh reads the document from the index whatever the cache holds, and
// keeps it: a consistentWith read, whose watermark may have come from the
// checkpoint before this instance saw the notice.
func (c *Cache) Fresh(ctx context.Context, k *Kind, id string) (*Doc, error) {
	c.mu.Lock()
	began := c.gen
	c.mu.Unlock()
	c.misses.Inc()
	return c.fill(ctx, k, cacheKey{k.Name, id}, began)
}

// fill reads key from the index and keeps a copy, unless the cache may
// no longer trust the read: a notice changed the document (or the cache
// was emptied) since the read began at began, or the cache holds a newer
// revision already (a concurrent read saw a write this one did not).
func (c *Cache) fill(ctx context.Context, k *Kind, key cacheKey, began uint64) (*Doc, error) {
	d, err := c.Index.Get(ctx, k, key.id)
	if err != nil || d == nil {
		return d, err
	}
	keep := d.clone()
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.live || began < c.cleared || c.changedSince(key, began) {
		return d, nil
	}
	if e, ok := c.docs.Peek(key); ok && e.doc.Rev > d.Rev {
		return d, nil
	}
	c.docs.Add(key, cached{doc: keep, at: c.now()})
	return d, nil
}

// changedSince reports whether a notice may have changed key after the
// change numbered began; lock held.
func (c *Cache) changedSince(key cacheKey, began uint64) bool {
	if c.gen == began {
		return false
	}
	if g, ok := c.dropped.Peek(key); ok {
		return g > began
	}
	return c.forgotten > began
}

// Forget drops the documents changes name; the notice handler calls it
// before the notice moves the watermark or reaches the hub.
func (c *Cache) Forget(changes []Change) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, ch := range changes {
		key := cacheKey{ch.Kind, ch.ID}
		c.gen++
		c.docs.Remove(key)
		c.dropped.Add(key, c.gen)
	}
}

// Live says whether the notice stream is bound (true) or down (false).
// Either way the cache is emptied: notices published while it was down
// were never seen. While down, nothing is served or kept.
func (c *Cache) Live(up bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live = up
	c.clear()
}

// Clear empties the cache: a watermark moved from the checkpoint, ahead of
// the notices (Marks), so the cache may hold revisions older than the
// watermark reads now report. Reads that began before are not kept.
func (c *Cache) Clear() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.clear()
}

// clear empties the cache; lock held.
func (c *Cache) clear() {
	c.gen++
	c.cleared = c.gen
	c.docs.Purge()
}

// clone copies d deeply enough that changing the copy's value never
// changes d's.
func (d Doc) clone() Doc {
	if d.Value != nil {
		d.Value = deepCopy(reflect.ValueOf(d.Value)).Interface()
	}
	return d
}

// deepCopy copies v with its own slices, maps and pointed-to values. A
// struct's unexported fields are copied as they are (time.Time's location,
// which is never changed).
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type().Elem())
		out.Elem().Set(deepCopy(v.Elem()))
		return out
	case reflect.Slice:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.IsNil() {
			return v
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		for it := v.MapRange(); it.Next(); {
			out.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
		return out
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := range v.NumField() {
			if f := out.Field(i); f.CanSet() {
				f.Set(deepCopy(v.Field(i)))
			}
		}
		return out
	case reflect.Interface:
		if v.IsNil() {
			return v
		}
		out := reflect.New(v.Type()).Elem()
		out.Set(deepCopy(v.Elem()))
		return out
	}
	return v
}
