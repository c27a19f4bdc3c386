package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/event"
)

// Hub fans changes out to subscribers. For every change some subscriber
// wants, it reads the document from the index once and offers it to each
// matching subscriber without ever blocking: a subscriber whose buffer is
// full is cut off (its channel closes), so one slow client cannot hold up
// the projector's notices or anyone else.
type Hub struct {
	index  Index
	log    *slog.Logger
	buffer int
	limit  int
	opts   options

	mu       sync.Mutex
	next     int
	products map[string]map[int]*sub[Product] // by product id
	filtered map[string]map[int]*sub[Product] // productsChanged: all under ""
	reviews  map[string]map[int]*sub[Review]  // by product id
	orders   map[string]map[int]*sub[Order]   // by order id
	count    int

	dropped   prometheus.Counter
	delivered prometheus.Counter
	active    prometheus.Gauge
	// push delivers one change to the subscribers of its kind.
	push map[Name]func(ctx context.Context, c Change)
}

// maxSeen bounds the revisions a subscriber remembers (a productsChanged
// or reviewAdded subscription would otherwise keep one per document it was
// ever sent). When full it starts again: the memory only keeps a push that
// raced a newer one from repeating an older revision, and a restart costs at
// most one such repeat per document.
const maxSeen = 4096

type sub[T any] struct {
	ch   chan *T
	seen map[string]int64
	once sync.Once
	// visible, when set, says whether the subscriber may see doc: another
	// customer's order is never offered.
	visible func(doc *T) bool
}

// ErrTooManySubscribers is returned when the instance holds its limit.
var ErrTooManySubscribers = errors.New("too many subscriptions on this instance")

// NewHub returns a hub reading documents from index; buffer is each
// subscriber's queue, limit the most subscriptions the instance holds.
// It refuses a nil dependency and a size below one.
func NewHub(index Index, log *slog.Logger, reg prometheus.Registerer, buffer, limit int, opts ...Option) (*Hub, error) {
	switch {
	case index == nil:
		return nil, errors.New("query: nil index")
	case log == nil:
		return nil, errors.New("query: nil logger")
	case reg == nil:
		return nil, errors.New("query: nil metrics registerer")
	case buffer < 1 || limit < 1:
		return nil, errors.New("query: subscriber buffer and limit must be at least 1")
	}
	h := &Hub{
		index: index, log: log, buffer: buffer, limit: limit,
		products: map[string]map[int]*sub[Product]{},
		filtered: map[string]map[int]*sub[Product]{},
		reviews:  map[string]map[int]*sub[Review]{},
		orders:   map[string]map[int]*sub[Order]{},
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "splitstream_subscribers_cut_off_total",
			Help: "Subscribers disconnected because they did not keep up."}),
		delivered: prometheus.NewCounter(prometheus.CounterOpts{Name: "splitstream_subscription_messages_total",
			Help: "Documents offered to subscribers."}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{Name: "splitstream_subscriptions",
			Help: "Open subscriptions on this instance."}),
	}
	for _, c := range []prometheus.Collector{h.dropped, h.delivered, h.active} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("query: register hub metrics: %w", err)
		}
	}
	h.push = map[Name]func(context.Context, Change){
		Products.Name: h.pushProduct,
		Reviews.Name:  h.pushReview,
		Orders.Name:   h.pushOrder,
	}
	for _, o := range opts {
		o(&h.opts)
	}
	return h, nil
}

func newSub[T any](buffer int) *sub[T] {
	return &sub[T]{ch: make(chan *T, buffer), seen: map[string]int64{}}
}

func (s *sub[T]) close() { s.once.Do(func() { close(s.ch) }) }

// offer sends doc unless it is not newer (by its index revision) than one
// already sent; it reports false when the subscriber is full. Called with
// the hub's lock held.
func (s *sub[T]) offer(id string, rev int64, doc *T) bool {
	if rev <= s.seen[id] || s.visible != nil && !s.visible(doc) {
		return true
	}
	select {
	case s.ch <- doc:
		if len(s.seen) >= maxSeen {
			clear(s.seen)
		}
		s.seen[id] = rev
		return true
	default:
		return false
	}
}

// register adds a subscriber under key in m and removes it when ctx ends.
func register[T any](ctx context.Context, h *Hub, m map[string]map[int]*sub[T], key string, visible func(*T) bool) (<-chan *T, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count >= h.limit {
		return nil, ErrTooManySubscribers
	}
	s := newSub[T](h.buffer)
	s.visible = visible
	id := h.next
	h.next++
	if m[key] == nil {
		m[key] = map[int]*sub[T]{}
	}
	m[key][id] = s
	h.count++
	h.active.Inc()
	// A callback, not a goroutine parked on ctx.Done: at ten thousand
	// subscribers a goroutine each is 80 MB of stacks for nothing.
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := m[key][id]; ok {
			h.unregister(func() {
				delete(m[key], id)
				if len(m[key]) == 0 {
					delete(m, key)
				}
			})
		}
		s.close()
	})
	return s.ch, nil
}

// unregister removes a subscriber; called with the lock held.
func (h *Hub) unregister(remove func()) {
	remove()
	h.count--
	h.active.Dec()
}

// ProductChanged streams the product after each change.
func (h *Hub) ProductChanged(ctx context.Context, id string) (<-chan *Product, error) {
	if err := h.opts.permit(ctx, "productChanged"); err != nil {
		return nil, err
	}
	if err := checkID("id", id); err != nil {
		return nil, err
	}
	return register(ctx, h, h.products, id, nil)
}

// ReviewAdded streams reviews added to the product.
func (h *Hub) ReviewAdded(ctx context.Context, productID string) (<-chan *Review, error) {
	if err := h.opts.permit(ctx, "reviewAdded"); err != nil {
		return nil, err
	}
	if err := checkID("productId", productID); err != nil {
		return nil, err
	}
	return register(ctx, h, h.reviews, productID, nil)
}

// OrderChanged streams the order after each change.
func (h *Hub) OrderChanged(ctx context.Context, id string) (<-chan *Order, error) {
	if err := h.opts.permit(ctx, "orderChanged"); err != nil {
		return nil, err
	}
	if err := checkID("id", id); err != nil {
		return nil, err
	}
	var visible func(*Order) bool
	if h.opts.guard != nil {
		visible = func(o *Order) bool { return h.opts.sees(ctx, "orderChanged", o.CustomerID) }
	}
	return register(ctx, h, h.orders, id, visible)
}

// ProductsChanged streams every changed product that matches filter.
func (h *Hub) ProductsChanged(ctx context.Context, filter ProductFilter) (<-chan *Product, error) {
	if err := h.opts.permit(ctx, "productsChanged"); err != nil {
		return nil, err
	}
	if err := checkFilter(filter); err != nil {
		return nil, err
	}
	return register(ctx, h, h.filtered, "", filter.Matches)
}

// Publish reads each changed document someone wants and offers it to them.
// It never blocks on a subscriber.
func (h *Hub) Publish(ctx context.Context, changes []Change) {
	for _, c := range changes {
		if push, ok := h.push[c.Kind]; ok {
			push(ctx, c)
		}
	}
}

// wants reports whether anyone waits on the topic of c (any topic when
// c has none, an older notice's review).
func wants[T any](h *Hub, m map[string]map[int]*sub[T], c Change) bool {
	k, _ := KindNamed(c.Kind)
	topic := k.Topic(c)
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(m[topic]) > 0 || (topic == "" && len(m) > 0)
}

func (h *Hub) pushProduct(ctx context.Context, c Change) {
	h.mu.Lock()
	filtered := len(h.filtered) > 0
	h.mu.Unlock()
	if !filtered && !wants(h, h.products, c) {
		return
	}
	p, err := h.index.GetProduct(ctx, c.ID)
	if err != nil || p == nil || p.Version == 0 {
		h.logMiss(c, err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	offerAll(h, h.products[c.ID], p.ID, p.Rev, p)
	offerAll(h, h.filtered[""], p.ID, p.Rev, p)
}

// pushReview offers added reviews only: a rename reaches reviews when
// they are read.
func (h *Hub) pushReview(ctx context.Context, c Change) {
	if !slices.Contains(c.Types, event.ReviewAdded{}.EventType()) || !wants(h, h.reviews, c) {
		return
	}
	r, err := h.index.GetReview(ctx, c.ID)
	if err != nil || r == nil || r.Removed || r.Version == 0 {
		h.logMiss(c, err)
		return
	}
	one := []Review{*r}
	if err := FillProductNames(ctx, h.index, one); err != nil {
		h.logMiss(c, err)
		return
	}
	r = &one[0]
	h.mu.Lock()
	defer h.mu.Unlock()
	offerAll(h, h.reviews[r.ProductID], r.ID, r.Rev, r)
}

func (h *Hub) pushOrder(ctx context.Context, c Change) {
	if !wants(h, h.orders, c) {
		return
	}
	o, err := h.index.GetOrder(ctx, c.ID)
	if err != nil || o == nil || o.Version == 0 {
		h.logMiss(c, err)
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	offerAll(h, h.orders[c.ID], o.ID, o.Rev, o)
}

// offerAll offers doc to every subscriber in subs and cuts off those that
// are full; lock held.
func offerAll[T any](h *Hub, subs map[int]*sub[T], id string, rev int64, doc *T) {
	for k, s := range subs {
		if !s.offer(id, rev, doc) {
			h.cutOff(s.close, func() { delete(subs, k) })
		}
	}
}

// cutOff disconnects a subscriber that did not keep up; lock held.
func (h *Hub) cutOff(closeSub func(), remove func()) {
	h.unregister(remove)
	closeSub()
	h.dropped.Inc()
	h.log.Warn("subscriber cut off: it did not keep up")
}

func (h *Hub) logMiss(c Change, err error) {
	if err != nil {
		h.log.Warn("subscription: cannot read changed document", "kind", c.Kind, "id", c.ID, "err", err)
	}
}

// Matches reports whether p passes the filter.
func (f ProductFilter) Matches(p *Product) bool {
	switch {
	case f.Category != nil && p.Category != *f.Category,
		f.MinPriceCents != nil && p.PriceCents < *f.MinPriceCents,
		f.MaxPriceCents != nil && p.PriceCents > *f.MaxPriceCents,
		f.MinRating != nil && p.AverageRating < *f.MinRating,
		f.InStock != nil && p.InStock != *f.InStock,
		f.Status != nil && p.Status != *f.Status:
		return false
	}
	return true
}
