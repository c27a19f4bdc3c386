package write_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/graph/write"
	"github.com/splitstream/splitstream/internal/testenv"
)

// server runs the command service's GraphQL endpoint on a fresh database.
func server(t *testing.T) (*httptest.Server, *pgxpool.Pool) {
	t.Helper()
	_, pool := testenv.Postgres(t)
	// As the command role runs it: the policy, signed tokens, verified callers.
	verifier, err := auth.NewVerifier(context.Background(), auth.Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	tokens, err := auth.NewReadTokens(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	svc, err := command.NewService(testenv.EventStore(t, pool), command.WithGuard(auth.Policy{}), command.WithTokens(tokens))
	if err != nil {
		t.Fatal(err)
	}
	schema := write.NewExecutableSchema(write.Config{Resolvers: &write.Resolver{Commands: svc, Version: "test"}})
	srv := graph.NewServer(schema, graph.Options{Log: testenv.Logger(t), ComplexityLimit: 200, Introspection: true})
	ts := httptest.NewServer(verifier.Middleware(nil, graph.Middleware(1<<20, srv)))
	t.Cleanup(ts.Close)
	return ts, pool
}

type gqlError struct {
	Message    string         `json:"message"`
	Extensions map[string]any `json:"extensions"`
}

type response struct {
	status int
	Data   map[string]json.RawMessage `json:"data"`
	Errors []gqlError                 `json:"errors"`
}

// post sends body as an admin.
func post(t *testing.T, ts *httptest.Server, body string) response {
	t.Helper()
	return postAs(t, ts, token(t, "root", true), body)
}

// postAs sends body with the bearer token tok ("" for none).
func postAs(t *testing.T, ts *httptest.Server, tok, body string) response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, ts.URL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	r := response{status: res.StatusCode}
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil && res.StatusCode < 400 {
		t.Fatalf("decode response: %v", err)
	}
	return r
}

func mutate(t *testing.T, ts *httptest.Server, query string, vars map[string]any) response {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	return post(t, ts, string(b))
}

type result struct {
	ID      string `json:"id"`
	Version int    `json:"version"`
	Token   string `json:"token"`
}

func (r response) result(t *testing.T, field string) result {
	t.Helper()
	if len(r.Errors) > 0 {
		t.Fatalf("%s: %+v", field, r.Errors)
	}
	var out result
	if err := json.Unmarshal(r.Data[field], &out); err != nil {
		t.Fatalf("%s: %v", field, err)
	}
	return out
}

const createProduct = `mutation($in: CreateProductInput!) { createProduct(input: $in) { id version token } }`

func newProduct(t *testing.T, ts *httptest.Server, stock int) result {
	t.Helper()
	return mutate(t, ts, createProduct, map[string]any{"in": map[string]any{
		"name": "Kettle", "category": "kitchen", "priceCents": 2599, "currency": "EUR", "stock": stock,
	}}).result(t, "createProduct")
}

func countEvents(t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestConcurrentRenamesOneWins(t *testing.T) {
	ts, pool := server(t)
	p := newProduct(t, ts, 1)
	const writers = 50
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		wins      int
		conflicts int
		other     []string
	)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := mutate(t, ts, `mutation($in: RenameProductInput!) { renameProduct(input: $in) { id version } }`,
				map[string]any{"in": map[string]any{"id": p.ID, "name": fmt.Sprintf("Kettle %d", i), "expectedVersion": 1}})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case len(r.Errors) == 0:
				wins++
			case r.Errors[0].Extensions["code"] == "CONFLICT" && r.Errors[0].Extensions["currentVersion"] == float64(2):
				conflicts++
			default:
				other = append(other, fmt.Sprint(r.Errors))
			}
		}()
	}
	wg.Wait()
	if wins != 1 || conflicts != writers-1 || len(other) > 0 {
		t.Fatalf("wins %d, conflicts %d (want 1 and %d), other: %v", wins, conflicts, writers-1, other)
	}
	rows, err := pool.Query(context.Background(), `SELECT version FROM events WHERE stream_id = $1 ORDER BY version`, p.ID)
	if err != nil {
		t.Fatal(err)
	}
	var versions []int
	for rows.Next() {
		var v int
		_ = rows.Scan(&v)
		versions = append(versions, v)
	}
	if fmt.Sprint(versions) != "[1 2]" {
		t.Fatalf("stream versions %v, want [1 2] with no hole", versions)
	}
}

func TestCommandIDMakesMutationsIdempotent(t *testing.T) {
	ts, pool := server(t)
	in := map[string]any{"name": "Kettle", "category": "kitchen", "priceCents": 2599, "currency": "EUR", "stock": 3, "commandId": "cmd-1"}
	first := mutate(t, ts, createProduct, map[string]any{"in": in}).result(t, "createProduct")
	before := countEvents(t, pool)
	again := mutate(t, ts, createProduct, map[string]any{"in": in}).result(t, "createProduct")
	if again != first {
		t.Fatalf("repeat answered %+v, first %+v", again, first)
	}
	if after := countEvents(t, pool); after != before {
		t.Fatalf("repeat appended %d events", after-before)
	}
	in["name"] = "Teapot"
	r := mutate(t, ts, createProduct, map[string]any{"in": in})
	if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "CONFLICT" {
		t.Fatalf("reused commandId with another input: %+v", r)
	}
	// Concurrent repeats of one new command id: one result, one append.
	in["name"], in["commandId"] = "Mug", "cmd-2"
	results := make([]result, 10)
	var wg sync.WaitGroup
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = mutate(t, ts, createProduct, map[string]any{"in": in}).result(t, "createProduct")
		}()
	}
	wg.Wait()
	for _, r := range results {
		if r != results[0] {
			t.Fatalf("concurrent repeats answered differently: %+v vs %+v", r, results[0])
		}
	}
	if got := countEvents(t, pool); got != before+1 {
		t.Fatalf("concurrent repeats appended %d events, want 1", got-before)
	}
}

func TestInvalidInputNamesTheField(t *testing.T) {
	ts, pool := server(t)
	p := newProduct(t, ts, 2)
	cases := invalidInputCases(p.ID)
	before := countEvents(t, pool)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mutate(t, ts, c.query, c.vars)
			if len(r.Errors) != 1 {
				t.Fatalf("want one error, got %+v", r)
			}
			ext := r.Errors[0].Extensions
			if ext["code"] != c.code || (c.field != "" && ext["field"] != c.field) {
				t.Fatalf("got code %v field %v (%s), want %s %s", ext["code"], ext["field"], r.Errors[0].Message, c.code, c.field)
			}
		})
	}
	if after := countEvents(t, pool); after != before {
		t.Fatalf("refused commands appended %d events", after-before)
	}
}

// invalidInput is a mutation refused with code, naming field when it is set.
type invalidInput struct {
	name, query string
	vars        map[string]any
	code, field string
}

// invalidInputCases are mutations with one input out of bounds; productID is
// a product that exists.
func invalidInputCases(productID string) []invalidInput {
	long := func(n int) string { return strings.Repeat("x", n) }
	lines := func(n int) []any {
		out := make([]any, n)
		for i := range out {
			out[i] = map[string]any{"productId": fmt.Sprintf("p%d", i), "quantity": 1}
		}
		return out
	}
	product := func(over map[string]any) map[string]any {
		in := map[string]any{"name": "Kettle", "category": "kitchen", "priceCents": 100, "currency": "EUR", "stock": 1}
		for k, v := range over {
			in[k] = v
		}
		return map[string]any{"in": in}
	}
	review := func(over map[string]any) map[string]any {
		in := map[string]any{"productId": productID, "author": "Ann", "rating": 4}
		for k, v := range over {
			in[k] = v
		}
		return map[string]any{"in": in}
	}
	const addReview = `mutation($in: AddReviewInput!) { addReview(input: $in) { id } }`
	const placeOrder = `mutation($in: PlaceOrderInput!) { placeOrder(input: $in) { id } }`
	return []invalidInput{
		{"empty name", createProduct, product(map[string]any{"name": " "}), "BAD_USER_INPUT", "name"},
		{"name too long", createProduct, product(map[string]any{"name": long(201)}), "BAD_USER_INPUT", "name"},
		{"no category", createProduct, product(map[string]any{"category": ""}), "BAD_USER_INPUT", "category"},
		{"price zero", createProduct, product(map[string]any{"priceCents": 0}), "BAD_USER_INPUT", "priceCents"},
		{"price too high", createProduct, product(map[string]any{"priceCents": 1_000_000_001}), "BAD_USER_INPUT", "priceCents"},
		{"currency lower case", createProduct, product(map[string]any{"currency": "eur"}), "BAD_USER_INPUT", "currency"},
		{"currency four letters", createProduct, product(map[string]any{"currency": "EURO"}), "BAD_USER_INPUT", "currency"},
		{"negative stock", createProduct, product(map[string]any{"stock": -1}), "BAD_USER_INPUT", "stock"},
		{"rating zero", addReview, review(map[string]any{"rating": 0}), "BAD_USER_INPUT", "rating"},
		{"rating six", addReview, review(map[string]any{"rating": 6}), "BAD_USER_INPUT", "rating"},
		{"no author", addReview, review(map[string]any{"author": ""}), "BAD_USER_INPUT", "author"},
		{"author too long", addReview, review(map[string]any{"author": long(101)}), "BAD_USER_INPUT", "author"},
		{"comment too long", addReview, review(map[string]any{"comment": long(4001)}), "BAD_USER_INPUT", "comment"},
		{"review of unknown product", addReview, review(map[string]any{"productId": "nope"}), "NOT_FOUND", "productId"},
		{"no lines", placeOrder, map[string]any{"in": map[string]any{"customerId": "c1", "lines": []any{}}}, "BAD_USER_INPUT", "lines"},
		{"101 lines", placeOrder, map[string]any{"in": map[string]any{"customerId": "c1", "lines": lines(101)}}, "BAD_USER_INPUT", "lines"},
		{"quantity zero", placeOrder, map[string]any{"in": map[string]any{"customerId": "c1", "lines": []any{map[string]any{"productId": productID, "quantity": 0}}}}, "BAD_USER_INPUT", "lines[0].quantity"},
		{"quantity 1001", placeOrder, map[string]any{"in": map[string]any{"customerId": "c1", "lines": []any{map[string]any{"productId": productID, "quantity": 1001}}}}, "BAD_USER_INPUT", "lines[0].quantity"},
		{"product twice", placeOrder, map[string]any{"in": map[string]any{"customerId": "c1", "lines": []any{
			map[string]any{"productId": productID, "quantity": 1}, map[string]any{"productId": productID, "quantity": 2}}}}, "BAD_USER_INPUT", "lines[1].productId"},
		{"rename unknown product", `mutation { renameProduct(input: {id: "nope", name: "X"}) { id } }`, nil, "NOT_FOUND", ""},
		// The attack: 40,000 characters in an id freeze nothing.
		{"customerId 40,000 long", placeOrder, map[string]any{"in": map[string]any{"customerId": long(40_000), "lines": []any{map[string]any{"productId": productID, "quantity": 1}}}}, "BAD_USER_INPUT", "customerId"},
		{"line productId 40,000 long", placeOrder, map[string]any{"in": map[string]any{"customerId": "c1", "lines": []any{map[string]any{"productId": long(40_000), "quantity": 1}}}}, "BAD_USER_INPUT", "lines[0].productId"},
		{"commandId 129 bytes", placeOrder, map[string]any{"in": map[string]any{"customerId": "c1", "commandId": long(129), "lines": []any{map[string]any{"productId": productID, "quantity": 1}}}}, "BAD_USER_INPUT", "commandId"},
		{"commandId 40,000 long", createProduct, product(map[string]any{"commandId": long(40_000)}), "BAD_USER_INPUT", "commandId"},
		{"review productId 40,000 long", addReview, review(map[string]any{"productId": long(40_000)}), "BAD_USER_INPUT", "productId"},
		{"id with a line break", `mutation { restockProduct(input: {id: "a\nb", quantity: 1}) { id } }`, nil, "BAD_USER_INPUT", "id"},
		{"id 40,000 long", `mutation($id: ID!) { restockProduct(input: {id: $id, quantity: 1}) { id } }`, map[string]any{"id": long(40_000)}, "BAD_USER_INPUT", "id"},
		{"category 101 long", createProduct, product(map[string]any{"category": long(101)}), "BAD_USER_INPUT", "category"},
		{"description 10,001 long", createProduct, product(map[string]any{"description": long(10_001)}), "BAD_USER_INPUT", "description"},
		{"currency 40,000 long", createProduct, product(map[string]any{"currency": long(40_000)}), "BAD_USER_INPUT", "currency"},
		{"name 40,000 long", `mutation($id: ID!, $n: String!) { renameProduct(input: {id: $id, name: $n}) { id } }`, map[string]any{"id": productID, "n": long(40_000)}, "BAD_USER_INPUT", "name"},
		{"reason 1,001 long", `mutation($r: String) { cancelOrder(input: {id: "nope", reason: $r}) { id } }`, map[string]any{"r": long(1001)}, "BAD_USER_INPUT", "reason"},
		{"negative expectedVersion", `mutation($id: ID!) { discontinueProduct(input: {id: $id, expectedVersion: -1}) { id } }`, map[string]any{"id": productID}, "BAD_USER_INPUT", "expectedVersion"},
		{"restock beyond the limit", `mutation($id: ID!) { restockProduct(input: {id: $id, quantity: 1000000001}) { id } }`, map[string]any{"id": productID}, "BAD_USER_INPUT", "quantity"},
		{"cancel unknown order", `mutation { cancelOrder(input: {id: "nope"}) { id } }`, nil, "NOT_FOUND", ""},
	}
}

func TestDiscontinuedProductRefusesChanges(t *testing.T) {
	ts, _ := server(t)
	p := newProduct(t, ts, 2)
	mutate(t, ts, `mutation($id: ID!) { discontinueProduct(input: {id: $id}) { version } }`, map[string]any{"id": p.ID}).result(t, "discontinueProduct")
	r := mutate(t, ts, `mutation($id: ID!) { renameProduct(input: {id: $id, name: "New"}) { version } }`, map[string]any{"id": p.ID})
	if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "CONFLICT" {
		t.Fatalf("rename of a discontinued product: %+v", r)
	}
	r = mutate(t, ts, `mutation($id: ID!) { addReview(input: {productId: $id, author: "A", rating: 5}) { id } }`, map[string]any{"id": p.ID})
	if len(r.Errors) == 0 || r.Errors[0].Extensions["code"] != "NOT_FOUND" {
		t.Fatalf("review of a discontinued product: %+v", r)
	}
}

func TestMalformedRequestsAppendNothing(t *testing.T) {
	ts, pool := server(t)
	before := countEvents(t, pool)
	for name, body := range map[string]string{
		"syntax error":   `{"query":"mutation { createProduct( }"}`,
		"unknown field":  `{"query":"mutation { launchRocket { id } }"}`,
		"wrong type":     `{"query":"mutation { createProduct(input: {name: 1, category: \"c\", priceCents: \"x\", currency: \"EUR\", stock: 1}) { id } }"}`,
		"not json":       `{"query": `,
		"missing fields": `{"query":"mutation { createProduct(input: {name: \"A\"}) { id } }"}`,
	} {
		// GraphQL over HTTP: a document that does not parse or validate is a
		// well-formed request, 200 with errors (and no data) under
		// application/json, the media type when Accept is missing; a body that
		// is no GraphQL request at all is 400.
		r := post(t, ts, body)
		want := http.StatusOK
		if name == "not json" {
			want = http.StatusBadRequest
		}
		if r.status != want || len(r.Errors) == 0 || r.Data != nil {
			t.Errorf("%s: status %d, %d errors, data %v; want %d with errors and no data", name, r.status, len(r.Errors), r.Data, want)
		}
	}
	big := `{"query":"mutation { createProduct(input: {name: \"` + strings.Repeat("x", 1<<20) + `\", category: \"c\", priceCents: 1, currency: \"EUR\", stock: 1}) { id } }"}`
	if r := post(t, ts, big); r.status != http.StatusRequestEntityTooLarge {
		t.Errorf("1 MiB body: status %d, want 413", r.status)
	}
	// Chunked, so no Content-Length warns the server.
	req, _ := http.NewRequest(http.MethodPost, ts.URL, struct{ *bytes.Reader }{bytes.NewReader([]byte(big))})
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("chunked 1 MiB body: status %d, want 413", res.StatusCode)
	}
	if after := countEvents(t, pool); after != before {
		t.Fatalf("malformed requests appended %d events", after-before)
	}
}

func TestComplexityLimit(t *testing.T) {
	ts, _ := server(t)
	var b strings.Builder
	b.WriteString("mutation {")
	for i := range 300 {
		fmt.Fprintf(&b, " a%d: createProduct(input: {name: \"A\", category: \"c\", priceCents: 1, currency: \"EUR\", stock: 1}) { id }", i)
	}
	b.WriteString(" }")
	r := mutate(t, ts, b.String(), nil)
	// The document limits (500 fields, 100 aliases) refuse it before the
	// complexity limit would.
	if len(r.Errors) == 0 || (!strings.Contains(r.Errors[0].Message, "complexity") && r.Errors[0].Extensions["limit"] == nil) {
		t.Fatalf("a 300-mutation request was not refused for complexity or size: %+v", r.Errors)
	}
}

func TestInternalErrorsHideDetails(t *testing.T) {
	ts, pool := server(t)
	pool.Close() // every command now fails inside the store
	r := mutate(t, ts, createProduct, map[string]any{"in": map[string]any{
		"name": "Kettle", "category": "kitchen", "priceCents": 2599, "currency": "EUR", "stock": 1,
	}})
	if len(r.Errors) != 1 || r.Errors[0].Extensions["code"] != "INTERNAL" || r.Errors[0].Extensions["requestId"] == "" {
		t.Fatalf("want one INTERNAL error with a request id, got %+v", r.Errors)
	}
	msg := strings.ToLower(r.Errors[0].Message)
	for _, leak := range []string{"pool", "closed", "postgres", "sql", "append"} {
		if strings.Contains(msg, leak) {
			t.Fatalf("internal detail %q leaked: %s", leak, r.Errors[0].Message)
		}
	}
}
