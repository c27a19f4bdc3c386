package write_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
)

var testSecret = []byte("test secret of at least 32 bytes!!")

func token(t *testing.T, sub string, admin bool) string {
	t.Helper()
	var roles []string
	if admin {
		roles = []string{auth.RoleAdmin}
	}
	tok, err := auth.Mint(testSecret, sub, roles, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func code(r response) string {
	if len(r.Errors) == 0 {
		return "ok"
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

// The policy as the command service enforces it over HTTP, with the actor
// recorded as the token's subject whatever headers say.
func TestMutationsFollowThePolicy(t *testing.T) {
	ts, pool := server(t)
	alice, bob, admin := token(t, "alice", false), token(t, "bob", false), token(t, "root", true)
	as := func(tok, query string, vars map[string]any) response {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		return postAs(t, ts, tok, string(b))
	}
	create := map[string]any{"in": map[string]any{"name": "Lamp", "category": "c", "priceCents": 100, "currency": "EUR", "stock": 5}}
	if r := as("", createProduct, create); code(r) != "UNAUTHENTICATED" {
		t.Errorf("anonymous createProduct: %s", code(r))
	}
	if r := as(alice, createProduct, create); code(r) != "FORBIDDEN" {
		t.Errorf("customer createProduct: %s", code(r))
	}
	if r := as("not-a-jwt", createProduct, create); r.status != 401 || code(r) != "UNAUTHENTICATED" {
		t.Errorf("bad token: %d %s", r.status, code(r))
	}
	p := as(admin, createProduct, create).result(t, "createProduct")

	const addReview = `mutation($p: ID!) { addReview(input: {productId: $p, author: "A", rating: 5}) { id } }`
	const removeReview = `mutation($id: ID!) { removeReview(input: {id: $id}) { id } }`
	rv := as(alice, addReview, map[string]any{"p": p.ID}).result(t, "addReview")
	if r := as(bob, removeReview, map[string]any{"id": rv.ID}); code(r) != "FORBIDDEN" {
		t.Errorf("bob removes alice's review: %s", code(r))
	}
	as(alice, removeReview, map[string]any{"id": rv.ID}).result(t, "removeReview")

	const placeOrder = `mutation($c: ID!, $p: ID!) { placeOrder(input: {customerId: $c, lines: [{productId: $p, quantity: 1}]}) { id token } }`
	const cancelOrder = `mutation($id: ID!) { cancelOrder(input: {id: $id}) { id } }`
	if r := as(bob, placeOrder, map[string]any{"c": "alice", "p": p.ID}); code(r) != "FORBIDDEN" {
		t.Errorf("bob orders for alice: %s", code(r))
	}
	o := as(alice, placeOrder, map[string]any{"c": "alice", "p": p.ID}).result(t, "placeOrder")
	if r := as(bob, cancelOrder, map[string]any{"id": o.ID}); code(r) != "NOT_FOUND" {
		t.Errorf("bob cancels alice's order: %s, want NOT_FOUND like a missing one", code(r))
	}
	if r := as(alice, cancelOrder, map[string]any{"id": "no-such-order"}); code(r) != "NOT_FOUND" {
		t.Errorf("missing order: %s", code(r))
	}
	as(alice, cancelOrder, map[string]any{"id": o.ID}).result(t, "cancelOrder")
	as(admin, placeOrder, map[string]any{"c": "carol", "p": p.ID}).result(t, "placeOrder")

	// The actor is the token's subject; the old X-Actor header means nothing.
	body, _ := json.Marshal(map[string]any{"query": `mutation($id: ID!) { renameProduct(input: {id: $id, name: "Lamp 2"}) { id } }`,
		"variables": map[string]any{"id": p.ID}})
	req, _ := http.NewRequest(http.MethodPost, ts.URL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+admin)
	req.Header.Set("X-Actor", "saga")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	store := testenv.EventStore(t, pool)
	for id, want := range map[string]string{p.ID: "root", rv.ID: "alice", o.ID: "alice"} {
		evs, err := store.Load(context.Background(), id)
		if err != nil || len(evs) == 0 {
			t.Fatalf("load %s: %v", id, err)
		}
		if id == p.ID && len(evs) != 2 {
			t.Errorf("product has %d events, want created and renamed", len(evs))
		}
		for _, e := range evs {
			if e.Metadata.Actor != want {
				t.Errorf("%s %s: actor %q, want %q", id, e.Type, e.Metadata.Actor, want)
			}
		}
	}

	// Read-your-writes tokens are signed: not the store's plain form.
	if _, err := event.ParseToken(o.Token); err == nil {
		t.Errorf("token %q is the unsigned v1 form", o.Token)
	}
	rt, _ := auth.NewReadTokens(testSecret)
	if _, err := rt.Open(o.Token); err != nil {
		t.Errorf("token %q does not open: %v", o.Token, err)
	}
}
