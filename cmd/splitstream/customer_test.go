package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/splitstream/splitstream/auth"
)

// gqlAs posts one GraphQL request as the caller of token.
func gqlAs(t *testing.T, url, token, query string, vars map[string]any) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var a answer
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		t.Fatalf("decode %s: %v", res.Status, err)
	}
	return a
}

// mutate runs a mutation that must succeed and returns its id and token.
func mutate(t *testing.T, url, token, field, input string) (id, readToken string) {
	t.Helper()
	a := gqlAs(t, url, token, `mutation { `+field+`(input: `+input+`) { id version token } }`, nil)
	if len(a.Errors) > 0 {
		t.Fatalf("%s: %s (%s)", field, a.Errors[0].Message, a.code())
	}
	var out map[string]struct{ ID, Token string }
	if err := json.Unmarshal(a.Data, &out); err != nil {
		t.Fatal(err)
	}
	return out[field].ID, out[field].Token
}

// customerTokens are a customer's token and another customer's.
func customerTokens(t *testing.T) (ada, bob string) {
	t.Helper()
	ada, err := auth.Mint([]byte(testJWTSecret), "ada", nil, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	bob, err = auth.Mint([]byte(testJWTSecret), "bob", nil, time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return ada, bob
}

// Through the real services: a customer registers, reads itself, orders,
// renames; the order shows the current name; another customer may neither
// register as it nor read it; customerChanged reaches only the customer.
func TestCustomerThroughTheServices(t *testing.T) {
	env, commandURL, queryURL := stack(t)
	ada, bob := customerTokens(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	register := `{id: "ada", displayName: "Ada", email: "ada@example.com", shippingAddress: "1 Loop Rd"}`
	if a := gqlAs(t, commandURL, bob, `mutation { registerCustomer(input: `+register+`) { id } }`, nil); a.code() != "FORBIDDEN" {
		t.Fatalf("bob registers as ada: %s", a.Data)
	}
	_, tok := mutate(t, commandURL, ada, "registerCustomer", register)
	readCustomer := `query($t: String) { customer(id: "ada", consistentWith: $t) { id displayName email shippingAddress version } }`
	if a := gqlAs(t, queryURL, ada, readCustomer, map[string]any{"t": tok}); !strings.Contains(string(a.Data), `"displayName":"Ada"`) {
		t.Fatalf("ada reads herself: %s %v", a.Data, a.Errors)
	}
	if a := gqlAs(t, queryURL, bob, readCustomer, map[string]any{"t": tok}); string(a.Data) != `{"customer":null}` || len(a.Errors) > 0 {
		t.Fatalf("bob reads ada: %s %v", a.Data, a.Errors)
	}
	if a := gqlAs(t, queryURL, adminToken, readCustomer, map[string]any{"t": tok}); !strings.Contains(string(a.Data), `"displayName":"Ada"`) {
		t.Fatalf("admin reads ada: %s %v", a.Data, a.Errors)
	}

	wsURL := "ws://" + env["SPLITSTREAM_QUERY_ADDR"] + "/graphql"
	changed := `subscription { customerChanged(id: "ada") { displayName shippingAddress version } }`
	mine := subscribeWSAs(t, ctx, wsURL, ada, changed, nil)
	theirs := subscribeWSAs(t, ctx, wsURL, bob, changed, nil)
	time.Sleep(200 * time.Millisecond) // the subscriptions are registered

	productID, _ := mutate(t, commandURL, adminToken, "createProduct", `{name: "Kettle", category: "kitchen", priceCents: 2500, currency: "EUR", stock: 5}`)
	orderID, tok := mutate(t, commandURL, ada, "placeOrder", `{customerId: "ada", lines: [{productId: "`+productID+`", quantity: 1}]}`)
	orderName := func(tok string) string {
		t.Helper()
		a := gqlAs(t, queryURL, ada, `query($id: ID!, $t: String) { order(id: $id, consistentWith: $t) { customerName } }`,
			map[string]any{"id": orderID, "t": tok})
		var out struct {
			Order *struct{ CustomerName string }
		}
		if err := json.Unmarshal(a.Data, &out); err != nil || out.Order == nil {
			t.Fatalf("order: %s %v", a.Data, a.Errors)
		}
		return out.Order.CustomerName
	}
	if got := orderName(tok); got != "Ada" {
		t.Fatalf("order's customerName = %q, want Ada", got)
	}
	_, tok = mutate(t, commandURL, ada, "renameCustomer", `{id: "ada", displayName: "Ada L."}`)
	if got := orderName(tok); got != "Ada L." {
		t.Fatalf("after the rename the order's customerName = %q, want Ada L.", got)
	}
	if a := gqlAs(t, commandURL, bob, `mutation { renameCustomer(input: {id: "ada", displayName: "Bob"}) { id } }`, nil); a.code() != "FORBIDDEN" {
		t.Fatalf("bob renames ada: %s", a.Data)
	}
	expectCustomerChanged(t, ctx, mine, "Ada L.")
	select {
	case a := <-theirs.events:
		t.Fatalf("bob's customerChanged got %s %v", a.Data, a.Errors)
	case <-time.After(500 * time.Millisecond):
	}
}

// expectCustomerChanged waits for a customerChanged frame with name.
func expectCustomerChanged(t *testing.T, ctx context.Context, s *subscription, name string) {
	t.Helper()
	for {
		select {
		case a, ok := <-s.events:
			if !ok {
				t.Fatal("customerChanged ended")
			}
			if strings.Contains(string(a.Data), `"displayName":"`+name+`"`) {
				return
			}
		case <-ctx.Done():
			t.Fatalf("customerChanged never sent %q", name)
		}
	}
}
