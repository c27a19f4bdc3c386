package query

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/splitstream/splitstream/event"
)

// Products declares product documents: one per product stream, which
// also sum their reviews (Summary), in the "products" read model.
var Products = declare(Kind{
	Name:    event.StreamProduct,
	Index:   "products",
	Streams: []string{event.StreamProduct},
	Rebuilt: true,
	Family:  func(e event.Envelope, _ event.Payload) string { return productFamily(e.StreamID) },
	Topic:   func(c Change) string { return c.ID },
	Title:   &Title{Field: "name", Of: func(d any) string { return d.(*Product).Name }},
	Summary: &Summary{
		Of:        Reviews,
		For:       reviewedProduct,
		Count:     func(d any, e event.Envelope, pl event.Payload) bool { return d.(*Product).CountReview(e, pl) },
		Marks:     func(d any) []string { return markedReviews(d.(*Product)) },
		Unmark:    func(d any, version func(string) int) bool { return d.(*Product).Uncount(version) },
		Stale:     func(d any) bool { return d.(*Product).LatestStale },
		SetLatest: func(d any, latest []ReviewRef) bool { return d.(*Product).SetLatest(latest) },
	},
}, ApplyProduct, func(p *Product) int { return p.Version })

// productFamily is the lane key of a product and its reviews.
func productFamily(id string) string { return string(event.StreamProduct) + ":" + id }

// reviewedProduct is the product a review event is about, or "".
func reviewedProduct(pl event.Payload) string {
	switch pl := pl.(type) {
	case event.ReviewAdded:
		return pl.ProductID
	case event.ReviewRemoved:
		return pl.ProductID
	}
	return ""
}

// markedReviews lists the reviews p marks as counted, in id order.
func markedReviews(p *Product) []string {
	ids := make([]string, 0, len(p.Counted))
	for id := range p.Counted {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Product statuses in the read model.
const (
	StatusActive       = "ACTIVE"
	StatusDiscontinued = "DISCONTINUED"
)

// LatestReviewsKept is how many recent reviews a product document names.
const LatestReviewsKept = 5

// Product is the products index document. Its size does not grow with its
// reviews: the rating figures are counts and sums (CountReview), and the
// latest reviews are named by id, their text read from the reviews index
// when asked for.
type Product struct {
	ID          string `json:"id"`
	Name        string `json:"name" search:"text,keyword"`
	Description string `json:"description" search:"text"`
	Category    string `json:"category"`
	PriceCents  int64  `json:"priceCents"`
	Currency    string `json:"currency"`
	// Stock is what can still be ordered; reserved units are not in it.
	Stock           int         `json:"stock"`
	InStock         bool        `json:"inStock"`
	Status          string      `json:"status"`
	ReviewCount     int         `json:"reviewCount"`
	RatingSum       int         `json:"ratingSum"`
	AverageRating   float64     `json:"averageRating"`
	RatingHistogram []int       `json:"ratingHistogram"` // counts of ratings 1..5
	LatestReviews   []ReviewRef `json:"latestReviews" search:"stored"`
	// Counted marks the reviews whose events the figures include while
	// their own documents may not be written yet: the projector writes a
	// product before its reviews, so a retry after a crash between the
	// two finds the mark and does not count again. Marks are cleared as
	// soon as the reviews are written (the same batch), so at most one
	// batch's worth exists, and only after a crash. Stored under the old
	// per-review map's name, whose mapping it reuses.
	Counted map[string]ReviewMark `json:"reviews,omitempty"`
	// LatestStale says a removal took one of LatestReviews away while
	// older current reviews exist: the list is read again from the
	// reviews index. Not stored.
	LatestStale bool      `json:"-"`
	Version     int       `json:"version"`
	Position    int64     `json:"position"`
	CreatedAt   time.Time `json:"createdAt"`
	UpdatedAt   time.Time `json:"updatedAt"`
}

// ReviewMark is a review version a product's figures include.
type ReviewMark struct {
	Version int `json:"v"`
}

// ReviewRef names one of a product's latest reviews, newest first.
type ReviewRef struct {
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"createdAt"`
}

// ApplyProduct applies one of the product's own events.
func ApplyProduct(p *Product, e event.Envelope, pl event.Payload) Outcome {
	if out, ok := stepOf(p.Version, e); !ok {
		return out
	}
	p.ID = e.StreamID
	switch pl := pl.(type) {
	case event.ProductCreated:
		p.Name, p.Description, p.Category = pl.Name, pl.Description, pl.Category
		p.PriceCents, p.Currency, p.Stock = pl.PriceCents, pl.Currency, pl.Stock
		p.Status, p.CreatedAt = StatusActive, e.OccurredAt
	case event.ProductRenamed:
		p.Name = pl.Name
	case event.ProductDescriptionChanged:
		p.Description = pl.Description
	case event.ProductPriceChanged:
		p.PriceCents = pl.PriceCents
	case event.ProductRestocked:
		p.Stock = pl.Stock
	case event.ProductDiscontinued:
		p.Status = StatusDiscontinued
	case event.StockReserved:
		p.Stock = pl.Stock
	case event.StockReleased:
		p.Stock = pl.Stock
	}
	p.InStock = p.Stock > 0
	p.Version, p.Position, p.UpdatedAt = e.Version, e.Position, e.OccurredAt
	if p.RatingHistogram == nil {
		p.RatingHistogram = make([]int, 5)
	}
	return Applied
}

// ReviewStats is what a product's document says of its current reviews:
// counts and sums, whose size does not depend on how many reviews there
// are. StatsOf computes them from review documents (time travel, tests,
// and the index's aggregation follows the same rules); the projector keeps
// them by CountReview, which arrives at the same figures.
type ReviewStats struct {
	Count     int
	Sum       int
	Histogram [5]int      // counts of ratings 1..5
	Latest    []ReviewRef // newest first, at most LatestReviewsKept
}

// StatsOf sums the current reviews among reviews (of one product). It is
// the rule the index aggregation in elastic.DocStore.ReviewStats follows.
func StatsOf(reviews []*Review) ReviewStats {
	var s ReviewStats
	var latest []ReviewRef
	for _, r := range reviews {
		if !r.Counts() {
			continue
		}
		s.Count++
		s.Sum += r.Rating
		s.Histogram[r.Rating-1]++
		latest = append(latest, ReviewRef{ID: r.ID, CreatedAt: r.CreatedAt})
	}
	SortLatest(latest)
	if len(latest) > LatestReviewsKept {
		latest = latest[:LatestReviewsKept]
	}
	s.Latest = latest
	return s
}

// SortLatest orders reviews newest first, ties by id. Times compare to the
// millisecond, the precision of Elasticsearch's date fields, so that this
// order and the index's (createdAt desc, id asc) are the same order.
func SortLatest(refs []ReviewRef) {
	sort.SliceStable(refs, func(i, j int) bool {
		a, b := refs[i].CreatedAt.Truncate(time.Millisecond), refs[j].CreatedAt.Truncate(time.Millisecond)
		if !a.Equal(b) {
			return a.After(b)
		}
		return refs[i].ID < refs[j].ID
	})
}

// CountReview applies a review event's effect to its product's counts and
// sums, once. The caller calls it only when the event just applied to the
// review's own document (its version check passed: a duplicate never gets
// here, and a gap is filled first, so a review's events come in version
// order); a mark at or past the event's version says an earlier attempt,
// whose review write was lost, already counted it. The result equals
// StatsOf over the review documents, in any order of arrival, except that
// a removal taking one of the latest reviews away sets LatestStale.
func (p *Product) CountReview(e event.Envelope, pl event.Payload) bool {
	if m, ok := p.Counted[e.StreamID]; ok && m.Version >= e.Version {
		return false
	}
	var sign, rating int
	switch pl := pl.(type) {
	case event.ReviewAdded:
		p.ID, sign, rating = pl.ProductID, 1, pl.Rating
	case event.ReviewRemoved:
		p.ID, sign, rating = pl.ProductID, -1, pl.Rating
	default:
		return false
	}
	if p.Counted == nil {
		p.Counted = map[string]ReviewMark{}
	}
	p.Counted[e.StreamID] = ReviewMark{Version: e.Version}
	if len(p.RatingHistogram) != 5 {
		p.RatingHistogram = make([]int, 5)
	}
	if rating < 1 || rating > 5 {
		return true // never counted, as StatsOf does not
	}
	p.ReviewCount += sign
	p.RatingSum += sign * rating
	p.RatingHistogram[rating-1] += sign
	p.AverageRating = 0
	if p.ReviewCount > 0 {
		p.AverageRating = math.Round(float64(p.RatingSum)/float64(p.ReviewCount)*100) / 100
	}
	if sign > 0 {
		latest := append(slices.Clone(p.LatestReviews), ReviewRef{ID: e.StreamID, CreatedAt: e.OccurredAt})
		SortLatest(latest)
		p.LatestReviews = latest[:min(len(latest), LatestReviewsKept)]
	} else if i := slices.IndexFunc(p.LatestReviews, func(r ReviewRef) bool { return r.ID == e.StreamID }); i >= 0 {
		p.LatestReviews = slices.Delete(slices.Clone(p.LatestReviews), i, i+1)
		if p.ReviewCount > len(p.LatestReviews) {
			p.LatestStale = true
		}
	}
	return true
}

// Uncount drops the marks of reviews whose documents now hold at least the
// marked version; version is the review document's version, or -1 when
// it is not known.
func (p *Product) Uncount(version func(reviewID string) int) bool {
	changed := false
	for id, m := range p.Counted {
		if version(id) >= m.Version {
			delete(p.Counted, id)
			changed = true
		}
	}
	if len(p.Counted) == 0 {
		p.Counted = nil
	}
	return changed
}

// SetLatest replaces the latest reviews (read again from the index after
// a removal) and reports whether they changed.
func (p *Product) SetLatest(latest []ReviewRef) bool {
	p.LatestStale = false
	if slices.EqualFunc(p.LatestReviews, latest, func(a, b ReviewRef) bool { return a.ID == b.ID && a.CreatedAt.Equal(b.CreatedAt) }) {
		return false
	}
	p.LatestReviews = slices.Clone(latest)
	return true
}

// SetReviewStats puts s into the product's rating figures and reports
// whether anything changed. id is the product's id (a review may be the
// first thing the projector hears of a product).
func (p *Product) SetReviewStats(id string, s ReviewStats) bool {
	hist := s.Histogram[:]
	avg := 0.0
	if s.Count > 0 {
		avg = math.Round(float64(s.Sum)/float64(s.Count)*100) / 100
	}
	latest := s.Latest
	if latest == nil {
		latest = []ReviewRef{}
	}
	if p.ID == id && p.ReviewCount == s.Count && p.RatingSum == s.Sum && p.AverageRating == avg &&
		slices.Equal(p.RatingHistogram, hist) && slices.EqualFunc(p.LatestReviews, latest, func(a, b ReviewRef) bool {
		return a.ID == b.ID && a.CreatedAt.Equal(b.CreatedAt)
	}) {
		return false
	}
	p.ID = id
	p.ReviewCount, p.RatingSum, p.AverageRating = s.Count, s.Sum, avg
	p.RatingHistogram = slices.Clone(hist)
	p.LatestReviews = slices.Clone(latest)
	return true
}
