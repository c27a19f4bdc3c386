package query

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
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

	mu sync.Mutex
	// subs are the subscribers of each kind by topic (Kind.Topic); those
	// under "" want every document of the kind (productsChanged).
	subs  map[Name]map[string]map[int]subscriber
	next  int
	count int

	dropped   prometheus.Counter
	delivered prometheus.Counter
	active    prometheus.Gauge
}

// subscriber is a sub of any document type.
type subscriber interface {
	offer(id string, rev int64, doc any) bool
	close()
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
		subs: map[Name]map[string]map[int]subscriber{},
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
func (s *sub[T]) offer(id string, rev int64, d any) bool {
	doc := d.(*T)
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

// subscribe adds a subscriber to the changes of k's documents under
// topic (every document for ""), after asking the guard for op and then
// refusing check (the arguments' validation) when it is not nil, and
// removes it when ctx ends. visible, when set, filters the documents; a
// kind with an Owner shows each subscriber only what the caller may read.
func subscribe[T any](ctx context.Context, h *Hub, k *Kind, op, topic string, check error, visible func(*T) bool) (<-chan *T, error) {
	if err := h.opts.permit(ctx, op); err != nil {
		return nil, err
	}
	if check != nil {
		return nil, check
	}
	if k.Owner != nil && h.opts.guard != nil {
		filter := visible
		visible = func(doc *T) bool {
			return (filter == nil || filter(doc)) && h.opts.sees(ctx, op, k.Owner(doc))
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.count >= h.limit {
		return nil, ErrTooManySubscribers
	}
	s := newSub[T](h.buffer)
	s.visible = visible
	id := h.next
	h.next++
	m := h.subs[k.Name]
	if m == nil {
		m = map[string]map[int]subscriber{}
		h.subs[k.Name] = m
	}
	if m[topic] == nil {
		m[topic] = map[int]subscriber{}
	}
	m[topic][id] = s
	h.count++
	h.active.Inc()
	// A callback, not a goroutine parked on ctx.Done: at ten thousand
	// subscribers a goroutine each is 80 MB of stacks for nothing.
	context.AfterFunc(ctx, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if _, ok := m[topic][id]; ok {
			h.unregister(func() {
				delete(m[topic], id)
				if len(m[topic]) == 0 {
					delete(m, topic)
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
	return subscribe[Product](ctx, h, Products, "productChanged", id, checkID("id", id), nil)
}

// ReviewAdded streams reviews added to the product.
func (h *Hub) ReviewAdded(ctx context.Context, productID string) (<-chan *Review, error) {
	return subscribe[Review](ctx, h, Reviews, "reviewAdded", productID, checkID("productId", productID), nil)
}

// OrderChanged streams the order after each change, to its customer and
// admins only.
func (h *Hub) OrderChanged(ctx context.Context, id string) (<-chan *Order, error) {
	return subscribe[Order](ctx, h, Orders, "orderChanged", id, checkID("id", id), nil)
}

// ProductsChanged streams every changed product that matches filter.
func (h *Hub) ProductsChanged(ctx context.Context, filter ProductFilter) (<-chan *Product, error) {
	return subscribe(ctx, h, Products, "productsChanged", "", checkFilter(filter), filter.Matches)
}

// Publish reads each changed document someone wants and offers it to them.
// It never blocks on a subscriber.
func (h *Hub) Publish(ctx context.Context, changes []Change) {
	for _, c := range changes {
		if k, ok := KindNamed(c.Kind); ok && k.Topic != nil && (k.Pushes == nil || k.Pushes(c)) {
			h.push(ctx, k, c)
		}
	}
}

// wants reports whether anyone waits on topic among k's subscribers (any
// topic when it is "", a change from an older notice without a parent).
func (h *Hub) wants(k *Kind, topic string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.subs[k.Name]
	return len(m[topic]) > 0 || len(m[""]) > 0 || (topic == "" && len(m) > 0)
}

// push reads the changed document once, as it stands in the index, with
// its references filled, and offers it to the subscribers of its topic
// and to those of every document of its kind.
func (h *Hub) push(ctx context.Context, k *Kind, c Change) {
	if !h.wants(k, k.Topic(c)) {
		return
	}
	d, err := h.index.Get(ctx, k, c.ID)
	if err != nil || d == nil || !k.exists(d.Value) {
		h.logMiss(c, err)
		return
	}
	if err := FillRefs(ctx, h.index, k, d.Value); err != nil {
		h.logMiss(c, err)
		return
	}
	own := Change{Kind: k.Name, ID: d.ID}
	if k.Parent != nil {
		own.ProductID = k.Parent(d.Value)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	m := h.subs[k.Name]
	offerAll(h, m[k.Topic(own)], d, func() { h.forget(m, k.Topic(own)) })
	offerAll(h, m[""], d, func() { h.forget(m, "") })
}

// forget drops an emptied topic; lock held.
func (h *Hub) forget(m map[string]map[int]subscriber, topic string) {
	if len(m[topic]) == 0 {
		delete(m, topic)
	}
}

// offerAll offers doc to every subscriber in subs and cuts off those that
// are full; lock held.
func offerAll(h *Hub, subs map[int]subscriber, d *Doc, emptied func()) {
	for k, s := range subs {
		if !s.offer(d.ID, d.Rev, d.Value) {
			h.cutOff(s.close, func() { delete(subs, k) })
		}
	}
	if len(subs) == 0 {
		emptied()
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
