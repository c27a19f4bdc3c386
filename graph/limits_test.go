package graph_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/99designs/gqlgen/graphql"

	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/graph/read"
)

func readServer(tb testing.TB) http.Handler {
	tb.Helper()
	return graph.NewServer(read.NewExecutableSchema(read.Config{Resolvers: &read.Resolver{}, Complexity: read.Complexity()}), graph.Options{
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), ComplexityLimit: 1000, Introspection: true,
	})
}

type gqlError struct {
	Message    string
	Extensions map[string]any
}

func post(tb testing.TB, h http.Handler, q string) []gqlError {
	tb.Helper()
	body, _ := json.Marshal(map[string]any{"query": q})
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	var res struct{ Errors []gqlError }
	if err := json.Unmarshal(rec.Body.Bytes(), &res); err != nil {
		tb.Fatalf("status %d, body %.200s: %v", rec.Code, rec.Body.String(), err)
	}
	return res.Errors
}

// repeat joins n copies of field(i) inside one selection set.
func repeat(n int, field func(i int) string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		b.WriteString(field(i))
		b.WriteString(" ")
	}
	b.WriteString("}")
	return b.String()
}

// Documents whose validation grows faster than their size are refused
// before validation, with BAD_USER_INPUT and the limit that was hit.
func TestDocumentLimitsRefuseFloods(t *testing.T) {
	h := readServer(t)
	deep := "{ __schema { types { " + strings.Repeat("fields { type { ", 8) + "name" + strings.Repeat(" } }", 8) + " } } }"
	cases := []struct {
		name, query, limit string
	}{
		{"5,000 aliases of different ids", repeat(5000, func(i int) string { return `a: product(id: "x` + itoa(i) + `") { id }` }), "tokens"},
		{"20,000 copies of one aliased field", repeat(20000, func(int) string { return `a: product(id: "x1") { id }` }), "tokens"},
		{"600 plain fields", repeat(600, func(int) string { return "__typename" }), "fields"},
		{"150 aliases", repeat(150, func(i int) string { return "t" + itoa(i) + ": __typename" }), "aliases"},
		{"fragments spread into a tree", `query { ...A } fragment A on Query { ...B ...B ...B ...B } fragment B on Query { ...C ...C ...C ...C }
			fragment C on Query { ...D ...D ...D ...D } fragment D on Query { __typename __typename __typename __typename __typename __typename __typename __typename __typename __typename }`, "fields"},
		{"nesting 19 deep", deep, "depth"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := post(t, h, c.query)
			if len(errs) != 1 || errs[0].Extensions["code"] != "BAD_USER_INPUT" || errs[0].Extensions["limit"] != c.limit {
				t.Fatalf("got %+v, want one BAD_USER_INPUT with limit %q", errs, c.limit)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// The documents real clients send pass: GraphiQL's introspection (with a
// deep TypeRef) and a typical search.
func TestDocumentLimitsPassRealQueries(t *testing.T) {
	h := readServer(t)
	for name, q := range map[string]string{"introspection": introspection, "search": `{ products(search: "k", first: 20) { totalCount edges { cursor node { id name priceCents averageRating } }
		pageInfo { hasNextPage endCursor } facets { categories { category count } } } }`} {
		for _, e := range post(t, h, q) {
			if e.Extensions["code"] == "BAD_USER_INPUT" {
				t.Errorf("%s refused: %s", name, e.Message)
			}
		}
	}
}

// The 20,000-alias document (440 KiB) took over a minute of CPU before
// the limits; this measures the refusal.
func BenchmarkRefuse20000Aliases(b *testing.B) {
	h := readServer(b)
	q := repeat(20000, func(int) string { return `a: product(id: "x1") { id }` })
	b.SetBytes(int64(len(q)))
	for b.Loop() {
		if errs := post(b, h, q); len(errs) != 1 {
			b.Fatal(errs)
		}
	}
}

// BenchmarkRefuse5000SameNameFields is the 23 GB case: 5,000 fields named
// a with different arguments.
func BenchmarkRefuse5000SameNameFields(b *testing.B) {
	h := readServer(b)
	q := repeat(5000, func(i int) string { return `a: product(id: "x` + itoa(i) + `") { id }` })
	for b.Loop() {
		if errs := post(b, h, q); len(errs) != 1 {
			b.Fatal(errs)
		}
	}
}

// BenchmarkWorstAcceptedSameName is the most same-name fields the limits
// let through to validation (just under the token limit).
func BenchmarkWorstAcceptedSameName(b *testing.B) {
	h := readServer(b)
	q := repeat(495, func(int) string { return `product(id: "x1") { id }` })
	for b.Loop() {
		post(b, h, q)
	}
}

const introspection = `query IntrospectionQuery {
  __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args(includeDeprecated: true) { ...InputValue } }
  }
}
fragment FullType on __Type {
  kind name description
  fields(includeDeprecated: true) { name description args(includeDeprecated: true) { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
  inputFields(includeDeprecated: true) { ...InputValue }
  interfaces { ...TypeRef }
  enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason }
  possibleTypes { ...TypeRef }
}
fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue isDeprecated deprecationReason }
fragment TypeRef on __Type {
  kind name
  ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } } }
}`

// Every playground tab passes the default document limits.
func TestPlaygroundTabsPassDocumentLimits(t *testing.T) {
	for _, tab := range append(graph.CommandTabs(), graph.QueryTabs()...) {
		if err := graph.DefaultDocumentLimits.MutateOperationParameters(context.Background(), &graphql.RawParams{Query: tab.Query}); err != nil {
			t.Errorf("tab %q: %v", tab.Name, err)
		}
	}
}

// Automatic persisted queries still work behind the document limits, and
// a query too long to cache is asked for again rather than kept.
func TestPersistedQueriesBehindTheLimits(t *testing.T) {
	h := readServer(t)
	send := func(q, hash string) []gqlError {
		body, _ := json.Marshal(map[string]any{"query": q, "extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}})
		req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		var res struct{ Errors []gqlError }
		_ = json.Unmarshal(rec.Body.Bytes(), &res)
		return res.Errors
	}
	sha := func(q string) string { s := sha256.Sum256([]byte(q)); return hex.EncodeToString(s[:]) }
	small := "{ __typename }"
	if errs := send(small, sha(small)); len(errs) != 0 {
		t.Fatalf("storing a persisted query: %v", errs)
	}
	if errs := send("", sha(small)); len(errs) != 0 {
		t.Fatalf("a stored persisted query by hash: %v", errs)
	}
	long := "{ __typename " + strings.Repeat("# padding\n", 2000) + "}"
	if errs := send(long, sha(long)); len(errs) != 0 {
		t.Fatalf("a long persisted query: %v", errs)
	}
	if errs := send("", sha(long)); len(errs) != 1 || errs[0].Extensions["code"] != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("a long persisted query by hash: %v, want PERSISTED_QUERY_NOT_FOUND (it was not kept)", errs)
	}
	flood := repeat(200, func(i int) string { return "t" + itoa(i) + ": __typename" })
	if errs := send(flood, sha(flood)); len(errs) != 1 || errs[0].Extensions["limit"] != "aliases" {
		t.Fatalf("a flood as a persisted query: %v", errs)
	}
	if errs := send("", sha(flood)); len(errs) != 1 || errs[0].Extensions["code"] != "PERSISTED_QUERY_NOT_FOUND" {
		t.Fatalf("a refused flood was stored: %v", errs)
	}
}

// BenchmarkCheck20000Aliases is the check alone, without HTTP and JSON.
func BenchmarkCheck20000Aliases(b *testing.B) {
	q := repeat(20000, func(int) string { return `a: product(id: "x1") { id }` })
	for b.Loop() {
		if err := graph.DefaultDocumentLimits.MutateOperationParameters(context.Background(), &graphql.RawParams{Query: q}); err == nil {
			b.Fatal("accepted")
		}
	}
}

// TestCheckedOnceKeepsOnlyPasses: a document within the limits is
// remembered, a refused one is refused again every time, and a remembered
// pass does not let a different document through.
func TestCheckedOnceKeepsOnlyPasses(t *testing.T) {
	limits := graph.DocumentLimits{MaxTokens: 1000, MaxFields: 50, MaxAliases: 3, MaxDepth: 5}
	ext, ok := graph.CheckedOnce(limits).(graphql.OperationParameterMutator)
	if !ok {
		t.Fatal("CheckedOnce does not check operation parameters")
	}
	check := func(q string) string {
		t.Helper()
		if err := ext.MutateOperationParameters(context.Background(), &graphql.RawParams{Query: q}); err != nil {
			limit, _ := err.Extensions["limit"].(string)
			return limit
		}
		return ""
	}
	small := `{ a: __typename b: __typename }`
	flood := `{ a: __typename b: __typename c: __typename d: __typename }`
	deep := `{ a { b { c { d { e { f } } } } } }`
	for round := range 3 {
		if got := check(small); got != "" {
			t.Fatalf("round %d: a small document refused (%s)", round, got)
		}
		if got := check(flood); got != "aliases" {
			t.Fatalf("round %d: four aliases over a limit of 3: %q, want aliases", round, got)
		}
		if got := check(deep); got != "depth" {
			t.Fatalf("round %d: six deep over a limit of 5: %q, want depth", round, got)
		}
	}
	long := "{ __typename " + strings.Repeat("# a comment that makes the document long\n", 500) + "}"
	for range 2 {
		if got := check(long); got != "" {
			t.Fatalf("a long document within the limits refused (%s)", got)
		}
	}
}

// A request decoded by a gateway of this process is executed as handed
// over; the body is not decoded again. Without it, the same body is.
func TestADecodedRequestIsNotDecodedAgain(t *testing.T) {
	h := readServer(t)
	do := func(ctx context.Context) (int, string) {
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/graphql", strings.NewReader("not json"))
		req.Header.Set("Content-Type", "application/json")
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		return w.Code, w.Body.String()
	}
	ctx := graph.WithDecodedRequest(context.Background(), &graphql.RawParams{Query: `{ __typename }`})
	if code, body := do(ctx); code != http.StatusOK || !strings.Contains(body, `"__typename":"Query"`) {
		t.Fatalf("with the decoded request: %d %s", code, body)
	}
	if code, body := do(context.Background()); code != http.StatusBadRequest {
		t.Fatalf("the body itself is not JSON: %d %s", code, body)
	}
}
