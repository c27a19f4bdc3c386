package read

import (
	"context"
	"testing"

	"github.com/99designs/gqlgen/complexity"
	"github.com/vektah/gqlparser/v2"
)

func cost(t *testing.T, q string) int {
	t.Helper()
	es := NewExecutableSchema(Config{Resolvers: &Resolver{}, Complexity: Complexity()})
	doc, errs := gqlparser.LoadQueryWithRules(es.Schema(), q, nil)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	return complexity.Calculate(context.Background(), es, doc.Operations[0], nil)
}

func TestListsCostTheirPageSize(t *testing.T) {
	small := cost(t, `{ products(first: 10) { edges { node { id name } } } }`)
	big := cost(t, `{ products(first: 100) { edges { node { id name } } } }`)
	if big < 9*small {
		t.Fatalf("first: 100 costs %d, first: 10 costs %d; a page should cost by its size", big, small)
	}
	if d := cost(t, `{ reviews(productId: "p") { edges { node { id } } } }`); d < 20 {
		t.Fatalf("a default page of reviews costs %d, want at least its 20 items", d)
	}
	// Typical playground queries stay well under the default limit of 1000.
	typical := cost(t, `{ products(search: "k", first: 20) { totalCount edges { cursor node { id name priceCents averageRating } }
		pageInfo { hasNextPage endCursor } facets { categories { category count } ratings { rating count } priceRanges { fromCents toCents count } } } }`)
	if typical > 1000 {
		t.Fatalf("a typical search costs %d, over the default limit", typical)
	}
}

func TestEventScansArePricedByWhatTheyLoad(t *testing.T) {
	one := cost(t, `{ productAt(id: "p", at: "2026-01-01T00:00:00Z") { id name } }`)
	if one < EventScanCost {
		t.Fatalf("productAt costs %d, want at least %d: it loads up to 100,000 events", one, EventScanCost)
	}
	if h := cost(t, `{ productHistory(id: "p") { type version } }`); h < EventScanCost {
		t.Fatalf("productHistory costs %d, want at least %d", h, EventScanCost)
	}
	four := cost(t, `{ a: productAt(id: "p", at: "2026-01-01T00:00:00Z") { id name } b: productAt(id: "q", at: "2026-01-01T00:00:00Z") { id name }
		c: productAt(id: "r", at: "2026-01-01T00:00:00Z") { id name } d: productAt(id: "s", at: "2026-01-01T00:00:00Z") { id name } }`)
	if four > 1000 {
		t.Fatalf("four productAt cost %d, want them under the default limit of 1000", four)
	}
	if five := four + one; five <= 1000 {
		t.Fatalf("five productAt cost %d, want over the default limit of 1000", five)
	}
}
