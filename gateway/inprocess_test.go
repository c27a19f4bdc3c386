package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/internal/testenv"
)

// An upstream served in process gets the request the network path would
// send (path, headers, body, a loopback RemoteAddr), and its answer,
// status and extensions included, reaches the caller; the other upstream
// still goes over HTTP.
func TestServeInProcess(t *testing.T) {
	qry := newRecorder(t, `{"data":{"product":null}}`)
	var seen *http.Request
	var body string
	inproc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		seen, body = r, string(b)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"data":{"renameProduct":{"id":"p1","version":2,"token":"t"}},"extensions":{"served":"in process"}}`)
	})
	g, err := New(Options{
		CommandURL: "http://127.0.0.1:1", QueryURL: qry.URL, Log: testenv.Logger(t), ComplexityLimit: 1000,
		QueryTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Serve("command", inproc); err != nil {
		t.Fatal(err)
	}
	if err := g.Serve("elsewhere", inproc); err == nil {
		t.Fatal("an unknown upstream was accepted")
	}
	srv := httptest.NewServer(graph.Middleware(1<<20, g))
	t.Cleanup(srv.Close)

	hdr := http.Header{"Authorization": {"Bearer abc"}, "X-Request-Id": {"req-7"}}
	r := send(t, srv.URL, map[string]any{"query": `mutation { renameProduct(input: {id: "p1", name: "Kettle"}) { id version token } }`}, hdr)
	if len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"version":2`) || r.Extensions["served"] != "in process" {
		t.Fatalf("through the in-process command service: %+v", r)
	}
	if seen == nil || seen.URL.Path != "/graphql" || seen.Method != http.MethodPost || seen.RemoteAddr != "127.0.0.1:0" ||
		seen.Header.Get("Authorization") != "Bearer abc" || seen.Header.Get("X-Request-Id") != "req-7" {
		t.Fatalf("the in-process service saw %+v", seen)
	}
	var sent request
	if err := json.Unmarshal([]byte(body), &sent); err != nil || !strings.Contains(sent.Query, "renameProduct") {
		t.Fatalf("body %q: %v", body, err)
	}
	if r := send(t, srv.URL, map[string]any{"query": `{ product(id: "p1") { id } }`}, nil); len(r.Errors) > 0 || qry.calls() != 1 {
		t.Fatalf("the query upstream, still over HTTP: %+v (%d calls)", r, qry.calls())
	}
}

// On the fast path a service in process is handed the request decoded
// (graph.WithDecodedRequest) in the caller's request context, with its
// request id; the full path hands it only the body.
func TestTheFastPathHandsAServiceInProcessTheDecodedRequest(t *testing.T) {
	type seen struct {
		decoded *graphql.RawParams
		id      string
	}
	got := make(chan seen, 4)
	inproc := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := graph.DecodedRequest(r.Context())
		got <- seen{p, graph.RequestID(r.Context())}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"data":{"product":{"id":"p1"}}}`)
	})
	g, err := New(Options{
		CommandURL: "http://127.0.0.1:1", QueryURL: "http://127.0.0.1:1", Log: testenv.Logger(t), ComplexityLimit: 1000,
		QueryTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Serve("query", inproc); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(graph.Middleware(1<<20, g))
	t.Cleanup(srv.Close)
	body := map[string]any{"query": aQuery, "operationName": "One", "variables": map[string]any{"id": "p1"}}
	hdr := http.Header{"X-Request-Id": {"req-9"}}
	for round, wantDecoded := range []bool{false, true} {
		if r := send(t, srv.URL, body, hdr); len(r.Errors) > 0 || !strings.Contains(string(r.Data), `"p1"`) {
			t.Fatalf("round %d: %+v", round, r)
		}
		s := <-got
		if s.id != "req-9" {
			t.Errorf("round %d: the service saw request id %q", round, s.id)
		}
		if (s.decoded != nil) != wantDecoded {
			t.Fatalf("round %d: decoded request %+v, want one: %v", round, s.decoded, wantDecoded)
		}
		if wantDecoded && (s.decoded.Query != aQuery || s.decoded.OperationName != "One" || s.decoded.Variables["id"] != "p1") {
			t.Fatalf("the decoded request: %+v", s.decoded)
		}
	}
}
