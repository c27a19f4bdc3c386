package main

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// graphQLAs posts a document with an Authorization header (a token, or
// anything a forger sends).
func graphQLAs(service int, authorization, query string, vars map[string]any) func(*testing.T, target) outcome {
	return func(t *testing.T, s target) outcome {
		url := s.query
		if service == onCommand {
			url = s.command
		}
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		o := firstError(t, res.Body)
		o.Status = res.StatusCode
		return o
	}
}

// longMutationCases: a 40,000-character value in every string field of the
// mutations, sent by an admin (who may do everything, so only the limits
// stand in the way). Each is refused with BAD_USER_INPUT naming the field,
// before anything is appended.
func longMutationCases() []hostileCase {
	admin := "Bearer " + adminToken
	huge := strings.Repeat("<", 40_000)
	create := func(field string) map[string]any {
		in := map[string]any{"name": "n", "description": "d", "category": "c", "priceCents": 100, "currency": "EUR", "stock": 1}
		in[field] = huge
		return map[string]any{"in": in}
	}
	const createQ = `mutation($in: CreateProductInput!) { createProduct(input: $in) { id } }`
	invalid := func(field string) outcome { return outcome{Code: "BAD_USER_INPUT", Field: field} }
	cases := []hostileCase{}
	for _, f := range []string{"name", "description", "category", "currency", "commandId"} {
		cases = append(cases, hostileCase{"createProduct with a 40,000-character " + f, graphQLAs(onCommand, admin, createQ, create(f)), invalid(f)})
	}
	cases = append(cases,
		hostileCase{"renameProduct with a 40,000-character id", graphQLAs(onCommand, admin,
			`mutation($id: ID!) { renameProduct(input: {id: $id, name: "n"}) { id } }`, map[string]any{"id": huge}), invalid("id")},
		hostileCase{"addReview with a 40,000-character author", graphQLAs(onCommand, admin,
			`mutation($a: String!) { addReview(input: {productId: "p", author: $a, rating: 5}) { id } }`, map[string]any{"a": huge}), invalid("author")},
		hostileCase{"addReview with a 40,000-character comment", graphQLAs(onCommand, admin,
			`mutation($c: String) { addReview(input: {productId: "p", author: "a", rating: 5, comment: $c}) { id } }`, map[string]any{"c": huge}), invalid("comment")},
		hostileCase{"placeOrder with a 40,000-character customerId", graphQLAs(onCommand, admin,
			`mutation($c: ID!) { placeOrder(input: {customerId: $c, lines: [{productId: "p", quantity: 1}]}) { id } }`, map[string]any{"c": huge}), invalid("customerId")},
		hostileCase{"placeOrder with a 40,000-character line productId", graphQLAs(onCommand, admin,
			`mutation($p: ID!) { placeOrder(input: {customerId: "c", lines: [{productId: $p, quantity: 1}]}) { id } }`, map[string]any{"p": huge}), invalid("lines[0].productId")},
		hostileCase{"placeOrder with a 40,000-character commandId", graphQLAs(onCommand, admin,
			`mutation($k: ID) { placeOrder(input: {customerId: "c", lines: [{productId: "p", quantity: 1}], commandId: $k}) { id } }`, map[string]any{"k": huge}), invalid("commandId")},
		hostileCase{"cancelOrder with a 40,000-character reason", graphQLAs(onCommand, admin,
			`mutation($r: String) { cancelOrder(input: {id: "o", reason: $r}) { id } }`, map[string]any{"r": huge}), invalid("reason")},
		hostileCase{"placeOrder with 101 lines", graphQLAs(onCommand, admin,
			`mutation($l: [OrderLineInput!]!) { placeOrder(input: {customerId: "c", lines: $l}) { id } }`, map[string]any{"l": orderLines(101)}), invalid("lines")},
	)
	return cases
}

func orderLines(n int) []map[string]any {
	out := make([]map[string]any, n)
	for i := range out {
		out[i] = map[string]any{"productId": fmt.Sprintf("p%d", i), "quantity": 1}
	}
	return out
}

// forgedCases: tokens nobody issued. An invalid JWT is UNAUTHENTICATED
// (never anonymous); a forged read-your-writes token is BAD_USER_INPUT at once.
func forgedCases() []hostileCase {
	b64 := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	none := b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(`{"sub":"mallory","roles":["admin"],"exp":4102444800}`) + "."
	// The same claims under HS256 with a guessed key.
	badSig := b64(`{"alg":"HS256","typ":"JWT"}`) + "." + b64(`{"sub":"mallory","roles":["admin"],"exp":4102444800}`) + "." + b64(strings.Repeat("x", 32))
	unauth := outcome{Status: http.StatusUnauthorized, Code: "UNAUTHENTICATED"}
	const mutation = `mutation { createProduct(input: {name: "n", category: "c", priceCents: 1, currency: "EUR", stock: 1}) { id } }`
	return []hostileCase{
		{"alg none token", graphQLAs(onCommand, "Bearer "+none, mutation, nil), unauth},
		{"token with a bad signature", graphQLAs(onCommand, "Bearer "+badSig, mutation, nil), unauth},
		{"garbage token on the query service", graphQLAs(onQuery, "Bearer not.a.jwt", `{ __typename }`, nil), unauth},
		{"an old unsigned read token", graphQL(onQuery, `query($t: String) { product(id: "x", consistentWith: $t) { id } }`,
			map[string]any{"t": b64("v1:999999999:999999999")}), outcome{Code: "BAD_USER_INPUT", Field: "consistentWith"}},
		{"a read token with a forged signature", graphQL(onQuery, `query($t: String) { product(id: "x", consistentWith: $t) { id } }`,
			map[string]any{"t": forgedReadToken()}), outcome{Code: "BAD_USER_INPUT", Field: "consistentWith"}},
	}
}

// longReviews adds 300 reviews of 4,000 '<' (24 KB each as Go writes JSON)
// to one product: all accepted and counted, and the product stays readable.
func longReviews(t *testing.T, s target) outcome {
	var c struct{ CreateProduct struct{ ID, Token string } }
	if err := gql(s.command, `mutation { createProduct(input: {name: "Reviewed", category: "c", priceCents: 100, currency: "EUR", stock: 1}) { id token } }`, nil, &c); err != nil {
		t.Fatal(err)
	}
	comment := strings.Repeat("<", 4000)
	var last struct{ AddReview struct{ Token string } }
	for i := range 300 {
		if err := gql(s.command, `mutation($p: ID!, $c: String) { addReview(input: {productId: $p, author: "a", rating: 4, comment: $c}) { token } }`,
			map[string]any{"p": c.CreateProduct.ID, "c": comment}, &last); err != nil {
			t.Fatalf("review %d: %v", i, err)
		}
	}
	var q struct {
		Product *struct {
			ReviewCount   int
			AverageRating float64
		}
	}
	if err := gql(s.query, `query($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { reviewCount averageRating } }`,
		map[string]any{"id": c.CreateProduct.ID, "t": last.AddReview.Token}, &q); err != nil || q.Product == nil {
		t.Fatalf("product after 300 long reviews: %v", err)
	}
	if q.Product.ReviewCount != 300 || q.Product.AverageRating != 4 {
		t.Fatalf("product after 300 long reviews: %+v", *q.Product)
	}
	return outcome{Code: "none"}
}

// forgedReadToken has the shape of a signed read token (version 2, a cursor
// far ahead, 16 bytes of MAC) with a MAC made up.
func forgedReadToken() string {
	b := []byte{2}
	b = binary.BigEndian.AppendUint64(b, 1<<40)
	b = binary.BigEndian.AppendUint64(b, 1<<40)
	b = append(b, bytes.Repeat([]byte{0xAB}, 16)...)
	return base64.RawURLEncoding.EncodeToString(b)
}
