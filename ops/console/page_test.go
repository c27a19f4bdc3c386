package console

import (
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// Nothing on the page comes from another host: no URL with a scheme or a
// protocol-relative one in any asset, and the page names only its own.
func TestAssetsReferToNoOtherHost(t *testing.T) {
	foreign := regexp.MustCompile(`(?i)(https?:)?//[a-z0-9.-]+\.[a-z]{2,}|\burl\(|@import`)
	err := fs.WalkDir(assets, "assets", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, _ := assets.ReadFile(p)
		if m := foreign.Find(body); m != nil {
			t.Errorf("%s refers to %q", p, m)
		}
		if strings.HasSuffix(p, ".html") && (strings.Contains(string(body), "<script>") || strings.Contains(string(body), "style=")) {
			t.Errorf("%s has inline script or style, which the CSP refuses", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestPageAndAssets(t *testing.T) {
	h := pageHandler()
	get := func(path, etag string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec
	}
	page := get("/", "")
	if page.Code != http.StatusOK || page.Header().Get("Content-Security-Policy") != csp || !strings.HasPrefix(page.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("GET / = %d %v", page.Code, page.Header())
	}
	for _, m := range regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page.Body.String(), -1) {
		path, _, _ := strings.Cut(m[1], "?")
		a := get("/"+path, "")
		if a.Code != http.StatusOK || a.Header().Get("Content-Security-Policy") != csp || a.Body.Len() == 0 {
			t.Errorf("GET /%s = %d", path, a.Code)
		}
		if again := get("/"+path, a.Header().Get("ETag")); again.Code != http.StatusNotModified {
			t.Errorf("GET /%s with its ETag = %d, want 304", path, again.Code)
		}
	}
	if strings.Contains(page.Body.String(), "{{") {
		t.Error("the page has an unfilled placeholder")
	}
	if got := get("/console/other.js", ""); got.Code != http.StatusNotFound {
		t.Errorf("an unknown asset = %d, want 404", got.Code)
	}
}
