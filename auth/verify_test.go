package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// jwksServer serves a key set that the test may change.
type jwksServer struct {
	mu   sync.Mutex
	keys []map[string]string
	hits int
}

func (s *jwksServer) ServeHTTP(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hits++
	_ = json.NewEncoder(w).Encode(map[string]any{"keys": s.keys})
}

func (s *jwksServer) add(kid string, pub any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch k := pub.(type) {
	case *rsa.PublicKey:
		s.keys = append(s.keys, map[string]string{"kty": "RSA", "kid": kid, "alg": "RS256", "use": "sig",
			"n": b64(k.N.Bytes()), "e": b64(big.NewInt(int64(k.E)).Bytes())})
	case *ecdsa.PublicKey:
		raw, err := k.Bytes() // 0x04 || X || Y
		if err != nil {
			panic(err)
		}
		s.keys = append(s.keys, map[string]string{"kty": "EC", "kid": kid, "alg": "ES256", "use": "sig", "crv": "P-256",
			"x": b64(raw[1:33]), "y": b64(raw[33:65])})
	}
}

func sign(t testing.TB, m jwt.SigningMethod, kid string, key any, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claimsFor(sub string, ttl time.Duration) jwt.MapClaims {
	return jwt.MapClaims{"sub": sub, "exp": time.Now().Add(ttl).Unix()}
}

func TestVerifyHS256(t *testing.T) {
	ctx := context.Background()
	v, err := NewVerifier(ctx, Config{Secret: testSecret, Issuer: "https://id.example", Audience: "splitstream"})
	if err != nil {
		t.Fatal(err)
	}
	good := func(mod func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "iss": "https://id.example", "aud": "splitstream"}
		mod(c)
		return sign(t, jwt.SigningMethodHS256, "", testSecret, c)
	}
	c, err := v.Verify(ctx, good(func(c jwt.MapClaims) { c["roles"] = []string{"reader", "admin"} }))
	if err != nil || c.Subject != "alice" || !c.Admin || c.Expires.IsZero() {
		t.Fatalf("admin token: %+v, %v", c, err)
	}
	if c, err := v.Verify(ctx, good(func(jwt.MapClaims) {})); err != nil || c.Admin {
		t.Fatalf("customer token: %+v, %v", c, err)
	}
	// Within the 30 s of clock skew an expired token still passes.
	if _, err := v.Verify(ctx, good(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() })); err != nil {
		t.Errorf("token 10 s past exp: %v", err)
	}
	hs384 := sign(t, jwt.SigningMethodHS384, "", testSecret, jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(),
		"iss": "https://id.example", "aud": "splitstream"})
	for name, tok := range map[string]string{
		"expired":       good(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }),
		"no exp":        good(func(c jwt.MapClaims) { delete(c, "exp") }),
		"not yet valid": good(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Minute).Unix() }),
		"other issuer":  good(func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }),
		"other aud":     good(func(c jwt.MapClaims) { c["aud"] = "another-app" }),
		"no sub":        good(func(c jwt.MapClaims) { delete(c, "sub") }),
		"saga":          good(func(c jwt.MapClaims) { c["sub"] = "saga" }),
		"system":        good(func(c jwt.MapClaims) { c["sub"] = "system:relay" }),
		"roles string":  good(func(c jwt.MapClaims) { c["roles"] = "admin" }),
		"HS384":         hs384,
		"garbage":       "not.a.jwt",
		"too long":      strings.Repeat("a", MaxTokenBytes+1),
		"alg none": sign(t, jwt.SigningMethodNone, "", jwt.UnsafeAllowNoneSignatureType,
			jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "iss": "https://id.example", "aud": "splitstream"}),
	} {
		if c, err := v.Verify(ctx, tok); err == nil || c.Invalid == nil {
			t.Errorf("%s: accepted (%+v)", name, c)
		}
	}
}

func TestVerifyJWKS(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	keys := &jwksServer{}
	keys.add("rsa-1", &rsaKey.PublicKey)
	keys.add("ec-1", &ecKey.PublicKey)
	srv := httptest.NewServer(keys)
	defer srv.Close()
	v, err := NewVerifier(ctx, Config{JWKSURL: srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	if c, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, "rsa-1", rsaKey, claimsFor("alice", time.Hour))); err != nil || c.Subject != "alice" {
		t.Fatalf("RS256: %+v %v", c, err)
	}
	if c, err := v.Verify(ctx, sign(t, jwt.SigningMethodES256, "ec-1", ecKey, claimsFor("bob", time.Hour))); err != nil || c.Subject != "bob" {
		t.Fatalf("ES256: %+v %v", c, err)
	}
	// A key the set gets later (rotation): the unknown kid refreshes it.
	rotated, _ := rsa.GenerateKey(rand.Reader, 2048)
	keys.add("rsa-2", &rotated.PublicKey)
	if _, err := v.Verify(ctx, sign(t, jwt.SigningMethodRS256, "rsa-2", rotated, claimsFor("carol", time.Hour))); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	// HS/RS confusion: an HS256 token "signed" with the public key's bytes.
	pubDER, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	stranger, _ := rsa.GenerateKey(rand.Reader, 2048)
	for name, tok := range map[string]string{
		"HS256 with the public key": sign(t, jwt.SigningMethodHS256, "rsa-1", pubPEM, claimsFor("alice", time.Hour)),
		"unknown signer":            sign(t, jwt.SigningMethodRS256, "rsa-1", stranger, claimsFor("alice", time.Hour)),
		"unknown kid":               sign(t, jwt.SigningMethodRS256, "nobody", stranger, claimsFor("alice", time.Hour)),
		"RS256 with the EC kid":     sign(t, jwt.SigningMethodRS256, "ec-1", rsaKey, claimsFor("alice", time.Hour)),
		"expired":                   sign(t, jwt.SigningMethodES256, "ec-1", ecKey, claimsFor("alice", -time.Hour)),
		"alg none": sign(t, jwt.SigningMethodNone, "rsa-1", jwt.UnsafeAllowNoneSignatureType,
			claimsFor("alice", time.Hour)),
	} {
		if c, err := v.Verify(ctx, tok); err == nil {
			t.Errorf("%s: accepted (%+v)", name, c)
		}
	}
}

func TestNewVerifierRefusesNoKeys(t *testing.T) {
	if _, err := NewVerifier(context.Background(), Config{}); err == nil || !strings.Contains(err.Error(), "SPLITSTREAM_AUTH=off") {
		t.Errorf("no secret, no JWKS: %v", err)
	}
	if _, err := NewVerifier(context.Background(), Config{Secret: []byte("short")}); err == nil {
		t.Error("a short secret was accepted")
	}
	v, err := NewVerifier(context.Background(), Config{Off: true})
	if err != nil {
		t.Fatal(err)
	}
	if c := v.Authorization(context.Background(), "Bearer garbage"); !c.Admin || c.Invalid != nil {
		t.Errorf("auth off: %+v", c)
	}
}

func TestAuthorizationHeader(t *testing.T) {
	ctx := context.Background()
	v, _ := NewVerifier(ctx, Config{Secret: testSecret})
	tok, _ := Mint(testSecret, "alice", nil, time.Hour, time.Now())
	for header, want := range map[string]string{
		"":                    "anonymous",
		"Bearer " + tok:       "alice",
		"bearer " + tok:       "alice",
		"Basic " + tok:        "invalid",
		"Bearer":              "invalid",
		tok:                   "invalid",
		"Bearer " + tok + "x": "invalid",
	} {
		c := v.Authorization(ctx, header)
		got := c.Subject
		switch {
		case c.Invalid != nil:
			got = "invalid"
		case c.Anonymous():
			got = "anonymous"
		}
		if got != want {
			t.Errorf("%.20q: %s, want %s", header, got, want)
		}
	}
}

func TestConnectionInit(t *testing.T) {
	ctx := context.Background()
	v, _ := NewVerifier(ctx, Config{Secret: testSecret})
	tok, _ := Mint(testSecret, "alice", nil, time.Hour, time.Now())
	got, exp, err := v.ConnectionInit(ctx, map[string]any{"Authorization": "Bearer " + tok})
	if err != nil || CallerFrom(got).Subject != "alice" || exp.IsZero() {
		t.Fatalf("payload token: %+v %v %v", CallerFrom(got), exp, err)
	}
	// The header's caller stands when the payload says nothing.
	withHeader := WithCaller(ctx, Caller{Subject: "bob"})
	if got, _, err := v.ConnectionInit(withHeader, map[string]any{}); err != nil || CallerFrom(got).Subject != "bob" {
		t.Fatalf("header caller: %+v %v", CallerFrom(got), err)
	}
	for name, c := range map[string]struct {
		ctx     context.Context
		payload map[string]any
	}{
		"bad payload token": {ctx, map[string]any{"AUTHORIZATION": "Bearer x.y.z"}},
		"not a string":      {ctx, map[string]any{"authorization": 42}},
		"bad header token":  {WithCaller(ctx, Caller{Invalid: ErrBadReadToken}), map[string]any{"authorization": "Bearer " + tok}},
	} {
		if _, _, err := v.ConnectionInit(c.ctx, c.payload); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// BenchmarkVerify is the cost verification adds to every request.
func BenchmarkVerify(b *testing.B) {
	ctx := context.Background()
	b.Run("HS256", func(b *testing.B) {
		v, _ := NewVerifier(ctx, Config{Secret: testSecret})
		tok, _ := Mint(testSecret, "alice", []string{"admin"}, time.Hour, time.Now())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := v.Verify(ctx, tok); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, alg := range []string{"RS256", "ES256"} {
		b.Run(alg, func(b *testing.B) {
			keys := &jwksServer{}
			var tok string
			if alg == "RS256" {
				k, _ := rsa.GenerateKey(rand.Reader, 2048)
				keys.add("k", &k.PublicKey)
				tok = sign(b, jwt.SigningMethodRS256, "k", k, claimsFor("alice", time.Hour))
			} else {
				k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
				keys.add("k", &k.PublicKey)
				tok = sign(b, jwt.SigningMethodES256, "k", k, claimsFor("alice", time.Hour))
			}
			srv := httptest.NewServer(keys)
			defer srv.Close()
			ctx, cancel := context.WithCancel(ctx)
			defer cancel()
			v, err := NewVerifier(ctx, Config{JWKSURL: srv.URL})
			if err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := v.Verify(ctx, tok); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
