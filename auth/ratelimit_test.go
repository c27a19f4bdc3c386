package auth

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"
)

func TestLimitsPerCaller(t *testing.T) {
	l := NewLimits(5, 100)
	now := time.Now()
	for i := range 10 { // the burst: twice the rate
		if ok, _ := l.Allow("a", now); !ok {
			t.Fatalf("request %d of the burst refused", i)
		}
	}
	ok, wait := l.Allow("a", now)
	if ok || wait <= 0 || wait > time.Second {
		t.Fatalf("over the burst: %v, wait %v", ok, wait)
	}
	// Another caller is untouched by a's flood.
	if ok, _ := l.Allow("b", now); !ok {
		t.Fatal("b refused because of a")
	}
	// A refused request takes nothing: after the wait a may go again.
	if ok, _ := l.Allow("a", now.Add(wait)); !ok {
		t.Fatal("a refused after waiting")
	}
	if NewLimits(0, 10) != nil {
		t.Error("rate 0 is not off")
	}
}

func TestLimitsAreBounded(t *testing.T) {
	l := NewLimits(1, 50)
	now := time.Now()
	for i := range 10_000 {
		l.Allow(fmt.Sprintf("addr:%d", i), now)
	}
	if n := l.Tracked(); n != 50 {
		t.Errorf("tracking %d callers, want the bound 50", n)
	}
}

func TestLimitKey(t *testing.T) {
	for _, c := range []struct {
		caller Caller
		addr   string
		want   string
	}{
		{Caller{Subject: "alice"}, "10.0.0.1:5000", "sub:alice"},
		{Caller{}, "10.0.0.1:5000", "addr:10.0.0.1"},
		{Caller{}, "[::ffff:10.0.0.1]:5000", "addr:10.0.0.1"},
		{Caller{}, "[2001:db8:1:2:3:4:5:6]:443", "net:2001:db8:1:2::/64"},
		{Caller{Subject: "alice", Invalid: ErrBadReadToken}, "10.0.0.1:1", "addr:10.0.0.1"},
	} {
		if got := limitKey(c.caller, c.addr); got != c.want {
			t.Errorf("%+v %s: %s, want %s", c.caller, c.addr, got, c.want)
		}
	}
}

func TestMiddleware(t *testing.T) {
	v, _ := NewVerifier(t.Context(), Config{Secret: testSecret})
	var seen Caller
	h := v.Middleware(NewLimits(1, 100), http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = CallerFrom(r.Context())
	}))
	do := func(header string, mod func(*http.Request)) *httptest.ResponseRecorder {
		r := httptest.NewRequest("POST", "/graphql", nil)
		r.RemoteAddr = "192.0.2.1:1234"
		if header != "" {
			r.Header.Set("Authorization", header)
		}
		if mod != nil {
			mod(r)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w
	}
	code := func(w *httptest.ResponseRecorder) string {
		var body struct {
			Errors []struct{ Extensions map[string]any }
		}
		_ = json.Unmarshal(w.Body.Bytes(), &body)
		if len(body.Errors) == 0 {
			return ""
		}
		s, _ := body.Errors[0].Extensions["code"].(string)
		return s
	}
	if w := do("Bearer nonsense", nil); w.Code != http.StatusUnauthorized || code(w) != "UNAUTHENTICATED" {
		t.Errorf("bad token: %d %s", w.Code, w.Body)
	}
	// A WebSocket upgrade goes on with the invalid caller: init closes it with 4403.
	seen = Caller{}
	do("Bearer nonsense", func(r *http.Request) { r.Header.Set("Upgrade", "websocket") })
	if seen.Invalid == nil {
		t.Errorf("upgrade with a bad token: caller %+v", seen)
	}
	// Anonymous, by address: a burst of 2, then 429 with Retry-After.
	var last *httptest.ResponseRecorder
	for range 3 {
		last = do("", nil)
	}
	if last.Code != http.StatusTooManyRequests || code(last) != "RATE_LIMITED" {
		t.Fatalf("flood: %d %s", last.Code, last.Body)
	}
	if s, err := strconv.Atoi(last.Header().Get("Retry-After")); err != nil || s < 1 {
		t.Errorf("Retry-After %q", last.Header().Get("Retry-After"))
	}
	// A customer from the same address has a bucket of its own.
	tok, _ := Mint(testSecret, "alice", nil, time.Hour, time.Now())
	if w := do("Bearer "+tok, nil); w.Code != http.StatusOK || seen.Subject != "alice" {
		t.Errorf("customer after the anonymous flood: %d %+v", w.Code, seen)
	}
	// Admins are not limited.
	admin, _ := Mint(testSecret, "root", []string{"admin"}, time.Hour, time.Now())
	for i := range 20 {
		if w := do("Bearer "+admin, nil); w.Code != http.StatusOK {
			t.Fatalf("admin request %d: %d", i, w.Code)
		}
	}
}

// An SSE stream ends when its token expires; other requests run to the end.
func TestMiddlewareEndsSSEAtExpiry(t *testing.T) {
	v, _ := NewVerifier(t.Context(), Config{Secret: testSecret})
	var deadline time.Time
	var has bool
	h := v.Middleware(nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		deadline, has = r.Context().Deadline()
	}))
	now := time.Now()
	tok, _ := Mint(testSecret, "alice", nil, time.Minute, now)
	for accept, want := range map[string]bool{"text/event-stream": true, "application/json": false} {
		r := httptest.NewRequest("POST", "/graphql", nil)
		r.Header.Set("Authorization", "Bearer "+tok)
		r.Header.Set("Accept", accept)
		h.ServeHTTP(httptest.NewRecorder(), r)
		if has != want || want && deadline.Unix() != now.Add(time.Minute).Unix() {
			t.Errorf("%s: deadline %v (%v), want one at exp: %v", accept, deadline, has, want)
		}
	}
}
