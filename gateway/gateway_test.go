package gateway

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/internal/testenv"
)

// recorder is an upstream that answers every operation with the same
// status and body (answerWith changes them) and remembers what it was sent,
// decoded and byte for byte.
type recorder struct {
	*httptest.Server
	mu      sync.Mutex
	status  int
	answer  string
	headers []http.Header
	bodies  []request
	raw     []string
}

func newRecorder(t *testing.T, answer string) *recorder {
	r := &recorder{status: http.StatusOK, answer: answer}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		b, _ := io.ReadAll(req.Body)
		var body request
		_ = json.Unmarshal(b, &body)
		r.mu.Lock()
		r.headers = append(r.headers, req.Header.Clone())
		r.bodies = append(r.bodies, body)
		r.raw = append(r.raw, string(b))
		status, answer := r.status, r.answer
		r.mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *recorder) answerWith(status int, answer string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status, r.answer = status, answer
}

// sent is every body the recorder got, as sent.
func (r *recorder) sent() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.raw...)
}

func (r *recorder) calls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.bodies)
}

func (r *recorder) last() (http.Header, request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.headers[len(r.headers)-1], r.bodies[len(r.bodies)-1]
}

// testGateway serves a gateway over the two upstreams, behind the request
// id middleware the binary puts in front of it.
func testGateway(t *testing.T, command, query string, allow *AllowList) string {
	t.Helper()
	g, err := New(Options{
		CommandURL: command, QueryURL: query, Log: testenv.Logger(t), Introspection: true, ComplexityLimit: 1000,
		QueryTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second, Persisted: allow,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(graph.Middleware(1<<20, g))
	t.Cleanup(srv.Close)
	return srv.URL
}

type reply struct {
	Data   json.RawMessage
	Errors []struct {
		Message    string
		Extensions map[string]any
	}
	Extensions map[string]any
}

func (r reply) code() string {
	if len(r.Errors) == 0 {
		return ""
	}
	c, _ := r.Errors[0].Extensions["code"].(string)
	return c
}

func send(t *testing.T, url string, body map[string]any, header http.Header) reply {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var r reply
	if err := json.NewDecoder(res.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

const (
	aMutation = `mutation { createProduct(input: {name: "n", category: "c", priceCents: 1, currency: "EUR", stock: 1}) { id } }`
	aQuery    = `query One($id: ID!) { product(id: $id) { id name } }`
)

func TestRoutesAndPropagates(t *testing.T) {
	cmd := newRecorder(t, `{"data":{"createProduct":{"id":"p1"}}}`)
	qry := newRecorder(t, `{"data":{"product":{"id":"p1","name":"n"}},"extensions":{"freshness":{"appliedPosition":7}}}`)
	url := testGateway(t, cmd.URL, qry.URL, nil)
	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	hdr := http.Header{"Authorization": {"Bearer abc"}, "X-Request-Id": {"req-42"}, "Traceparent": {parent}, "Tracestate": {"vendor=opaque"}}

	if r := send(t, url+"/", map[string]any{"query": aMutation}, hdr); string(r.Data) != `{"createProduct":{"id":"p1"}}` || cmd.calls() != 1 || qry.calls() != 0 {
		t.Fatalf("mutation: %+v (command %d, query %d calls)", r, cmd.calls(), qry.calls())
	}
	r := send(t, url+"/", map[string]any{"query": aQuery, "operationName": "One", "variables": map[string]any{"id": "p1"}}, hdr)
	if !strings.Contains(string(r.Data), `"name":"n"`) || qry.calls() != 1 {
		t.Fatalf("query: %+v", r)
	}
	if f, _ := r.Extensions["freshness"].(map[string]any); f["appliedPosition"] != float64(7) {
		t.Errorf("the upstream's extensions are lost: %+v", r.Extensions)
	}
	h, body := qry.last()
	if body.Query != aQuery || body.OperationName != "One" || body.Variables["id"] != "p1" {
		t.Errorf("upstream got %+v", body)
	}
	if h.Get("Authorization") != "Bearer abc" || h.Get("X-Request-Id") != "req-42" || h.Get("Tracestate") != "vendor=opaque" {
		t.Errorf("upstream headers: %v", h)
	}
	tp := strings.Split(h.Get("Traceparent"), "-")
	if len(tp) != 4 || tp[1] != "4bf92f3577b34da6a3ce929d0e0e4736" || tp[2] == "00f067aa0ba902b7" || tp[3] != "01" {
		t.Errorf("traceparent %q does not continue the caller's trace with a span of the gateway's", h.Get("Traceparent"))
	}
	send(t, url+"/", map[string]any{"query": aQuery, "variables": map[string]any{"id": "p1"}}, nil)
	if h, _ := qry.last(); len(h.Get("Traceparent")) != 55 || h.Get("X-Request-Id") == "" {
		t.Errorf("without a caller's trace or id the gateway starts its own: %v", h)
	}
}

func TestRefusesMixedDocuments(t *testing.T) {
	cmd := newRecorder(t, `{"data":{}}`)
	qry := newRecorder(t, `{"data":{}}`)
	url := testGateway(t, cmd.URL, qry.URL, nil)
	r := send(t, url, map[string]any{"query": aMutation[:len("mutation")] + " M" + aMutation[len("mutation"):] + " " + aQuery, "operationName": "One", "variables": map[string]any{"id": "1"}}, nil)
	if r.code() != "GRAPHQL_VALIDATION_FAILED" || !strings.Contains(r.Errors[0].Message, "mixes mutations") || cmd.calls()+qry.calls() != 0 {
		t.Fatalf("mixed document: %+v (upstream calls %d)", r, cmd.calls()+qry.calls())
	}
}

func TestIntrospectionAnswersTheUnion(t *testing.T) {
	cmd := newRecorder(t, `{"data":{}}`)
	qry := newRecorder(t, `{"data":{}}`)
	url := testGateway(t, cmd.URL, qry.URL, nil)
	r := send(t, url, map[string]any{"query": `{ __schema { queryType { name } mutationType { fields { name } } subscriptionType { fields { name } } }
		__type(name: "CreateProductInput") { name } }`}, nil)
	s := string(r.Data)
	for _, want := range []string{`"createProduct"`, `"productChanged"`, `"name":"CreateProductInput"`, `"queryType":{"name":"Query"}`} {
		if !strings.Contains(s, want) {
			t.Errorf("introspection lacks %s: %s %+v", want, s, r.Errors)
		}
	}
	if cmd.calls()+qry.calls() != 0 {
		t.Error("introspection went upstream")
	}
}

func hash(doc string) string {
	sum := sha256.Sum256([]byte(doc))
	return hex.EncodeToString(sum[:])
}

func TestAutomaticPersistedQueries(t *testing.T) {
	qry := newRecorder(t, `{"data":{"product":null}}`)
	url := testGateway(t, qry.URL, qry.URL, nil)
	pq := map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash(aQuery)}}
	vars := map[string]any{"id": "1"}
	if r := send(t, url, map[string]any{"extensions": pq, "variables": vars}, nil); len(r.Errors) == 0 || r.Errors[0].Message != "PersistedQueryNotFound" {
		t.Fatalf("unknown hash: %+v", r)
	}
	if r := send(t, url, map[string]any{"query": aQuery, "extensions": pq, "variables": vars}, nil); len(r.Errors) > 0 {
		t.Fatalf("hash and document: %+v", r)
	}
	if r := send(t, url, map[string]any{"extensions": pq, "variables": vars}, nil); len(r.Errors) > 0 {
		t.Fatalf("known hash: %+v", r)
	}
	if _, body := qry.last(); body.Query != aQuery {
		t.Errorf("upstream got %q, want the whole document", body.Query)
	}
}

func TestPersistedOnly(t *testing.T) {
	qry := newRecorder(t, `{"data":{"product":null}}`)
	manifest, _ := json.Marshal(map[string]any{"format": "apollo-persisted-query-manifest", "version": 1,
		"operations": []map[string]any{{"id": hash(aQuery), "body": aQuery, "name": "One", "type": "query"}}})
	allow, err := ParseAllowList(manifest)
	if err != nil {
		t.Fatal(err)
	}
	url := testGateway(t, qry.URL, qry.URL, allow)
	vars := map[string]any{"id": "1"}
	pq := func(doc string) map[string]any {
		return map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash(doc)}}
	}
	if r := send(t, url, map[string]any{"extensions": pq(aQuery), "variables": vars}, nil); len(r.Errors) > 0 {
		t.Fatalf("a listed hash: %+v", r)
	}
	if r := send(t, url, map[string]any{"query": aQuery, "variables": vars}, nil); len(r.Errors) > 0 {
		t.Fatalf("a listed document: %+v", r)
	}
	other := `{ products { totalCount } }`
	for name, body := range map[string]map[string]any{
		"another document":      {"query": other},
		"another hash":          {"extensions": pq(other)},
		"another document, APQ": {"query": other, "extensions": pq(other)},
	} {
		if r := send(t, url, body, nil); r.code() != CodeNotInList {
			t.Errorf("%s: %+v", name, r)
		}
	}
	if qry.calls() != 2 {
		t.Errorf("upstream calls %d, want 2", qry.calls())
	}
	if _, err := ParseAllowList([]byte(`{"0000": "{ products { totalCount } }"}`)); err == nil {
		t.Error("a list whose hash is not its document's loads")
	}
}

func TestUnavailableUpstream(t *testing.T) {
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close() // nothing listens there any more
	qry := newRecorder(t, `{"data":{"product":null}}`)
	url := testGateway(t, down.URL, qry.URL, nil)
	for i := range breakerTrips + 2 {
		if r := send(t, url, map[string]any{"query": aMutation}, nil); r.code() != CodeUnavailable {
			t.Fatalf("mutation %d with the command service down: %+v", i, r)
		}
	}
	if r := send(t, url, map[string]any{"query": aQuery, "variables": map[string]any{"id": "1"}}, nil); len(r.Errors) > 0 {
		t.Fatalf("query with the command service down: %+v", r)
	}
}

// An upstream that keeps failing opens its breaker: after breakerTrips
// failures in a row the gateway stops calling it and answers at once.
func TestBreakerStopsCallingAFailingUpstream(t *testing.T) {
	var calls atomic.Int64
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		calls.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	t.Cleanup(failing.Close)
	qry := newRecorder(t, `{"data":{"product":null}}`)
	url := testGateway(t, failing.URL, qry.URL, nil)
	for i := range breakerTrips + 3 {
		if r := send(t, url, map[string]any{"query": aMutation}, nil); r.code() != CodeUnavailable {
			t.Fatalf("mutation %d with the command service failing: %+v", i, r)
		}
	}
	if n := calls.Load(); n != breakerTrips {
		t.Fatalf("the failing command service was called %d times, want %d (then the breaker opens)", n, breakerTrips)
	}
}

// GraphQL over HTTP: a request that never runs has no data entry; under
// application/json it is 200, under application/graphql-response+json 400.
func TestRequestErrorsFollowGraphQLOverHTTP(t *testing.T) {
	qry := newRecorder(t, `{"data":{}}`)
	url := testGateway(t, qry.URL, qry.URL, nil)
	for _, c := range []struct {
		accept, query string
		status        int
	}{
		{"application/json", "{ product(", http.StatusOK},
		{"application/json", "{ nope }", http.StatusOK},
		{"application/graphql-response+json", "{ product(", http.StatusBadRequest},
		{"application/graphql-response+json", "{ nope }", http.StatusBadRequest},
	} {
		b, _ := json.Marshal(map[string]any{"query": c.query})
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", c.accept)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]json.RawMessage
		err = json.NewDecoder(res.Body).Decode(&body)
		res.Body.Close()
		if _, hasData := body["data"]; err != nil || res.StatusCode != c.status || hasData || body["errors"] == nil {
			t.Errorf("%s %q: %d %v (err %v), want %d, errors and no data", c.accept, c.query, res.StatusCode, body, err, c.status)
		}
	}
	if qry.calls() != 0 {
		t.Error("a failed request went upstream")
	}
}

// The services' document limits hold at the gateway, every time a document
// is sent (only documents within them are remembered as checked).
func TestDocumentLimits(t *testing.T) {
	qry := newRecorder(t, `{"data":{}}`)
	url := testGateway(t, qry.URL, qry.URL, nil)
	aliases := "{"
	for i := range graph.DefaultDocumentLimits.MaxAliases + 1 {
		aliases += " a" + strings.Repeat("x", i%3) + string(rune('a'+i%26)) + string(rune('a'+i/26)) + ": __typename"
	}
	aliases += " }"
	for range 2 {
		if r := send(t, url, map[string]any{"query": aliases}, nil); r.code() != "BAD_USER_INPUT" || r.Errors[0].Extensions["limit"] != "aliases" {
			t.Fatalf("%d aliases: %+v", graph.DefaultDocumentLimits.MaxAliases+1, r)
		}
	}
	if qry.calls() != 0 {
		t.Error("a document over the limits went upstream")
	}
}
