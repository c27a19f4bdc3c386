package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/splitstream/splitstream/auth"
)

// The secrets of every stack the tests run.
const (
	testJWTSecret   = "test jwt secret, at least 32 bytes long"
	testTokenSecret = "test token secret, at least 32 bytes long"
)

// adminToken is what gql and watch send: an admin is not rate limited.
var adminToken = func() string {
	tok, err := auth.Mint([]byte(testJWTSecret), "test-admin", []string{auth.RoleAdmin}, 24*time.Hour, time.Now())
	if err != nil {
		panic(err)
	}
	return tok
}()

// With neither a secret nor a JWKS the API roles refuse to start, and say
// what to set; SPLITSTREAM_AUTH=off starts them with every caller an admin.
func TestAPIRolesNeedKeys(t *testing.T) {
	for _, role := range []string{roleCommand, roleQuery} {
		a := testApp(t, map[string]string{})
		_, err := a.build(context.Background(), role)
		if err == nil || !strings.Contains(err.Error(), "SPLITSTREAM_JWT_SECRET") {
			t.Errorf("%s without keys: %v", role, err)
		}
		a = testApp(t, map[string]string{"SPLITSTREAM_JWT_SECRET": testJWTSecret})
		if _, err := a.build(context.Background(), role); err == nil || !strings.Contains(err.Error(), "SPLITSTREAM_TOKEN_SECRET") {
			t.Errorf("%s without a token secret: %v", role, err)
		}
	}
	if _, err := bindConfig(flagSet(), func(k string) string {
		return map[string]string{"SPLITSTREAM_JWT_SECRET": "short"}[k]
	})(); err == nil {
		t.Error("a short JWT secret was accepted")
	}
}

// The secrets never show in --help.
func TestSecretsStayOutOfHelp(t *testing.T) {
	fs := flagSet()
	var help strings.Builder
	fs.SetOutput(&help)
	parse := bindConfig(fs, func(k string) string {
		return map[string]string{"SPLITSTREAM_JWT_SECRET": testJWTSecret, "SPLITSTREAM_TOKEN_SECRET": testTokenSecret}[k]
	})
	fs.PrintDefaults()
	if strings.Contains(help.String(), testJWTSecret) || strings.Contains(help.String(), testTokenSecret) {
		t.Error("--help shows a secret")
	}
	cfg, err := parse()
	if err != nil || cfg.JWTSecret != testJWTSecret || cfg.TokenSecret != testTokenSecret {
		t.Errorf("secrets from the environment: %v %q %q", err, cfg.JWTSecret, cfg.TokenSecret)
	}
}

// Against the whole stack: reads and writes need the right token, and a
// flood from one anonymous caller gets 429 while a customer is served.
func TestStackEnforcesAccess(t *testing.T) {
	// One request a second (a burst of 2), so a flood meets the limit
	// however slow the machine.
	env, commandURL, queryURL := stack(t, map[string]string{"SPLITSTREAM_RATE_LIMIT": "1"})
	post := func(url, tok, query string) (int, string) {
		req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(`{"query":`+quote(query)+`}`))
		req.Header.Set("Content-Type", "application/json")
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	customer, _ := auth.Mint([]byte(testJWTSecret), "alice", nil, time.Hour, time.Now())
	if _, body := post(commandURL, "", `mutation { createProduct(input: {name: "X", category: "c", priceCents: 1, currency: "EUR", stock: 1}) { id } }`); !strings.Contains(body, "UNAUTHENTICATED") {
		t.Errorf("anonymous mutation: %s", body)
	}
	if _, body := post(queryURL, customer, `{ productHistory(id: "p") { id } }`); !strings.Contains(body, "FORBIDDEN") {
		t.Errorf("customer history: %s", body)
	}
	// Through the gateway, which calls both services in process here: each
	// service still decides access itself, on the full path (the first
	// request of a document) and on the fast path (the second).
	gatewayURL := "http://" + env["SPLITSTREAM_GATEWAY_ADDR"] + "/graphql"
	carol, _ := auth.Mint([]byte(testJWTSecret), "carol", nil, time.Hour, time.Now())
	for _, c := range []struct{ query, code string }{
		{`{ productHistory(id: "p") { id } }`, "FORBIDDEN"},
		{`mutation { createProduct(input: {name: "X", category: "c", priceCents: 1, currency: "EUR", stock: 1}) { id } }`, "FORBIDDEN"},
	} {
		for round := range 2 {
			if _, body := post(gatewayURL, carol, c.query); !strings.Contains(body, c.code) {
				t.Errorf("a customer through the gateway, round %d: %s: %s", round+1, c.query, body)
			}
		}
		time.Sleep(2 * time.Second) // the rate limit's burst of 2 refills
	}
	other, _ := auth.Mint([]byte(testJWTSecret), "bob", nil, time.Hour, time.Now())
	if status, body := post(queryURL, other, `{ orders { totalCount } }`); status != 200 || strings.Contains(body, "errors") {
		t.Errorf("customer's own orders: %d %s", status, body)
	}
	limited := 0
	for range 20 {
		if status, body := post(queryURL, "", `{ __typename }`); status == http.StatusTooManyRequests {
			if !strings.Contains(body, "RATE_LIMITED") {
				t.Fatalf("429 without RATE_LIMITED: %s", body)
			}
			limited++
		}
	}
	if limited == 0 {
		t.Error("a flood of 20 anonymous requests met no 429")
	}
	if status, _ := post(queryURL, customer, `{ __typename }`); status != 200 {
		t.Errorf("customer during the flood: %d", status)
	}
}

func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
	return `"` + r.Replace(s) + `"`
}
