package gateway

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/internal/testenv"
)

// rawUpstream answers with a status and body of the test's choosing and
// keeps the bodies it was sent byte for byte.
type rawUpstream struct {
	*httptest.Server
	mu     sync.Mutex
	status int
	answer string
	bodies []string
}

func newRawUpstream(t *testing.T, answer string) *rawUpstream {
	u := &rawUpstream{status: http.StatusOK, answer: answer}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.bodies = append(u.bodies, string(b))
		status, answer := u.status, u.answer
		u.mu.Unlock()
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *rawUpstream) sent() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.bodies...)
}

func (u *rawUpstream) answerWith(status int, answer string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.status, u.answer = status, answer
}

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
	qry := newRawUpstream(t, answer)
	cmd := newRawUpstream(t, `{"data":{"createProduct":{"id":"p1"}}}`)
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
	qry := newRawUpstream(t, `{"data":{"products":{"edges":[]}}}`)
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
// is answered as the full path answers it.
func TestTheFastPathAnswersFailuresAsTheFullPath(t *testing.T) {
	qry := newRawUpstream(t, `{"data":{"product":null}}`)
	url := fastGateway(t, qry.URL, qry.URL)
	body := `{"query":"{ product(id: \"p1\") { id } }"}`
	post(t, url, body, "") // known from now on

	qry.answerWith(http.StatusTooManyRequests, `{"errors":[{"message":"slow down","extensions":{"code":"RATE_LIMITED"}}]}`)
	if status, _, b := post(t, url, body, ""); status != 200 || !strings.Contains(b, `"RATE_LIMITED"`) || !strings.Contains(b, `"data":null`) {
		t.Fatalf("a 429 upstream: %d %s", status, b)
	}
	qry.answerWith(http.StatusOK, `<html>proxy error</html>`) // labelled JSON but not: the upstream failing
	if status, _, b := post(t, url, body, ""); status != 200 || !strings.Contains(b, CodeUnavailable) {
		t.Fatalf("a 200 that is not JSON: %d %s", status, b)
	}
	qry.Close()
	if status, _, b := post(t, url, body, ""); status != 200 || !strings.Contains(b, CodeUnavailable) {
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
