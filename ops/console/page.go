package console

import (
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"net/http"
	"strings"
)

// The page and its script and style, hand-written (no build step, no
// dependency): plain DOM code, text set with textContent only.
//
//go:embed assets
var assets embed.FS

// csp allows the page its own origin and nothing else: no inline script or
// style, no other host, no frames, no forms.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type asset struct {
	body        []byte
	contentType string
	etag        string
}

func load(name, contentType string) asset {
	body, err := assets.ReadFile("assets/" + name)
	if err != nil {
		panic("console: embedded asset " + name + ": " + err.Error())
	}
	sum := sha256.Sum256(body)
	return asset{body: body, contentType: contentType, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
}

// pageHandler serves / and /console/{console.js,console.css}.
func pageHandler() http.Handler {
	js, css := load("console.js", "text/javascript; charset=utf-8"), load("console.css", "text/css; charset=utf-8")
	page := load("index.html", "text/html; charset=utf-8")
	// The page names its assets with their hashes, so a new build is never
	// served an old script from a cache.
	html := strings.NewReplacer("{{js}}", strings.Trim(js.etag, `"`), "{{css}}", strings.Trim(css.etag, `"`)).Replace(string(page.body))
	sum := sha256.Sum256([]byte(html))
	page.body, page.etag = []byte(html), `"`+hex.EncodeToString(sum[:8])+`"`
	byPath := map[string]asset{"/": page, "/console/console.js": js, "/console/console.css": css}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a, ok := byPath[r.URL.Path]
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		if !ok {
			http.NotFound(w, r)
			return
		}
		h.Set("Content-Type", a.contentType)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", a.etag)
		if r.Header.Get("If-None-Match") == a.etag {
			w.WriteHeader(http.StatusNotModified)
			return
		}
		_, _ = w.Write(a.body)
	})
}
