package read

import "github.com/splitstream/splitstream/query"

// Complexity prices list fields by their page size, so a query's cost
// grows with what it can fetch and the complexity limit bounds real work.
func Complexity() ComplexityRoot {
	var c ComplexityRoot
	c.Query.Products = func(child int, _ *string, _ *ProductFilter, _ *ProductSort, first *int, _ *string, _ *string) int {
		return paged(child, first)
	}
	c.Query.Reviews = func(child int, _ string, first *int, _ *string, _ *string) int { return paged(child, first) }
	c.Query.Orders = func(child int, _ *string, _ *string, first *int, _ *string, _ *string) int {
		return paged(child, first)
	}
	// A product's history is not paged; price it as a long page.
	c.Query.ProductHistory = func(child int, _ string, _ *string) int { return 1 + child*query.MaxPageSize/2 }
	return c
}

func paged(child int, first *int) int {
	n := query.DefaultPageSize
	if first != nil && *first > 0 {
		n = min(*first, query.MaxPageSize)
	}
	return 1 + child*n
}
