package query

import (
	"reflect"
	"slices"
	"time"

	"github.com/splitstream/splitstream/event"
)

// Reviews declares review documents: one per review stream, in the
// "reviews" read model. A review belongs to its product's family, and
// reviewAdded subscribers wait on the product.
var Reviews = declare(Kind{
	Name:    event.StreamReview,
	Index:   "reviews",
	Streams: []string{event.StreamReview},
	Rebuilt: true,
	// Retired: written by older versions, which stored the product's name.
	Retired: reflect.TypeFor[struct {
		ProductVersion int `json:"productVersion"`
	}](),
	Parent: func(d any) string { return d.(*Review).ProductID },
	Family: func(e event.Envelope, pl event.Payload) string {
		if pid := reviewedProduct(pl); pid != "" {
			return productFamily(pid)
		}
		return string(event.StreamReview) + ":" + e.StreamID
	},
	Topic:  func(c Change) string { return c.ProductID },
	Exists: func(d any) bool { r := d.(*Review); return r.Version > 0 && !r.Removed },
	Refs: []Ref{{To: event.StreamProduct,
		ID:  func(d any) string { return d.(*Review).ProductID },
		Set: func(d any, name string) { d.(*Review).ProductName = name }}},
	// Only new reviews go to reviewAdded: a rename reaches reviews when
	// they are read.
	Pushes: func(c Change) bool { return slices.Contains(c.Types, event.ReviewAdded{}.EventType()) },
}, ApplyReview, func(r *Review) int { return r.Version })

// Review is the reviews index document.
type Review struct {
	ID        string `json:"id"`
	ProductID string `json:"productId"`
	// ProductName is the product's current name, filled at read time from
	// the product document (Reviews.Refs, filled by FillRefs) and
	// never stored: a rename then reaches every review without rewriting
	// any of them. Review documents written before this rule may still
	// carry a stored name; it is overwritten when read.
	ProductName string    `json:"productName,omitempty" search:"text,keyword"`
	Author      string    `json:"author" search:"text,keyword"`
	Rating      int       `json:"rating"`
	Comment     string    `json:"comment" search:"text"`
	Removed     bool      `json:"removed"`
	Version     int       `json:"version"`
	Position    int64     `json:"position"`
	CreatedAt   time.Time `json:"createdAt"`
}

// Counts reports whether r is one of its product's current reviews.
func (r *Review) Counts() bool {
	return r.Version >= 1 && !r.Removed && r.Rating >= 1 && r.Rating <= 5
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
