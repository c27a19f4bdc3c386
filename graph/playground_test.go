package graph_test

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/splitstream/splitstream/graph"
)

// servePlayground mounts Playground the way the services do.
func servePlayground(t *testing.T, p graph.PlaygroundConfig) *httptest.Server {
	t.Helper()
	h := graph.Playground(p)
	mux := http.NewServeMux()
	mux.Handle("GET /{$}", h)
	mux.Handle("GET /playground/", h)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func get(t *testing.T, method, u string, header map[string]string) response {
	t.Helper()
	req, err := http.NewRequest(method, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	// A transport of our own, so Go does not ask for gzip and decode it
	// behind our back.
	tr := &http.Transport{DisableCompression: true}
	defer tr.CloseIdleConnections()
	res, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: body}
}

var (
	assetRef   = regexp.MustCompile(`(?:src|href)="([^"]*)"`)
	configJSON = regexp.MustCompile(`(?s)<script type="application/json" id="playground-config">(.*?)</script>`)
)

// pageAssets returns the asset references (src and href values) of page.
func pageAssets(t *testing.T, page string) []string {
	t.Helper()
	var refs []string
	for _, m := range assetRef.FindAllStringSubmatch(page, -1) {
		refs = append(refs, m[1])
	}
	return refs
}

func TestPlaygroundPage(t *testing.T) {
	srv := servePlayground(t, graph.PlaygroundConfig{Title: "Splitstream commands", Endpoint: "/graphql", Tabs: graph.CommandTabs()})
	res := get(t, http.MethodGet, srv.URL+"/", nil)
	if res.status != http.StatusOK {
		t.Fatalf("GET / = %d", res.status)
	}
	if ct := res.header.Get("Content-Type"); ct != "text/html; charset=utf-8" {
		t.Errorf("Content-Type = %q", ct)
	}
	page := string(res.body)

	checkPageCSP(t, res.header.Get("Content-Security-Policy"))
	if !strings.Contains(page, "<title>Splitstream commands</title>") {
		t.Error("page has no title")
	}

	checkPageAssets(t, page)
	checkPageConfig(t, page)

	// The page is revalidated, not cached for long.
	if cc := res.header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("page Cache-Control = %q", cc)
	}
	etag := res.header.Get("ETag")
	if etag == "" {
		t.Fatal("page has no ETag")
	}
	if r := get(t, http.MethodGet, srv.URL+"/", map[string]string{"If-None-Match": etag}); r.status != http.StatusNotModified {
		t.Errorf("page with If-None-Match = %d, want 304", r.status)
	}
}

// checkPageCSP wants the page's CSP to allow this origin and nothing else.
func checkPageCSP(t *testing.T, csp string) {
	t.Helper()
	for _, want := range []string{"default-src 'none'", "script-src 'self';", "connect-src 'self';", "frame-ancestors 'none'", "base-uri 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-eval") || strings.Contains(csp, "ws:") || strings.Contains(csp, "http") {
		t.Errorf("CSP too loose: %q", csp)
	}
}

// checkPageAssets wants only same-origin, relative references: no scheme, no
// //host; one script and one style sheet, versioned by hash.
func checkPageAssets(t *testing.T, page string) {
	t.Helper()
	for _, bad := range []string{"http://", "https://", "\"//", "'//", "=//"} {
		if strings.Contains(page, bad) {
			t.Errorf("page contains %q", bad)
		}
	}
	refs := pageAssets(t, page)
	var js, css int
	for _, ref := range refs {
		if ref == "data:," { // the empty favicon
			continue
		}
		u, err := url.Parse(ref)
		if err != nil || u.Scheme != "" || u.Host != "" || strings.HasPrefix(ref, "/") {
			t.Errorf("asset %q is not a relative URL", ref)
			continue
		}
		if !strings.HasPrefix(u.Path, "playground/") || u.Query().Get("v") == "" {
			t.Errorf("asset %q is not playground/<name>?v=<hash>", ref)
		}
		switch {
		case strings.HasSuffix(u.Path, ".js"):
			js++
		case strings.HasSuffix(u.Path, ".css"):
			css++
		}
	}
	if js != 1 || css != 1 {
		t.Errorf("page refers to %d scripts and %d style sheets, want 1 and 1: %v", js, css, refs)
	}
	if n := strings.Count(page, "<script"); n != 2 {
		t.Errorf("page has %d script elements, want 2 (config and bundle)", n)
	}
}

// checkPageConfig wants the page's config to say what the server was given.
func checkPageConfig(t *testing.T, page string) {
	t.Helper()
	m := configJSON.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("page has no config")
	}
	var cfg struct {
		Title                string
		Endpoint             string
		SubscriptionEndpoint string
		Tabs                 []graph.PlaygroundTab
	}
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
		t.Fatalf("config: %v", err)
	}
	if cfg.Title != "Splitstream commands" || cfg.Endpoint != "/graphql" || cfg.SubscriptionEndpoint != "" || len(cfg.Tabs) != len(graph.CommandTabs()) {
		t.Errorf("config = %+v", cfg)
	}
}

func TestPlaygroundSubscriptions(t *testing.T) {
	srv := servePlayground(t, graph.PlaygroundConfig{Title: "Splitstream queries", Subscriptions: true, Tabs: graph.QueryTabs()})
	res := get(t, http.MethodGet, srv.URL+"/", nil)
	if csp := res.header.Get("Content-Security-Policy"); !strings.Contains(csp, "connect-src 'self' ws: wss:;") {
		t.Errorf("CSP %q does not allow the WebSocket", csp)
	}
	m := configJSON.FindStringSubmatch(string(res.body))
	if m == nil {
		t.Fatal("page has no config")
	}
	var cfg map[string]any
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["endpoint"] != "/graphql" || cfg["subscriptionEndpoint"] != "/graphql" {
		t.Errorf("config = %v", cfg)
	}
}

func TestPlaygroundAssets(t *testing.T) {
	srv := servePlayground(t, graph.PlaygroundConfig{Title: "t"})
	page := get(t, http.MethodGet, srv.URL+"/", nil)
	wantType := map[string]string{".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
	for _, ref := range pageAssets(t, string(page.body)) {
		if ref == "data:," {
			continue
		}
		u, _ := url.Parse(ref)
		ext := u.Path[strings.LastIndex(u.Path, "."):]
		t.Run(u.Path, func(t *testing.T) { checkAsset(t, srv.URL, ref, wantType[ext]) })
	}

	for _, p := range []string{"/playground/", "/playground/nope.js", "/playground/graphiql.js/x", "/playground/../playground.go", "/playground/%2e%2e/playground.go", "/playground/GRAPHIQL.JS"} {
		if r := get(t, http.MethodGet, srv.URL+p, nil); r.status != http.StatusNotFound {
			t.Errorf("GET %s = %d, want 404", p, r.status)
		}
	}

	// Called directly, the handler answers only GET and HEAD.
	rec := httptest.NewRecorder()
	graph.Playground(graph.PlaygroundConfig{}).ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/", nil))
	if rec.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST = %d, want 405", rec.Code)
	}
}

// checkAsset wants the asset at ref served with its type, cached for a year
// under its hash, revalidated without it, and gzipped on request.
func checkAsset(t *testing.T, base, ref, wantType string) {
	u, _ := url.Parse(ref)
	full := base + "/" + ref
	res := get(t, http.MethodGet, full, nil)
	if res.status != http.StatusOK {
		t.Fatalf("GET %s = %d", ref, res.status)
	}
	if ct := res.header.Get("Content-Type"); ct != wantType {
		t.Errorf("Content-Type = %q, want %q", ct, wantType)
	}
	if cc := res.header.Get("Cache-Control"); !strings.Contains(cc, "max-age=31536000") || !strings.Contains(cc, "immutable") {
		t.Errorf("Cache-Control = %q", cc)
	}
	if res.header.Get("X-Content-Type-Options") != "nosniff" {
		t.Error("no nosniff")
	}
	if len(res.body) < 1000 {
		t.Errorf("%s is only %d bytes", ref, len(res.body))
	}
	etag := res.header.Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if r := get(t, http.MethodGet, full, map[string]string{"If-None-Match": etag}); r.status != http.StatusNotModified || len(r.body) != 0 {
		t.Errorf("If-None-Match = %d with %d bytes, want 304 and none", r.status, len(r.body))
	}

	// Without the current hash: served, but revalidated.
	stale := get(t, http.MethodGet, base+"/"+u.Path+"?v=old", nil)
	if stale.status != http.StatusOK || stale.header.Get("Cache-Control") != "no-cache" {
		t.Errorf("stale hash: %d, Cache-Control %q", stale.status, stale.header.Get("Cache-Control"))
	}

	checkAssetGzip(t, full, etag, res.body)

	head := get(t, http.MethodHead, full, nil)
	if head.status != http.StatusOK || len(head.body) != 0 || head.header.Get("Content-Length") != res.header.Get("Content-Length") {
		t.Errorf("HEAD = %d, %d bytes, length %q", head.status, len(head.body), head.header.Get("Content-Length"))
	}
}

// checkAssetGzip wants the asset gzipped for clients that take it, the same
// bytes once decoded, under an ETag of its own.
func checkAssetGzip(t *testing.T, full, etag string, body []byte) {
	gz := get(t, http.MethodGet, full, map[string]string{"Accept-Encoding": "br, gzip"})
	if gz.header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding = %q", gz.header.Get("Content-Encoding"))
	}
	if gz.header.Get("ETag") == etag {
		t.Error("gzip variant has the identity ETag")
	}
	zr, err := gzip.NewReader(bytes.NewReader(gz.body))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(plain, body) {
		t.Errorf("gzip body differs (err %v)", err)
	}
	if r := get(t, http.MethodGet, full, map[string]string{"Accept-Encoding": "gzip;q=0"}); r.header.Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 got gzip")
	}
}

// The bundles load nothing from another host. GraphiQL and its libraries
// carry a few URLs in strings (XML namespaces, links in error messages and
// docs); those are listed here, and any other host fails the test so a new
// version gets looked at.
func TestPlaygroundBundlesStayOnThisOrigin(t *testing.T) {
	entries, err := os.ReadDir("playground")
	if err != nil {
		t.Fatal(err)
	}
	cdn := regexp.MustCompile(`(?i)fonts\.googleapis\.com|fonts\.gstatic\.com|unpkg\.com|jsdelivr\.net|esm\.sh|cdnjs\.|skypack\.dev|jspm\.io|cdn\.`)
	urls := regexp.MustCompile(`(?i)\b(?:https?|wss?):\/\/([a-z0-9.-]*)`)
	harmless := map[string]bool{
		"www.w3.org":       true, // SVG, XLink, XML and MathML namespaces
		"react.dev":        true, // React's error message links
		"github.com":       true, // GraphiQL's logo link
		"yarnpkg.com":      true, // a hint in an error message
		"en.wikipedia.org": true, // a comment-like string in a number parser
		"commonmark.org":   true, // markdown-it's docs string
		"codemirror.net":   true, // CodeMirror's error message link
		"":                 true, // bare "http://" prefixes (link detection in markdown)
	}
	var js, css int
	for _, e := range entries {
		name := e.Name()
		body, err := os.ReadFile("playground/" + name)
		if err != nil {
			t.Fatal(err)
		}
		text := string(body)
		if m := cdn.FindString(text); m != "" {
			t.Errorf("%s refers to %q", name, m)
		}
		for _, m := range urls.FindAllStringSubmatch(text, -1) {
			if !harmless[strings.ToLower(m[1])] {
				t.Errorf("%s refers to another host: %q", name, m[0])
			}
		}
		switch {
		case strings.HasSuffix(name, ".css"):
			css++
			// Every url(...) in a style sheet is a data: URL.
			for _, m := range regexp.MustCompile(`url\(\s*['"]?([^'")\s]{0,16})`).FindAllStringSubmatch(text, -1) {
				if !strings.HasPrefix(m[1], "data:") {
					t.Errorf("%s has url(%s…)", name, m[1])
				}
			}
			if strings.Contains(text, "@import") {
				t.Errorf("%s has an @import", name)
			}
		case strings.HasSuffix(name, ".js"):
			js++
		}
	}
	if js != 1 || css != 1 {
		t.Errorf("playground/ holds %d scripts and %d style sheets, want 1 and 1", js, css)
	}
}

// Nothing in the configuration can end the config's script element, open a
// comment, or reach the title's markup.
func TestPlaygroundConfigCannotBreakOut(t *testing.T) {
	evil := `</script><script>alert(1)</script><!-- </SCRIPT > ` + "\u2028"
	p := graph.PlaygroundConfig{
		Title: evil,
		Tabs:  []graph.PlaygroundTab{{Name: evil, Query: "{ a } # " + evil, Variables: `{"x": "` + strings.ReplaceAll(evil, `"`, `\"`) + `"}`}},
	}
	rec := httptest.NewRecorder()
	graph.Playground(p).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/", nil))
	page := rec.Body.String()

	if n := strings.Count(strings.ToLower(page), "<script"); n != 2 {
		t.Errorf("page has %d <script, want 2:\n%s", n, page)
	}
	if n := strings.Count(strings.ToLower(page), "</script"); n != 2 {
		t.Errorf("page has %d </script, want 2:\n%s", n, page)
	}
	if strings.Contains(page, "<!--") {
		t.Error("page contains <!--")
	}
	if strings.Contains(page, "alert(1)</script>") {
		t.Error("the payload reached the markup")
	}
	m := configJSON.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("page has no config")
	}
	var cfg struct {
		Title string
		Tabs  []graph.PlaygroundTab
	}
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Title != evil || len(cfg.Tabs) != 1 || cfg.Tabs[0].Name != evil || cfg.Tabs[0].Query != p.Tabs[0].Query {
		t.Errorf("config did not round-trip: %+v", cfg)
	}
}

func TestPlaygroundRejectsOtherOrigins(t *testing.T) {
	for _, e := range []string{"https://example.com/graphql", "//example.com/graphql", "graphql", "javascript:alert(1)"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Playground accepted endpoint %q", e)
				}
			}()
			graph.Playground(graph.PlaygroundConfig{Endpoint: e})
		}()
	}
}

// The example tabs are valid operations of their schemas, with variables
// their operations accept.
func TestPlaygroundTabsMatchSchemas(t *testing.T) {
	for _, c := range []struct {
		schema string
		tabs   []graph.PlaygroundTab
		kinds  []ast.Operation
	}{
		{"write/schema.graphqls", graph.CommandTabs(), []ast.Operation{ast.Mutation}},
		{"read/schema.graphqls", graph.QueryTabs(), []ast.Operation{ast.Query, ast.Subscription}},
	} {
		src, err := os.ReadFile(c.schema)
		if err != nil {
			t.Fatal(err)
		}
		schema, gerr := gqlparser.LoadSchema(&ast.Source{Name: c.schema, Input: string(src)})
		if gerr != nil {
			t.Fatalf("%s: %v", c.schema, gerr)
		}
		seen := map[ast.Operation]bool{}
		for _, tab := range c.tabs {
			doc, errs := gqlparser.LoadQueryWithRules(schema, tab.Query, nil)
			if len(errs) > 0 {
				t.Errorf("%s: tab %q: %v", c.schema, tab.Name, errs)
				continue
			}
			if len(doc.Operations) != 1 {
				t.Errorf("tab %q has %d operations", tab.Name, len(doc.Operations))
				continue
			}
			op := doc.Operations[0]
			seen[op.Operation] = true
			var vars map[string]any
			if err := json.Unmarshal([]byte(tab.Variables), &vars); err != nil {
				t.Errorf("tab %q variables: %v", tab.Name, err)
				continue
			}
			if _, err := validator.VariableValues(schema, op, vars); err != nil {
				t.Errorf("tab %q variables: %v", tab.Name, err)
			}
		}
		for _, k := range c.kinds {
			if !seen[k] {
				t.Errorf("%s tabs have no %s", c.schema, k)
			}
		}
	}
}

// Prefilled headers (development mode) reach browsers on this machine only,
// never get stored by a cache, and change nothing else: the CSP, the
// scripts and the hint stay as they are.
func TestPlaygroundHeadersOnlyOnLoopback(t *testing.T) {
	const token = "Bearer dev.token.value"
	hint := `Mutations need a token: put {"Authorization": "Bearer <token>"} under Headers.`
	base := graph.PlaygroundConfig{Title: "Splitstream commands", Tabs: graph.CommandTabs(), Hint: hint}
	dev := base
	dev.Headers = map[string]string{"Authorization": token}

	plainCSP := func() string {
		rec, _ := loadPlaygroundPage(t, graph.Playground(base), "127.0.0.1:5000")
		return rec.Header().Get("Content-Security-Policy")
	}()

	t.Run("loopback, headers set", func(t *testing.T) {
		for _, remote := range []string{"127.0.0.1:5000", "[::1]:5000"} {
			rec, cfg := loadPlaygroundPage(t, graph.Playground(dev), remote)
			if cfg.Headers == nil {
				t.Fatalf("from %s: no headers in the config", remote)
			}
			var headers map[string]string
			if err := json.Unmarshal([]byte(*cfg.Headers), &headers); err != nil || headers["Authorization"] != token || len(headers) != 1 {
				t.Errorf("from %s: headers editor gets %q (%v), want {\"Authorization\": %q}", remote, *cfg.Headers, err, token)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("from %s: a page with a token has Cache-Control %q, want no-store", remote, cc)
			}
			if csp := rec.Header().Get("Content-Security-Policy"); csp != plainCSP {
				t.Errorf("CSP changed with headers: %q, want %q", csp, plainCSP)
			}
			if !strings.HasPrefix(cfg.Hint, hint) || !strings.Contains(cfg.Hint, "Development mode") {
				t.Errorf("hint = %q", cfg.Hint)
			}
		}
	})
	t.Run("another machine, headers set", func(t *testing.T) {
		for _, remote := range []string{"192.0.2.10:5000", "[2001:db8::1]:5000", "garbage"} {
			rec, cfg := loadPlaygroundPage(t, graph.Playground(dev), remote)
			if cfg.Headers != nil || strings.Contains(rec.Body.String(), "dev.token.value") {
				t.Errorf("from %s: the page carries the token", remote)
			}
			if cfg.Hint != hint {
				t.Errorf("from %s: hint = %q, want %q", remote, cfg.Hint, hint)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-cache" {
				t.Errorf("from %s: Cache-Control %q", remote, cc)
			}
		}
	})
	t.Run("no headers set", func(t *testing.T) {
		_, cfg := loadPlaygroundPage(t, graph.Playground(base), "127.0.0.1:5000")
		if cfg.Headers != nil {
			t.Errorf("headers %q without any configured", *cfg.Headers)
		}
		if cfg.Hint != hint {
			t.Errorf("hint = %q, want %q", cfg.Hint, hint)
		}
	})
}

// playgroundPageConfig is the part of the page's config the headers test reads.
type playgroundPageConfig struct {
	Hint    string
	Headers *string
}

// loadPlaygroundPage gets the page from h as a client at remote would.
func loadPlaygroundPage(t *testing.T, h http.Handler, remote string) (*httptest.ResponseRecorder, playgroundPageConfig) {
	t.Helper()
	req := httptest.NewRequest(http.MethodGet, "/", nil)
	req.RemoteAddr = remote
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("GET / from %s = %d", remote, rec.Code)
	}
	page := rec.Body.String()
	if n := strings.Count(page, "<script"); n != 2 {
		t.Errorf("page has %d script elements, want 2", n)
	}
	m := configJSON.FindStringSubmatch(page)
	if m == nil {
		t.Fatal("page has no config")
	}
	var cfg playgroundPageConfig
	if err := json.Unmarshal([]byte(m[1]), &cfg); err != nil {
		t.Fatal(err)
	}
	return rec, cfg
}
