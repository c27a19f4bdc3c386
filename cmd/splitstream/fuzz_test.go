package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"testing"
)

// clientCodes are the answers a client's bad input may get; INTERNAL, or
// no answer at all, means the input reached something it should not have.
var clientCodes = map[string]bool{"BAD_USER_INPUT": true, "NOT_FOUND": true, "CONFLICT": true}

// FuzzMutationInputs sends fuzzed values through the string and number
// fields of createProduct, addReview and placeOrder to a real stack, as an
// admin (so only validation stands in the way). Invariants: every answer is
// data or a client-facing error code, and every accepted write is readable
// with its token within the normal wait: the read side keeps up whatever a
// client sends. make test runs it with -fuzz for a bounded time; plain go
// test runs the seeds.
func FuzzMutationInputs(f *testing.F) {
	f.Add("Kettle", "Boils water.", "kitchen", "EUR", "alice", "Good.", "", int64(2599), 5)
	f.Add("", "", "", "", "", "", "", int64(0), 0)
	f.Add("<<<<", "\x00\xff", " k ", "eur", "é", "\u202e", "saga:o:confirm", int64(-1), 6)
	f.Add("n", "d", "c", "USD", "a", "c", "same-command-id", int64(1_000_000_001), 1)
	_, commandURL, queryURL := stack(f)
	f.Fuzz(func(t *testing.T, name, description, category, currency, author, comment, commandID string, price int64, rating int) {
		create := map[string]any{"name": name, "description": description, "category": category,
			"priceCents": price, "currency": currency, "stock": 10}
		if commandID != "" {
			create["commandId"] = commandID
		}
		var c struct{ CreateProduct struct{ ID, Token string } }
		if !fuzzMutation(t, commandURL, `mutation($in: CreateProductInput!) { createProduct(input: $in) { id token } }`,
			map[string]any{"in": create}, &c) {
			c.CreateProduct.ID = "no-such-product"
		} else {
			readable(t, queryURL, c.CreateProduct.ID, c.CreateProduct.Token)
		}
		var r struct{ AddReview struct{ ID, Token string } }
		if fuzzMutation(t, commandURL, `mutation($in: AddReviewInput!) { addReview(input: $in) { id token } }`,
			map[string]any{"in": map[string]any{"productId": c.CreateProduct.ID, "author": author, "rating": rating, "comment": comment}}, &r) {
			readable(t, queryURL, c.CreateProduct.ID, r.AddReview.Token)
		}
		var o struct{ PlaceOrder struct{ ID, Token string } }
		if fuzzMutation(t, commandURL, `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { id token } }`,
			map[string]any{"in": map[string]any{"customerId": author, "lines": []map[string]any{{"productId": c.CreateProduct.ID, "quantity": rating}}}}, &o) {
			var q struct{ Order *struct{ ID string } }
			if err := gql(queryURL, `query($id: ID!, $t: String) { order(id: $id, consistentWith: $t) { id } }`,
				map[string]any{"id": o.PlaceOrder.ID, "t": o.PlaceOrder.Token}, &q); err != nil || q.Order == nil {
				t.Fatalf("an accepted order was not readable with its token: %v", err)
			}
		}
	})
}

// fuzzMutation runs a mutation and reports whether it was accepted; a
// refusal must carry a client-facing code.
func fuzzMutation(t *testing.T, url, query string, vars map[string]any, out any) bool {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	defer res.Body.Close()
	var env struct {
		Data   json.RawMessage
		Errors []struct {
			Message    string
			Extensions struct{ Code string }
		}
	}
	if err := json.NewDecoder(res.Body).Decode(&env); err != nil {
		t.Fatalf("status %s: not a GraphQL answer: %v", res.Status, err)
	}
	if len(env.Errors) > 0 {
		// Variables that do not fit the schema's types (an Int out of
		// range) are refused by gqlgen before our code runs.
		if code := env.Errors[0].Extensions.Code; !clientCodes[code] && code != "GRAPHQL_VALIDATION_FAILED" {
			t.Fatalf("refused with %q (%s), not a client-facing code", code, env.Errors[0].Message)
		}
		return false
	}
	if err := json.Unmarshal(env.Data, out); err != nil {
		t.Fatal(err)
	}
	return true
}

// readable: the product is readable with the token, within the normal wait.
func readable(t *testing.T, queryURL, id, token string) {
	t.Helper()
	var q struct{ Product *struct{ ID string } }
	if err := gql(queryURL, `query($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { id } }`,
		map[string]any{"id": id, "t": token}, &q); err != nil || q.Product == nil {
		t.Fatalf("an accepted write was not readable with its token: %v", err)
	}
}
