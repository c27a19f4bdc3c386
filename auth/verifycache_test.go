package auth

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// testClock is a clock the test moves.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// A verified token is answered from the cache until its exp at the latest
// and never longer than verifiedTTL; past exp and the leeway it is refused
// as before, and a refused token is never cached.
func TestVerifiedTokenCache(t *testing.T) {
	ctx := context.Background()
	clock := &testClock{now: time.Now()}
	v, err := NewVerifier(ctx, Config{Secret: testSecret, Now: clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	exp := clock.Now().Add(25 * time.Second)
	tok := sign(t, jwt.SigningMethodHS256, "", testSecret, jwt.MapClaims{"sub": "alice", "exp": exp.Unix(), "roles": []string{"admin"}})
	first, err := v.Verify(ctx, tok)
	if err != nil || first.Subject != "alice" || !first.Admin {
		t.Fatalf("first verify: %+v, %v", first, err)
	}
	hit, ok := v.verified.Get(tok)
	if !ok || hit.caller != first || hit.until.After(clock.Now().Add(verifiedTTL)) {
		t.Fatalf("cache entry %+v (present %v), want the caller until at most now + %s", hit, ok, verifiedTTL)
	}
	if again, err := v.Verify(ctx, tok); err != nil || again != first {
		t.Fatalf("cached verify: %+v, %v", again, err)
	}
	// Past the TTL the entry is checked again (and cached again, now until exp).
	clock.add(verifiedTTL + time.Second)
	if again, err := v.Verify(ctx, tok); err != nil || again != first {
		t.Fatalf("verify after the TTL: %+v, %v", again, err)
	}
	if hit, ok := v.verified.Get(tok); !ok || hit.until.After(exp) {
		t.Fatalf("cache entry %+v (present %v), want it to end by exp %s", hit, ok, exp)
	}
	// Past exp and the leeway: refused, cache or not.
	clock.add(time.Until(exp) + Leeway + time.Second)
	if c, err := v.Verify(ctx, tok); err == nil || c.Invalid == nil {
		t.Fatalf("expired token accepted: %+v", c)
	}
	bad := tok[:len(tok)-2] + "xx"
	for range 2 {
		if c, err := v.Verify(ctx, bad); err == nil || c.Invalid == nil {
			t.Fatalf("bad signature accepted: %+v", c)
		}
	}
	if _, ok := v.verified.Get(bad); ok {
		t.Fatal("a refused token was cached")
	}
}
