package main

import (
	"strings"
	"testing"

	"github.com/google/uuid"
)

// A search with consistentWith sees the write even inside the refresh
// interval, and so does a review search after addReview.
func TestConsistentSearchSeesTheWrite(t *testing.T) {
	env, commandURL, _ := stack(t)
	queryURL := "http://" + env["SPLITSTREAM_QUERY_ADDR"] + "/graphql"
	for i := range 20 {
		name := "zq" + strings.ReplaceAll(uuid.NewString(), "-", "")[:12] // far from any other name, fuzzy search included
		var c struct{ CreateProduct struct{ ID, Token string } }
		if err := gql(commandURL, `mutation($n: String!) { createProduct(input: {name: $n, category: "c", priceCents: 100, currency: "EUR", stock: 1}) { id token } }`,
			map[string]any{"n": name}, &c); err != nil {
			t.Fatal(err)
		}
		var r struct{ AddReview struct{ Token string } }
		if err := gql(commandURL, `mutation($id: ID!) { addReview(input: {productId: $id, author: "A", rating: 5}) { token } }`,
			map[string]any{"id": c.CreateProduct.ID}, &r); err != nil {
			t.Fatal(err)
		}
		var q struct {
			Products struct{ TotalCount int }
			Reviews  struct{ TotalCount int }
		}
		if err := gql(queryURL, `query($s: String, $id: ID!, $t: String) { products(search: $s, consistentWith: $t) { totalCount } reviews(productId: $id, consistentWith: $t) { totalCount } }`,
			map[string]any{"s": name, "id": c.CreateProduct.ID, "t": r.AddReview.Token}, &q); err != nil {
			t.Fatal(err)
		}
		if q.Products.TotalCount != 1 || q.Reviews.TotalCount != 1 {
			t.Fatalf("write %d: search found %d products and %d reviews, want 1 and 1", i, q.Products.TotalCount, q.Reviews.TotalCount)
		}
	}
}
