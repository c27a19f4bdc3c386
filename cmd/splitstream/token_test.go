package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/internal/testenv"
)

const testSecret = "test-secret-of-at-least-thirty-two-bytes!"

// verify checks a token the way the services' verifier must: HS256 only,
// exp required.
func verify(t *testing.T, secret, token string) jwt.MapClaims {
	t.Helper()
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) { return []byte(secret), nil },
		jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
	if err != nil {
		t.Fatalf("token %q does not verify: %v", token, err)
	}
	return claims
}

func runToken(env map[string]string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), append([]string{"token"}, args...), func(k string) string { return env[k] }, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestTokenSubcommand(t *testing.T) {
	env := map[string]string{"SPLITSTREAM_JWT_SECRET": testSecret}
	for _, c := range []struct {
		args  []string
		sub   string
		admin bool
		ttl   time.Duration
	}{
		{[]string{"--sub", "customer-1"}, "customer-1", false, time.Hour},
		{[]string{"--sub", "ops-alice", "--admin", "--ttl", "2h"}, "ops-alice", true, 2 * time.Hour},
		{[]string{"--sub=customer-7", "--ttl=90s"}, "customer-7", false, 90 * time.Second},
	} {
		code, out, errOut := runToken(env, c.args...)
		if code != 0 {
			t.Fatalf("token %v exited %d: %s", c.args, code, errOut)
		}
		tok := strings.TrimSuffix(out, "\n")
		if strings.ContainsAny(tok, " \n") || strings.Count(tok, ".") != 2 {
			t.Fatalf("token %v printed %q, want one JWT alone", c.args, out)
		}
		claims := verify(t, testSecret, tok)
		if claims["sub"] != c.sub {
			t.Errorf("sub = %v, want %s", claims["sub"], c.sub)
		}
		roles, _ := claims["roles"].([]any)
		isAdmin := len(roles) == 1 && roles[0] == auth.RoleAdmin
		if isAdmin != c.admin || (!c.admin && claims["roles"] != nil) {
			t.Errorf("%v: roles = %v, want admin %v", c.args, claims["roles"], c.admin)
		}
		exp, _ := claims.GetExpirationTime()
		iat, _ := claims.GetIssuedAt()
		if got := exp.Sub(iat.Time); got != c.ttl {
			t.Errorf("%v: lifetime %s, want %s", c.args, got, c.ttl)
		}
		// Another secret's verifier refuses it.
		if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return []byte(testSecret + "x"), nil }, jwt.WithValidMethods([]string{"HS256"})); err == nil {
			t.Error("the token verifies under another secret")
		}
	}

	var help bytes.Buffer
	run(context.Background(), []string{"--help"}, func(string) string { return "" }, &help, io.Discard)
	if !regexp.MustCompile(`(?m)^  token +print a JWT`).MatchString(help.String()) {
		t.Errorf("--help does not list token:\n%s", help.String())
	}
}

func TestTokenRefuses(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"no secret", nil, []string{"--sub", "customer-1"}, "SPLITSTREAM_JWT_SECRET is not set"},
		{"JWKS only", map[string]string{"SPLITSTREAM_JWKS_URL": "https://idp.example/jwks.json"}, []string{"--sub", "customer-1"}, "identity provider"},
		{"short secret", map[string]string{"SPLITSTREAM_JWT_SECRET": "short"}, []string{"--sub", "customer-1"}, "32 bytes"},
		{"no subject", map[string]string{"SPLITSTREAM_JWT_SECRET": testSecret}, nil, "--sub is required"},
		{"subject with a space", map[string]string{"SPLITSTREAM_JWT_SECRET": testSecret}, []string{"--sub", "a b"}, "no spaces"},
		{"long subject", map[string]string{"SPLITSTREAM_JWT_SECRET": testSecret}, []string{"--sub", strings.Repeat("x", 300)}, "longer than"},
		{"ttl zero", map[string]string{"SPLITSTREAM_JWT_SECRET": testSecret}, []string{"--sub", "c", "--ttl", "0s"}, "--ttl"},
		{"ttl too long", map[string]string{"SPLITSTREAM_JWT_SECRET": testSecret}, []string{"--sub", "c", "--ttl", "1000h"}, "--ttl"},
	} {
		code, out, errOut := runToken(c.env, c.args...)
		if code == 0 || out != "" || !strings.Contains(errOut, c.want) {
			t.Errorf("%s: exit %d, stdout %q, stderr %q; want a failure saying %q", c.name, code, out, errOut, c.want)
		}
	}
}

// The playgrounds prefill their headers with a token in development mode
// only, and the token is the services' own.
func TestPlaygroundPrefillOnlyInDevMode(t *testing.T) {
	base := graph.PlaygroundConfig{Title: "Splitstream commands", Tabs: graph.CommandTabs(), Hint: commandHint}
	for _, c := range []struct {
		name string
		env  map[string]string
		want bool
	}{
		{"default", map[string]string{"SPLITSTREAM_JWT_SECRET": testSecret}, false},
		{"dev off", map[string]string{"SPLITSTREAM_JWT_SECRET": testSecret, "SPLITSTREAM_DEV": "false"}, false},
		{"dev without a secret", map[string]string{"SPLITSTREAM_DEV": "true", "SPLITSTREAM_JWKS_URL": "https://idp.example/jwks.json"}, false},
		{"dev", map[string]string{"SPLITSTREAM_JWT_SECRET": testSecret, "SPLITSTREAM_DEV": "true"}, true},
	} {
		a := newApp(config(t, c.env), testenv.Logger(t), io.Discard, io.Discard)
		for _, role := range []struct {
			sub   string
			admin bool
		}{{devAdminSubject, true}, {devCustomerSubject, false}} {
			p := a.playground(base, role.sub, role.admin)
			if p.Hint != commandHint {
				t.Errorf("%s: hint %q", c.name, p.Hint)
			}
			if !c.want {
				if p.Headers != nil {
					t.Errorf("%s: headers %v, want none", c.name, p.Headers)
				}
				continue
			}
			bearer, ok := strings.CutPrefix(p.Headers["Authorization"], "Bearer ")
			if !ok || len(p.Headers) != 1 {
				t.Fatalf("%s: headers %v, want one Authorization: Bearer", c.name, p.Headers)
			}
			claims := verify(t, testSecret, bearer)
			roles, _ := claims["roles"].([]any)
			if claims["sub"] != role.sub || (len(roles) == 1 && roles[0] == auth.RoleAdmin) != role.admin {
				t.Errorf("%s: claims %v, want sub %s admin %v", c.name, claims, role.sub, role.admin)
			}

			// And the page a browser on this machine gets carries it.
			srv := httptest.NewServer(graph.Playground(p))
			res, err := http.Get(srv.URL + "/")
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			srv.Close()
			if !strings.Contains(string(body), bearer) {
				t.Errorf("%s: the page does not carry the token", c.name)
			}
		}
	}
}
