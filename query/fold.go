package query

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/splitstream/splitstream/event"
)

// Outcome says what applying one event to a document did.
type Outcome int

const (
	// Applied changed the document.
	Applied Outcome = iota
	// Duplicate was already reflected in the document; nothing changed.
	Duplicate
	// Gap means earlier events of the stream are missing: apply them first.
	Gap
)

func (o Outcome) String() string {
	switch o {
	case Applied:
		return "applied"
	case Duplicate:
		return "duplicate"
	default:
		return "gap"
	}
}

// stepOf places an event of a document's own stream against the version
// the document holds.
func stepOf(version int, e event.Envelope) (Outcome, bool) {
	switch {
	case e.Version <= version:
		return Duplicate, false
	case e.Version > version+1:
		return Gap, false
	}
	return Applied, true
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

// Counts reports whether r is one of its product's current reviews.
func (r *Review) Counts() bool {
	return r.Version >= 1 && !r.Removed && r.Rating >= 1 && r.Rating <= 5
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

// ApplyReview applies one of the review's own events. The product's name is
// not stored: it is read from the product document when the review is read.
func ApplyReview(r *Review, e event.Envelope, pl event.Payload) Outcome {
	if out, ok := stepOf(r.Version, e); !ok {
		return out
	}
	r.ID = e.StreamID
	switch pl := pl.(type) {
	case event.ReviewAdded:
		r.ProductID, r.Author, r.Rating, r.Comment = pl.ProductID, pl.Author, pl.Rating, pl.Comment
		r.CreatedAt = e.OccurredAt
	case event.ReviewRemoved:
		r.Removed = true
	}
	r.Version, r.Position = e.Version, e.Position
	return Applied
}

// ApplyOrder applies one of the order's own events.
func ApplyOrder(o *Order, e event.Envelope, pl event.Payload) Outcome {
	if out, ok := stepOf(o.Version, e); !ok {
		return out
	}
	o.ID = e.StreamID
	switch pl := pl.(type) {
	case event.OrderPlaced:
		o.CustomerID, o.Status, o.TotalCents, o.Currency = pl.CustomerID, "PENDING", pl.TotalCents, pl.Currency
		o.Lines = make([]OrderLine, len(pl.Lines))
		for i, l := range pl.Lines {
			o.Lines[i] = OrderLine{ProductID: l.ProductID, ProductName: l.ProductName, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents}
		}
		o.CreatedAt = e.OccurredAt
	case event.OrderConfirmed:
		o.Status = "CONFIRMED"
	case event.OrderRejected:
		o.Status, o.RejectionReason = "REJECTED", pl.Reason
	case event.OrderCancelled:
		o.Status, o.CancelReason = "CANCELLED", pl.Reason
	}
	o.Version, o.Position, o.UpdatedAt = e.Version, e.Position, e.OccurredAt
	return Applied
}
