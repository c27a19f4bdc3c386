package query

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/event"
)

// Page sizes.
const (
	DefaultPageSize = 20
	MaxPageSize     = 100
)

// Sorts of products.
const (
	SortRelevance  = "RELEVANCE"
	SortPriceAsc   = "PRICE_ASC"
	SortPriceDesc  = "PRICE_DESC"
	SortRatingDesc = "RATING_DESC"
	SortNewest     = "NEWEST"
)

// ProductFilter narrows a product search; nil fields do not filter.
type ProductFilter struct {
	Category      *string
	MinPriceCents *int64
	MaxPriceCents *int64
	MinRating     *float64
	InStock       *bool
	Status        *string
}

// ProductQuery is one page of a product search.
type ProductQuery struct {
	Search string
	Filter ProductFilter
	Sort   string
	First  int
	After  string
}

// Facets are counts over every product the search matches.
type Facets struct {
	Categories  []Count
	Ratings     []Count // Key is the average rating rounded down, "0" to "5"
	PriceRanges []PriceRange
}

// Count is one facet bucket.
type Count struct {
	Key   string
	Count int
}

// PriceRange is one price facet bucket; nil bounds are open.
type PriceRange struct {
	From, To *int64
	Count    int
}

// Page is one page of results with opaque cursors.
type Page[T any] struct {
	Items       []T
	Cursors     []string
	HasNextPage bool
	TotalCount  int
}

// ProductPage is a page of products with facets.
type ProductPage struct {
	Page[Product]
	Facets Facets
}

// ReviewQuery is one page of a product's reviews.
type ReviewQuery struct {
	ProductID string
	First     int
	After     string
}

// OrderQuery is one page of orders.
type OrderQuery struct {
	CustomerID *string
	Status     *string
	First      int
	After      string
}

// Index is what the read side needs from the search index.
type Index interface {
	// Get reads one document of k in real time; nil when absent.
	Get(ctx context.Context, k *Kind, id string) (*Doc, error)
	// GetMany reads documents of k in real time, in the order of ids,
	// leaving out absent ones; with fields, only those fields are read.
	GetMany(ctx context.Context, k *Kind, ids []string, fields ...string) ([]Doc, error)
	SearchProducts(ctx context.Context, q ProductQuery) (ProductPage, error)
	SearchReviews(ctx context.Context, q ReviewQuery) (Page[Review], error)
	SearchOrders(ctx context.Context, q OrderQuery) (Page[Order], error)
	// ProductEvents returns the events about a product, in position order:
	// its own, and with reviews also its reviews'; until, when set, bounds
	// occurredAt.
	ProductEvents(ctx context.Context, id string, reviews bool, until *time.Time) ([]Event, error)
	// MakeVisible makes every applied write to one kind of document
	// (by its Name) visible to searches;
	// gets are real time already.
	MakeVisible(ctx context.Context, kind Name) error
}

// Watermark tells how far the read side has applied the event log.
type Watermark interface {
	// WaitFor returns once every point a token names is applied, or ctx
	// ends (Marks).
	WaitFor(ctx context.Context, points []event.ReadPoint) error
}

// Service answers reads from the index, waiting for consistency tokens.
type Service struct {
	index   Index
	mark    Watermark
	timeout time.Duration
	opts    options
}

// NewService returns a read service; timeout bounds consistentWith waits.
func NewService(index Index, mark Watermark, timeout time.Duration, opts ...Option) (*Service, error) {
	if index == nil || mark == nil {
		return nil, errors.New("query: nil index or watermark")
	}
	if timeout <= 0 {
		return nil, errors.New("query: consistency timeout must be positive")
	}
	s := &Service{index: index, mark: mark, timeout: timeout}
	for _, o := range opts {
		o(&s.opts)
	}
	return s, nil
}

// consistentSearch is Consistent for searches, which also need the index
// refreshed past the token.
func (s *Service) consistentSearch(ctx context.Context, token *string, kind Name) error {
	if err := s.Consistent(ctx, token); err != nil || token == nil || *token == "" {
		return err
	}
	if err := s.index.MakeVisible(ctx, kind); err != nil {
		return fmt.Errorf("refresh for consistentWith: %w", err)
	}
	return nil
}

// Consistent waits until the read side reflects every effect of the
// mutation that returned token. An empty token returns at once.
func (s *Service) Consistent(ctx context.Context, token *string) error {
	if token == nil || *token == "" {
		return nil
	}
	if err := checkLen("consistentWith", *token, MaxTokenBytes); err != nil {
		return err
	}
	c, err := s.opts.parseToken(*token)
	if errors.Is(err, event.ErrOldToken) {
		return splitstream.Invalid("consistentWith", "a token of an older version (before projector lanes): use the token of a new mutation")
	}
	if err != nil {
		return splitstream.Invalid("consistentWith", "not a token returned by a mutation")
	}
	wctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.mark.WaitFor(wctx, c); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return &splitstream.Error{Code: splitstream.EStaleRead, CurrentVersion: -1,
			Message: fmt.Sprintf("the read side did not catch up with this token within %s; retry", s.timeout)}
	}
	return nil
}

// Product returns a product, or nil when there is none.
func (s *Service) Product(ctx context.Context, id string, token *string) (*Product, error) {
	return get[Product](ctx, s, Products, "product", id, token)
}

// Products searches products.
func (s *Service) Products(ctx context.Context, q ProductQuery, token *string) (ProductPage, error) {
	if err := s.opts.permit(ctx, "products"); err != nil {
		return ProductPage{}, err
	}
	if err := checkLen("search", q.Search, MaxSearchBytes); err != nil {
		return ProductPage{}, err
	}
	if err := checkLen("after", q.After, MaxCursorBytes); err != nil {
		return ProductPage{}, err
	}
	if err := checkFilter(q.Filter); err != nil {
		return ProductPage{}, err
	}
	if err := s.consistentSearch(ctx, token, Products.Name); err != nil {
		return ProductPage{}, err
	}
	first, err := pageSize(q.First)
	if err != nil {
		return ProductPage{}, err
	}
	q.First = first
	q.Search = strings.TrimSpace(q.Search)
	if q.Sort == "" {
		q.Sort = SortRelevance
	}
	f := q.Filter
	if f.MinPriceCents != nil && f.MaxPriceCents != nil && *f.MinPriceCents > *f.MaxPriceCents {
		return ProductPage{}, splitstream.Invalid("filter.minPriceCents", "greater than maxPriceCents")
	}
	if f.MinRating != nil && (*f.MinRating < 0 || *f.MinRating > 5) {
		return ProductPage{}, splitstream.Invalid("filter.minRating", "must be between 0 and 5")
	}
	return s.index.SearchProducts(ctx, q)
}

// Reviews pages through a product's reviews.
func (s *Service) Reviews(ctx context.Context, q ReviewQuery, token *string) (Page[Review], error) {
	if err := s.opts.permit(ctx, "reviews"); err != nil {
		return Page[Review]{}, err
	}
	if err := checkID("productId", q.ProductID); err != nil {
		return Page[Review]{}, err
	}
	if err := checkLen("after", q.After, MaxCursorBytes); err != nil {
		return Page[Review]{}, err
	}
	if err := s.consistentSearch(ctx, token, Reviews.Name); err != nil {
		return Page[Review]{}, err
	}
	first, err := pageSize(q.First)
	if err != nil {
		return Page[Review]{}, err
	}
	q.First = first
	page, err := s.index.SearchReviews(ctx, q)
	if err != nil {
		return page, err
	}
	if err := FillRefs(ctx, s.index, Reviews, pointers(page.Items)...); err != nil {
		return Page[Review]{}, err
	}
	return page, nil
}

// LatestReviews reads the reviews a product document names as its latest,
// with the product's name. Reviews the index no longer has (or has since
// removed) are left out.
func (s *Service) LatestReviews(ctx context.Context, p *Product) ([]Review, error) {
	if len(p.LatestReviews) == 0 {
		return nil, nil
	}
	ids := make([]string, len(p.LatestReviews))
	for i, r := range p.LatestReviews {
		ids[i] = r.ID
	}
	got, err := s.index.GetMany(ctx, Reviews, ids)
	if err != nil {
		return nil, fmt.Errorf("latest reviews of %s: %w", p.ID, err)
	}
	var out []Review
	for _, d := range got {
		if !Reviews.exists(d.Value) {
			continue
		}
		r := d.Value.(*Review)
		r.ProductName = p.Name
		out = append(out, *r)
	}
	return out, nil
}

// Order returns an order, or nil when there is none or it is another
// customer's.
func (s *Service) Order(ctx context.Context, id string, token *string) (*Order, error) {
	return get[Order](ctx, s, Orders, "order", id, token)
}

// Orders pages through orders.
func (s *Service) Orders(ctx context.Context, q OrderQuery, token *string) (Page[Order], error) {
	if err := s.opts.permit(ctx, "orders"); err != nil {
		return Page[Order]{}, err
	}
	if err := checkOptionalID("customerId", q.CustomerID); err != nil {
		return Page[Order]{}, err
	}
	if err := checkLen("after", q.After, MaxCursorBytes); err != nil {
		return Page[Order]{}, err
	}
	if g := s.opts.guard; g != nil {
		// A customer lists its own orders: without customerId that is what
		// it means, and another customer's id is FORBIDDEN.
		if sub, all := g.Scope(ctx); !all {
			if q.CustomerID != nil {
				if err := g.PermitOwner(ctx, "orders", *q.CustomerID); err != nil {
					return Page[Order]{}, err
				}
			}
			q.CustomerID = &sub
		}
	}
	if err := s.consistentSearch(ctx, token, Orders.Name); err != nil {
		return Page[Order]{}, err
	}
	first, err := pageSize(q.First)
	if err != nil {
		return Page[Order]{}, err
	}
	q.First = first
	page, err := s.index.SearchOrders(ctx, q)
	if err != nil {
		return page, err
	}
	if err := FillRefs(ctx, s.index, Orders, pointers(page.Items)...); err != nil {
		return Page[Order]{}, err
	}
	return page, nil
}

// ProductHistory returns the product's own events, oldest first.
func (s *Service) ProductHistory(ctx context.Context, id string, token *string) ([]Event, error) {
	if err := s.opts.permit(ctx, "productHistory"); err != nil {
		return nil, err
	}
	if err := checkID("id", id); err != nil {
		return nil, err
	}
	if err := s.consistentSearch(ctx, token, Events.Name); err != nil {
		return nil, err
	}
	return s.index.ProductEvents(ctx, id, false, nil)
}

// ProductAt folds the product's events, and its reviews', up to at.
func (s *Service) ProductAt(ctx context.Context, id string, at time.Time, token *string) (*Product, error) {
	if err := s.opts.permit(ctx, "productAt"); err != nil {
		return nil, err
	}
	if err := checkID("id", id); err != nil {
		return nil, err
	}
	if err := s.consistentSearch(ctx, token, Events.Name); err != nil {
		return nil, err
	}
	evs, err := s.index.ProductEvents(ctx, id, true, &at)
	if err != nil {
		return nil, err
	}
	return FoldProductEvents(evs)
}

// FoldProductEvents folds a product's events and its reviews' events, in
// position order, into the product as they make it; nil if it was not
// created by then. Reviews are folded into their own documents first and
// summed with StatsOf, the rule the projector follows.
func FoldProductEvents(evs []Event) (*Product, error) {
	sort.Slice(evs, func(i, j int) bool { return evs[i].Position < evs[j].Position })
	var p Product
	reviews := map[string]*Review{}
	var order []*Review
	for _, d := range evs {
		env := event.Envelope{ID: d.ID, Position: d.Position, StreamID: d.StreamID, StreamType: d.StreamType,
			Version: d.Version, Type: d.Type, SchemaVersion: d.SchemaVersion, Data: d.Data, OccurredAt: d.OccurredAt}
		pl, err := env.Payload()
		if err != nil {
			return nil, fmt.Errorf("fold %s v%d: %w", d.StreamID, d.Version, err)
		}
		if d.StreamType == event.StreamReview {
			r := reviews[d.StreamID]
			if r == nil {
				r = &Review{}
				reviews[d.StreamID] = r
				order = append(order, r)
			}
			ApplyReview(r, env, pl)
		} else {
			ApplyProduct(&p, env, pl)
		}
	}
	if p.Version == 0 {
		return nil, nil
	}
	p.SetReviewStats(p.ID, StatsOf(order))
	return &p, nil
}

func pageSize(first int) (int, error) {
	switch {
	case first == 0:
		return DefaultPageSize, nil
	case first < 0 || first > MaxPageSize:
		return 0, splitstream.Invalid("first", "must be between 1 and %d", MaxPageSize)
	}
	return first, nil
}
