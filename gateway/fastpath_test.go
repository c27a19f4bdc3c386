package gateway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/internal/testenv"
)

func fastGateway(t *testing.T, command, query string) string {
	t.Helper()
	g, err := New(Options{
		CommandURL: command, QueryURL: query, Log: testenv.Logger(t), ComplexityLimit: 50,
		QueryTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(graph.Middleware(1<<20, g))
	t.Cleanup(srv.Close)
	return srv.URL
}

// post sends body as it is and answers the status, content type and body.
func post(t *testing.T, url, body, accept string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("Content-Type"), string(b)
}

func sameJSON(t *testing.T, a, b string) bool {
	t.Helper()
	var x, y any
	if json.Unmarshal([]byte(a), &x) != nil || json.Unmarshal([]byte(b), &y) != nil {
		return false
	}
	xb, _ := json.Marshal(x)
	yb, _ := json.Marshal(y)
	return bytes.Equal(xb, yb)
}

// The second request of a document goes upstream as the caller sent it
// (the full path re-encodes it) and answers what the full path answered.
func TestKnownOperationsTakeTheFastPath(t *testing.T) {
	const answer = `{"data":{"product":{"id":"p1","name":"n"}},"extensions":{"freshness":{"appliedPosition":7}}}`
	qry := newRecorder(t, answer)
	cmd := newRecorder(t, `{"data":{"createProduct":{"id":"p1"}}}`)
	url := fastGateway(t, cmd.URL, qry.URL)
	body := `{"operationName":"One",  "variables":{"id":"p1"}, "query":"query One($id: ID!) { product(id: $id) { id name } }"}`

	for _, accept := range []string{"", "application/graphql-response+json"} {
		status, media, first := post(t, url, body, accept)
		status2, media2, second := post(t, url, body, accept)
		if status != 200 || status2 != 200 || media != media2 || !sameJSON(t, first, answer) || !sameJSON(t, second, answer) {
			t.Fatalf("accept %q: full path %d %s %s; fast path %d %s %s", accept, status, media, first, status2, media2, second)
		}
		if want := graph.ResponseMedia(&http.Request{Header: http.Header{"Accept": {accept}}}); media2 != want {
			t.Errorf("accept %q: fast path answers %s, the full path's media is %s", accept, media2, want)
		}
	}
	sent := qry.sent()
	if len(sent) != 4 || sent[0] == body || sent[1] != body || sent[3] != body {
		t.Fatalf("the upstream got %q: the first request re-encoded, the rest as sent", sent)
	}

	// A mutation is known the same way, and goes to the command service.
	mutation := `{"query":` + quote(aMutation) + `}`
	post(t, url, mutation, "")
	post(t, url, mutation, "")
	if got := cmd.sent(); len(got) != 2 || got[1] != mutation || len(qry.sent()) != 4 {
		t.Fatalf("mutations: command got %q, query %d", got, len(qry.sent()))
	}
}

func quote(s string) string { b, _ := json.Marshal(s); return string(b) }

// What changes between requests of a known document is checked on each:
// variables that do not coerce and a complexity over the limit get the
// full path's errors, and nothing goes upstream.
func TestTheFastPathChecksEachRequest(t *testing.T) {
	qry := newRecorder(t, `{"data":{"products":{"edges":[]}}}`)
	url := fastGateway(t, qry.URL, qry.URL)
	doc := quote(`query P($n: Int) { products(first: $n) { edges { node { id name category } } } }`)
	if status, _, b := post(t, url, `{"query":`+doc+`,"variables":{"n":2}}`, ""); status != 200 || !strings.Contains(b, `"edges":[]`) {
		t.Fatalf("a small page: %d %s", status, b)
	}
	if status, _, b := post(t, url, `{"query":`+doc+`,"variables":{"n":100}}`, ""); status != 200 || !strings.Contains(b, "complexity") || strings.Contains(b, "edges") {
		t.Fatalf("a page over the complexity limit: %d %s", status, b)
	}
	if status, _, b := post(t, url, `{"query":`+doc+`,"variables":{"n":"many"}}`, "application/graphql-response+json"); status != 400 || strings.Contains(b, `"data"`) {
		t.Fatalf("a variable that does not coerce: %d %s", status, b)
	}
	if status, _, b := post(t, url, `{"query":`+doc+`,"variables":{"n":3}}`, ""); status != 200 || !strings.Contains(b, `"edges":[]`) {
		t.Fatalf("a small page again: %d %s", status, b)
	}
	if n := len(qry.sent()); n != 2 {
		t.Fatalf("the upstream got %d requests, want the 2 that passed", n)
	}
}

// A known operation's upstream answering other than 200, or not at all,
// is answered as the full path answers it: the first request of each
// document below takes the full path (and makes the document known), the
// second the fast path, and the two answers must be the same.
func TestTheFastPathAnswersFailuresAsTheFullPath(t *testing.T) {
	qry := newRecorder(t, `{"data":{"product":null}}`)
	url := fastGateway(t, qry.URL, qry.URL)
	for i, c := range []struct {
		status    int
		answer    string
		wantInAll string
	}{
		{http.StatusTooManyRequests, `{"errors":[{"message":"slow down","extensions":{"code":"RATE_LIMITED"}}]}`, `"RATE_LIMITED"`},
		{http.StatusOK, `<html>proxy error</html>`, CodeUnavailable}, // labelled JSON but not: the upstream failing
		{http.StatusBadGateway, `{"errors":[{"message":"bad gateway"}]}`, CodeUnavailable},
	} {
		qry.answerWith(c.status, c.answer)
		body := `{"query":"{ product(id: \"p` + fmt.Sprint(i) + `\") { id } }"}` // a document of its own
		status, _, full := post(t, url, body, "")
		status2, _, fast := post(t, url, body, "")
		if status != 200 || status2 != 200 || !strings.Contains(full, c.wantInAll) || !sameJSON(t, full, fast) {
			t.Fatalf("upstream %d %s: full path %d %s, fast path %d %s", c.status, c.answer, status, full, status2, fast)
		}
	}
	if got := len(qry.sent()); got != 6 {
		t.Fatalf("the upstream got %d requests, want 6 (both paths went upstream each time)", got)
	}
	qry.Close()
	if status, _, b := post(t, url, `{"query":"{ product(id: \"p0\") { id } }"}`, ""); status != 200 || !strings.Contains(b, CodeUnavailable) {
		t.Fatalf("an upstream that is down: %d %s", status, b)
	}
}

// BenchmarkGatewayHop is the gateway's own cost for one known query, its
// upstream served in process by a handler that answers at once: the full
// path (a new document each time would be parsed; here the parse cache
// holds it) against the fast path.
func BenchmarkGatewayHop(b *testing.B) {
	const answer = `{"data":{"product":{"id":"p1","name":"n","priceCents":100,"stock":3,"averageRating":4.5,"reviewCount":2}}}`
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	})
	for _, fast := range []bool{false, true} {
		name := map[bool]string{false: "full", true: "fast"}[fast]
		b.Run(name, func(b *testing.B) {
			g, err := New(Options{
				CommandURL: "http://127.0.0.1:1", QueryURL: "http://127.0.0.1:1", Log: testenv.Logger(b), ComplexityLimit: 1000,
				QueryTimeout: 5 * time.Second, CommandTimeout: 5 * time.Second,
			})
			if err != nil {
				b.Fatal(err)
			}
			_ = g.Serve("query", up)
			h := graph.Middleware(1<<20, g)
			body := `{"query":"query($id: ID!) { product(id: $id) { id name priceCents stock averageRating reviewCount } }","variables":{"id":"p1"}}`
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if !fast {
					g.known = graph.SmallQueries(1, func(string, known) int { return 1 << 30 }) // remembers nothing
				}
				req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				w := httptest.NewRecorder()
				h.ServeHTTP(w, req)
				if w.Code != 200 || !strings.Contains(w.Body.String(), `"reviewCount":2`) {
					b.Fatalf("%d %s", w.Code, w.Body)
				}
			}
		})
	}
}
