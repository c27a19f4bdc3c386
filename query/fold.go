package query

import (
	"math"
	"sort"

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

// ApplyReviewToProduct applies a review event's effect on its product. Each
// review's last applied version is remembered, so a duplicate is a no-op and
// a removal that overtakes its addition still wins.
func ApplyReviewToProduct(p *Product, e event.Envelope, pl event.Payload) Outcome {
	mark, seen := p.Reviews[e.StreamID]
	if seen && e.Version <= mark.Version {
		return Duplicate
	}
	switch pl := pl.(type) {
	case event.ReviewAdded:
		p.ID = pl.ProductID
		mark = ReviewMark{Version: e.Version, Rating: pl.Rating, Removed: mark.Removed,
			Author: pl.Author, Comment: pl.Comment, CreatedAt: e.OccurredAt}
	case event.ReviewRemoved:
		p.ID = pl.ProductID
		mark = ReviewMark{Version: e.Version, Rating: pl.Rating, Removed: true, CreatedAt: mark.CreatedAt}
	default:
		return Duplicate
	}
	if p.Reviews == nil {
		p.Reviews = map[string]ReviewMark{}
	}
	p.Reviews[e.StreamID] = mark
	p.summarizeReviews()
	return Applied
}

// summarizeReviews derives the rating figures and latest reviews from the
// remembered reviews.
func (p *Product) summarizeReviews() {
	p.ReviewCount, p.RatingSum = 0, 0
	p.RatingHistogram = make([]int, 5)
	latest := make([]ReviewSummary, 0, len(p.Reviews))
	for id, m := range p.Reviews {
		if m.Removed || m.Rating < 1 || m.Rating > 5 {
			continue
		}
		p.ReviewCount++
		p.RatingSum += m.Rating
		p.RatingHistogram[m.Rating-1]++
		latest = append(latest, ReviewSummary{ID: id, Author: m.Author, Rating: m.Rating, Comment: m.Comment, CreatedAt: m.CreatedAt})
	}
	p.AverageRating = 0
	if p.ReviewCount > 0 {
		p.AverageRating = math.Round(float64(p.RatingSum)/float64(p.ReviewCount)*100) / 100
	}
	sort.Slice(latest, func(i, j int) bool {
		if !latest[i].CreatedAt.Equal(latest[j].CreatedAt) {
			return latest[i].CreatedAt.After(latest[j].CreatedAt)
		}
		return latest[i].ID < latest[j].ID
	})
	if len(latest) > LatestReviewsKept {
		latest = latest[:LatestReviewsKept]
	}
	p.LatestReviews = latest
}

// ApplyReview applies one of the review's own events. The product's name is
// set by the caller (SetProductName), since it comes from another stream.
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

// SetProductName records the product's name as of productVersion, unless the
// review already has a newer one.
func (r *Review) SetProductName(name string, productVersion int) bool {
	if productVersion <= r.ProductVersion {
		return false
	}
	r.ProductName, r.ProductVersion = name, productVersion
	return true
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
