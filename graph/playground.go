package graph

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"path"
	"sort"
	"strings"
	"sync"
)

// The GraphiQL bundle, built from web/ by `make playground` (web/web.mk:
// `cd web && npm ci && node build.mjs`) and committed, so a Go-only build
// serves it. Nothing on the page comes from another host.
//
//go:embed playground
var playgroundFiles embed.FS

// PlaygroundTab is one editor tab the playground opens with (when the browser
// has no tabs of its own saved for this origin yet).
type PlaygroundTab struct {
	// Name, if set, is shown as a comment on the query's first line.
	Name string `json:"name,omitempty"`
	// Query is the GraphQL document of the tab.
	Query string `json:"query"`
	// Variables is the JSON of the tab's variables editor.
	Variables string `json:"variables,omitempty"`
}

// PlaygroundConfig configures Playground.
type PlaygroundConfig struct {
	// Title of the page and of GraphiQL's logo; "GraphiQL" if empty.
	Title string
	// Endpoint is the path of the GraphQL endpoint on the page's own origin;
	// "/graphql" if empty. It must be a path: the playground only talks to
	// the service that served it.
	Endpoint string
	// Subscriptions: run subscriptions over a WebSocket on Endpoint, with the
	// graphql-transport-ws protocol (the graphql-ws client), on ws: or wss:
	// as the page is http: or https:.
	Subscriptions bool
	// Tabs the playground opens with.
	Tabs []PlaygroundTab
	// Hint is one short line of plain text under the results, such as how
	// to send a token.
	Hint string
	// Headers, when set, prefill the headers editor (as JSON) of every tab
	// that has none of its own: a development token, say. Whoever loads the
	// page gets them, so they go only to browsers on this machine (a
	// loopback client address; behind a proxy on the same host that is
	// everyone) and only with Cache-Control: no-store. Set them only in a
	// development mode.
	Headers map[string]string
}

// playgroundDevHint is added to Hint on a page whose headers are prefilled.
const playgroundDevHint = " Development mode: the headers editor holds a token."

// playgroundCSP allows the page nothing but its own origin: scripts and
// styles from /playground/, GraphiQL's fonts and icons as data: URLs, and
// requests to this origin. 'unsafe-inline' for styles only: GraphiQL's
// dialogs and menus (Radix) insert <style> elements at run time. Without
// subscriptions connect-src is 'self' alone.
const (
	playgroundCSP = "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
		"img-src 'self' data:; font-src 'self' data:; connect-src 'self'%s; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	playgroundAssetPrefix = "/playground/"
)

// Playground serves GraphiQL, self-hosted: the page and its assets come from
// this binary (go:embed), and the page talks only to its own origin.
//
// One handler serves both; mount it on both patterns:
//
//	h := graph.Playground(graph.PlaygroundConfig{Title: "…", Endpoint: "/graphql", Tabs: graph.CommandTabs()})
//	mux.Handle("GET /{$}", h)         // the page
//	mux.Handle("GET /playground/", h) // its assets: graphiql.js, graphiql.css, graphiql.js.LEGAL.txt
//
// A request path under /playground/ gets an asset (404 if there is no such
// asset); any other path gets the page. The page embeds its configuration as
// JSON in a <script type="application/json"> element and refers to the
// assets as playground/<name>?v=<content hash>: a request with the current
// hash is cached for a year (immutable), any other gets "no-cache" and is
// revalidated by ETag. Assets are sent gzip-compressed to clients that accept
// it. Every response carries a Content-Security-Policy that allows only this
// origin (see playgroundCSP). Only GET and HEAD are answered.
//
// Playground panics if Endpoint is not a path on this origin.
func Playground(p PlaygroundConfig) http.Handler {
	if p.Title == "" {
		p.Title = "GraphiQL"
	}
	if p.Endpoint == "" {
		p.Endpoint = "/graphql"
	}
	if !strings.HasPrefix(p.Endpoint, "/") || strings.HasPrefix(p.Endpoint, "//") || strings.ContainsAny(p.Endpoint, "\\ \t\r\n") {
		panic(fmt.Sprintf("graph.Playground: endpoint %q is not a path on this origin", p.Endpoint))
	}
	assets := loadPlaygroundAssets()
	csp := fmt.Sprintf(playgroundCSP, "")
	if p.Subscriptions {
		csp = fmt.Sprintf(playgroundCSP, " ws: wss:")
	}
	page := playgroundPage(p, assets, false)
	var withHeaders *playgroundAsset
	if len(p.Headers) > 0 {
		withHeaders = playgroundPage(p, assets, true)
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		if name, ok := strings.CutPrefix(r.URL.Path, playgroundAssetPrefix); ok {
			a, found := assets.byName[name]
			if !found {
				http.NotFound(w, r)
				return
			}
			a.serve(w, r)
			return
		}
		if withHeaders != nil && loopbackClient(r) {
			withHeaders.serve(w, r)
			return
		}
		page.serve(w, r)
	})
}

// loopbackClient reports whether r came from this machine.
func loopbackClient(r *http.Request) bool {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// playgroundAsset is one file served by Playground, with its gzip variant.
type playgroundAsset struct {
	name        string
	contentType string
	body        []byte
	gz          []byte // nil when gzip does not make it smaller
	hash        string // hex, a prefix of the SHA-256 of body
	versioned   bool   // ?v=hash URLs are cached for a year
	private     bool   // holds a credential: never stored by any cache
}

type playgroundAssets struct {
	byName map[string]*playgroundAsset
	names  []string
}

var (
	playgroundOnce   sync.Once
	playgroundLoaded *playgroundAssets
)

func loadPlaygroundAssets() *playgroundAssets {
	playgroundOnce.Do(func() {
		pa := &playgroundAssets{byName: map[string]*playgroundAsset{}}
		err := fs.WalkDir(playgroundFiles, "playground", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			body, err := playgroundFiles.ReadFile(p)
			if err != nil {
				return err
			}
			name := strings.TrimPrefix(p, "playground/")
			a := newPlaygroundAsset(name, body)
			a.versioned = true
			pa.byName[name] = a
			pa.names = append(pa.names, name)
			return nil
		})
		if err != nil {
			panic("graph: reading the embedded playground: " + err.Error())
		}
		sort.Strings(pa.names)
		playgroundLoaded = pa
	})
	return playgroundLoaded
}

func newPlaygroundAsset(name string, body []byte) *playgroundAsset {
	sum := sha256.Sum256(body)
	a := &playgroundAsset{name: name, contentType: playgroundContentType(name), body: body, hash: hex.EncodeToString(sum[:8])}
	if len(body) >= 1024 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if buf.Len() < len(body) {
			a.gz = buf.Bytes()
		}
	}
	return a
}

func playgroundContentType(name string) string {
	switch strings.ToLower(path.Ext(name)) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".txt":
		return "text/plain; charset=utf-8"
	case ".json", ".map":
		return "application/json"
	case ".svg":
		return "image/svg+xml"
	case ".woff2":
		return "font/woff2"
	case ".woff":
		return "font/woff"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// url is the asset's address relative to the page, with its content hash.
func (a *playgroundAsset) url() string {
	return "playground/" + a.name + "?v=" + a.hash
}

func (a *playgroundAsset) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", a.contentType)
	switch {
	case a.private:
		h.Set("Cache-Control", "no-store")
	case a.versioned && r.URL.Query().Get("v") == a.hash:
		h.Set("Cache-Control", "public, max-age=31536000, immutable")
	default:
		h.Set("Cache-Control", "no-cache")
	}
	body, etag := a.body, `"`+a.hash+`"`
	if a.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r) {
			body, etag = a.gz, `"`+a.hash+`-gz"`
			h.Set("Content-Encoding", "gzip")
		}
	}
	h.Set("ETag", etag)
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		h.Del("Content-Type")
		h.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	h.Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

// acceptsGzip reports whether the request's Accept-Encoding allows gzip
// (listed without q=0).
func acceptsGzip(r *http.Request) bool {
	for _, v := range r.Header.Values("Accept-Encoding") {
		for _, part := range strings.Split(v, ",") {
			coding, params, _ := strings.Cut(strings.TrimSpace(part), ";")
			coding = strings.ToLower(strings.TrimSpace(coding))
			if coding != "gzip" && coding != "*" {
				continue
			}
			q := strings.ReplaceAll(strings.ToLower(params), " ", "")
			if q == "q=0" || q == "q=0.0" || q == "q=0.00" || q == "q=0.000" {
				return false
			}
			return true
		}
	}
	return false
}

func etagMatches(ifNoneMatch, etag string) bool {
	for _, t := range strings.Split(ifNoneMatch, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// playgroundPageConfig is the JSON the page's script reads (web/src/main.jsx).
type playgroundPageConfig struct {
	Title                string          `json:"title"`
	Endpoint             string          `json:"endpoint"`
	SubscriptionEndpoint string          `json:"subscriptionEndpoint"`
	Tabs                 []PlaygroundTab `json:"tabs"`
	Hint                 string          `json:"hint,omitempty"`
	// Headers is the headers editor's JSON text, or absent.
	Headers string `json:"headers,omitempty"`
}

// playgroundPage renders the HTML page once, with p.Headers or without; it
// is served as an unversioned asset (revalidated by ETag, or never stored
// when it holds headers).
func playgroundPage(p PlaygroundConfig, assets *playgroundAssets, withHeaders bool) *playgroundAsset {
	cfg := playgroundPageConfig{Title: p.Title, Endpoint: p.Endpoint, Tabs: p.Tabs, Hint: p.Hint}
	if cfg.Tabs == nil {
		cfg.Tabs = []PlaygroundTab{}
	}
	if withHeaders {
		headers, err := json.MarshalIndent(p.Headers, "", "  ")
		if err != nil {
			panic("graph: encoding the playground headers: " + err.Error())
		}
		cfg.Headers = string(headers)
		cfg.Hint = strings.TrimSpace(cfg.Hint + playgroundDevHint)
	}
	if p.Subscriptions {
		cfg.SubscriptionEndpoint = p.Endpoint
	}
	// encoding/json escapes <, > and & (and U+2028, U+2029) as \u00XX, so
	// nothing in the config can close the script element or open a comment.
	js, err := json.Marshal(cfg)
	if err != nil {
		panic("graph: encoding the playground config: " + err.Error())
	}
	var b strings.Builder
	b.WriteString("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	b.WriteString("<meta name=\"referrer\" content=\"no-referrer\">\n")
	fmt.Fprintf(&b, "<title>%s</title>\n", html.EscapeString(p.Title))
	b.WriteString("<link rel=\"icon\" href=\"data:,\">\n")
	for _, name := range assets.names {
		if strings.HasSuffix(name, ".css") {
			fmt.Fprintf(&b, "<link rel=\"stylesheet\" href=\"%s\">\n", html.EscapeString(assets.byName[name].url()))
		}
	}
	fmt.Fprintf(&b, "<script type=\"application/json\" id=\"playground-config\">%s</script>\n", js)
	for _, name := range assets.names {
		if strings.HasSuffix(name, ".js") {
			fmt.Fprintf(&b, "<script defer src=\"%s\"></script>\n", html.EscapeString(assets.byName[name].url()))
		}
	}
	b.WriteString("</head>\n<body>\n<div id=\"graphiql\"><noscript>GraphiQL needs JavaScript.</noscript></div>\n</body>\n</html>\n")
	page := newPlaygroundAsset("index.html", []byte(b.String()))
	page.private = withHeaders
	return page
}

// playgroundTabs holds the example documents: tabs/<service>/<file>.graphql
// and its variables beside it in .json.
//
//go:embed tabs
var playgroundTabs embed.FS

// CommandTabs are example mutations for the command service's playground:
// create a product, rename it (with expectedVersion), review it, order it.
func CommandTabs() []PlaygroundTab {
	return loadTabs("command", []string{"1-create-a-product", "Create a product"}, []string{"2-rename-a-product", "Rename a product"},
		[]string{"3-review-a-product", "Review a product"}, []string{"4-place-an-order", "Place an order"})
}

// QueryTabs are example queries and a subscription for the query service's
// playground: a search with filters, sort, pagination and facets, one product
// read with consistentWith, and a productChanged subscription. They follow
// graph/read/schema.graphqls; a test validates them against it.
func QueryTabs() []PlaygroundTab {
	return loadTabs("query", []string{"1-search-products", "Search products"},
		[]string{"2-one-product-read-your-writes", "One product, read-your-writes"}, []string{"3-watch-a-product", "Watch a product"})
}

// loadTabs reads each {file, name} tab of service from playgroundTabs. The
// files are compiled in, so only a misspelt file name (which the playground
// tests catch) leaves a tab empty.
func loadTabs(service string, tabs ...[]string) []PlaygroundTab {
	out := make([]PlaygroundTab, len(tabs))
	for i, t := range tabs {
		base := "tabs/" + service + "/" + t[0]
		q, _ := playgroundTabs.ReadFile(base + ".graphql")
		v, _ := playgroundTabs.ReadFile(base + ".json")
		out[i] = PlaygroundTab{Name: t[1], Query: string(q), Variables: string(v)}
	}
	return out
}
