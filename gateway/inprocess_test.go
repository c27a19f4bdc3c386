package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

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
