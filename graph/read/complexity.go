package read

import (
	"time"

	"github.com/splitstream/splitstream/query"
)

// EventScanCost prices a field that reads a product's events from the
// index (up to 100,000 of them, in pages): productAt folds them,
// productHistory returns them. At the default limit of 1000 a request may
// hold four such fields, not 400.
const EventScanCost = 200

// Complexity prices every field by what it really costs: one per document
// get, lists by their page size, event scans by EventScanCost, so the
// complexity limit bounds real work.
func Complexity() ComplexityRoot {
	var c ComplexityRoot
	c.Query.Products = func(child int, _ *string, _ *query.ProductFilter, _ *ProductSort, first *int, _ *string, _ *string) int {
		return paged(child, first)
	}
	c.Query.Reviews = func(child int, _ string, first *int, _ *string, _ *string) int { return paged(child, first) }
	c.Query.Orders = func(child int, _ *string, _ *string, first *int, _ *string, _ *string) int {
		return paged(child, first)
	}
	// History is not paged: it returns every event, priced as a long page.
	c.Query.ProductHistory = func(child int, _ string, _ *string) int {
		return EventScanCost + child*query.MaxPageSize/2
	}
	c.Query.ProductAt = func(child int, _ string, _ time.Time, _ *string) int { return EventScanCost + child }
	c.Product.LatestReviews = func(child int) int { return 1 + child*query.LatestReviewsKept }
	return c
}

func paged(child int, first *int) int {
	n := query.DefaultPageSize
	if first != nil && *first > 0 {
		n = min(*first, query.MaxPageSize)
	}
	return 1 + child*n
}
