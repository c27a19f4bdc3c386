// Package query owns the read model: the documents kept in the search index,
// the pure rules that fold events into them (shared by the projector, the
// rebuild and time travel), and the read services the GraphQL edge calls.
// It never touches Postgres and never consumes domain events.
package query

import (
	"encoding/json"
	"time"

	"github.com/splitstream/splitstream/event"
)

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
	Name        string `json:"name"`
	Description string `json:"description"`
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
	LatestReviews   []ReviewRef `json:"latestReviews"`
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
	// Rev orders writes of this document in the index (from its sequence
	// number); reviews change a product without changing its version.
	Rev int64 `json:"-"`
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

// Review is the reviews index document.
type Review struct {
	ID        string `json:"id"`
	ProductID string `json:"productId"`
	// ProductName is the product's current name, filled at read time from
	// the product document (the query service's FillProductNames) and
	// never stored: a rename then reaches every review without rewriting
	// any of them. Review documents written before this rule may still
	// carry a stored name; it is overwritten when read.
	ProductName string    `json:"productName,omitempty"`
	Author      string    `json:"author"`
	Rating      int       `json:"rating"`
	Comment     string    `json:"comment"`
	Removed     bool      `json:"removed"`
	Version     int       `json:"version"`
	Position    int64     `json:"position"`
	CreatedAt   time.Time `json:"createdAt"`
	Rev         int64     `json:"-"`
}

// OrderLine is one line of an order, with the name and price at ordering time.
type OrderLine struct {
	ProductID      string `json:"productId"`
	ProductName    string `json:"productName"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unitPriceCents"`
}

// Order is the orders index document.
type Order struct {
	ID              string      `json:"id"`
	CustomerID      string      `json:"customerId"`
	Status          string      `json:"status"`
	Lines           []OrderLine `json:"lines"`
	TotalCents      int64       `json:"totalCents"`
	Currency        string      `json:"currency"`
	RejectionReason string      `json:"rejectionReason,omitempty"`
	CancelReason    string      `json:"cancelReason,omitempty"`
	Version         int         `json:"version"`
	Position        int64       `json:"position"`
	CreatedAt       time.Time   `json:"createdAt"`
	UpdatedAt       time.Time   `json:"updatedAt"`
	Rev             int64       `json:"-"`
}

// Event is the events index document: every event, for history and time travel.
type Event struct {
	ID         string `json:"id"`
	StreamID   string `json:"streamId"`
	StreamType string `json:"streamType"`
	// ProductID is the product an event concerns (its own stream, or the
	// product a review is about), so a product's history includes its reviews.
	ProductID     string          `json:"productId,omitempty"`
	Version       int             `json:"version"`
	Type          string          `json:"type"`
	SchemaVersion int             `json:"schemaVersion"`
	Position      int64           `json:"position"`
	Tx            uint64          `json:"tx"`
	OccurredAt    time.Time       `json:"occurredAt"`
	Data          json.RawMessage `json:"data"`
	Metadata      event.Metadata  `json:"metadata"`
}

// EventDoc turns a record into its events-index document.
func EventDoc(r event.Record, p event.Payload) Event {
	e := r.Envelope
	doc := Event{
		ID: e.ID, StreamID: e.StreamID, StreamType: e.StreamType, Version: e.Version, Type: e.Type,
		SchemaVersion: e.SchemaVersion, Position: e.Position, Tx: r.Cursor.Tx, OccurredAt: e.OccurredAt,
		Data: e.Data, Metadata: e.Metadata.WithoutTrace(),
	}
	switch p := p.(type) {
	case event.ReviewAdded:
		doc.ProductID = p.ProductID
	case event.ReviewRemoved:
		doc.ProductID = p.ProductID
	default:
		if e.StreamType == event.StreamProduct {
			doc.ProductID = e.StreamID
		}
	}
	return doc
}
