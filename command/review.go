package command

import (
	"fmt"
	"strings"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/event"
)

// Review is the state of a review stream.
type Review struct {
	ID        string
	Version   int
	Exists    bool
	Removed   bool
	ProductID string
	Author    string
	Rating    int
	Comment   string
}

// ReviewCommand is a command on a review. Commands are passed as values.
type ReviewCommand interface {
	isReviewCommand()
	Namer
	// Validate checks the command's input alone, before anything is loaded.
	Validate() error
}

type (
	// AddReview carries the product's state, loaded by the handler, because
	// a review is only accepted on a product that is on sale.
	AddReview struct {
		ProductID string
		Author    string
		Rating    int
		Comment   string
		Product   Product
	}
	RemoveReview struct{}
)

func (AddReview) isReviewCommand()    {}
func (RemoveReview) isReviewCommand() {}

// FoldReview rebuilds a review from its history.
func FoldReview(id string, history []event.Payload) Review {
	return fold(Review{ID: id}, history)
}

// ReviewFoldVersion names the review fold for snapshots; bump it whenever
// Apply or Review's shape changes.
const ReviewFoldVersion = 1

// Apply returns r with e applied; every event counts as one version.
func (r Review) Apply(e event.Payload) Review { return r.foldEvent(e) }

// foldEvent is Apply: Review holds nothing a fold could share.
func (r Review) foldEvent(e event.Payload) Review {
	r.Version++
	switch e := e.(type) {
	case event.ReviewAdded:
		r.Exists = true
		r.ProductID, r.Author, r.Rating, r.Comment = e.ProductID, e.Author, e.Rating, e.Comment
	case event.ReviewRemoved:
		r.Removed = true
	}
	return r
}

// DecideReview returns the events cmd causes on r, or a *splitstream.Error
// saying why it is refused.
func DecideReview(r Review, cmd ReviewCommand) ([]event.Payload, error) {
	switch c := cmd.(type) {
	case AddReview:
		return r.add(c)
	case RemoveReview:
		if !r.Exists || r.Removed {
			return nil, splitstream.NotFound("review %s not found", r.ID)
		}
		return []event.Payload{event.ReviewRemoved{ProductID: r.ProductID, Rating: r.Rating}}, nil
	default:
		return nil, fmt.Errorf("decide review %s: unknown command %T", r.ID, cmd)
	}
}

func (r Review) add(c AddReview) ([]event.Payload, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	// Review ids are never reused, removed or not.
	if r.Exists {
		return nil, splitstream.Conflict(r.Version, "review already exists")
	}
	if c.Product.Exists && c.Product.ID != c.ProductID {
		return nil, fmt.Errorf("add review %s: loaded product %s, not %s", r.ID, c.Product.ID, c.ProductID)
	}
	if !c.Product.Exists {
		return nil, productNotFound("product %s not found", c.ProductID)
	}
	if c.Product.Discontinued {
		return nil, productNotFound("product %s is discontinued", c.ProductID)
	}
	return []event.Payload{event.ReviewAdded{
		ProductID: c.ProductID, Author: strings.TrimSpace(c.Author), Rating: c.Rating, Comment: c.Comment,
	}}, nil
}

// productNotFound names productId as the field, so a client can tell which
// of its inputs pointed nowhere.
func productNotFound(format string, args ...any) *splitstream.Error {
	err := splitstream.NotFound(format, args...)
	err.Field = "productId"
	return err
}

// The review mutations' inputs, as the write schema delivers them
// (input.go).
type (
	AddReviewInput struct {
		ProductID string
		Author    string
		Rating    int
		Comment   *string
		Once
	}
	RemoveReviewInput struct {
		ID string
		Versioned
	}
)

func (in AddReviewInput) runner() runner {
	return addReview(AddReview{
		ProductID: in.ProductID, Author: in.Author, Rating: in.Rating, Comment: deref(in.Comment),
	})
}

func (in RemoveReviewInput) runner() runner {
	return removeReview(in.ID)
}
