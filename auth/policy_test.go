package auth

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/splitstream/splitstream"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// callers are the seven kinds of caller the issue names, each made by
// verifying a real token (or none) so the table covers verification too.
func callers(t *testing.T) map[string]Caller {
	t.Helper()
	now := time.Now()
	v, err := NewVerifier(context.Background(), Config{Secret: testSecret})
	if err != nil {
		t.Fatal(err)
	}
	mint := func(sub string, roles []string, ttl time.Duration, at time.Time) string {
		tok, err := Mint(testSecret, sub, roles, ttl, at)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	none, err := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix(), "roles": []string{"admin"}}).
		SignedString(jwt.UnsafeAllowNoneSignatureType)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := Mint([]byte("another secret, also 32 bytes long!"), "alice", []string{"admin"}, time.Hour, now)
	tokens := map[string]string{
		"anonymous":      "",
		"customer":       "Bearer " + mint("alice", nil, time.Hour, now),
		"other customer": "Bearer " + mint("bob", []string{"reader"}, time.Hour, now),
		"admin":          "Bearer " + mint("root", []string{"admin"}, time.Hour, now),
		"expired":        "Bearer " + mint("alice", nil, time.Minute, now.Add(-2*time.Minute)),
		"bad signature":  "Bearer " + other,
		"alg none":       "Bearer " + none,
	}
	out := map[string]Caller{}
	for name, tok := range tokens {
		out[name] = v.Authorization(context.Background(), tok)
	}
	return out
}

// Every operation × every kind of caller, on a thing owned by "alice" (the
// customer): "ok", or the error code. Written out, not derived from rules.
func TestPolicy(t *testing.T) {
	const (
		ok       = "ok"
		unauth   = splitstream.EUnauthenticated
		forbid   = splitstream.EForbidden
		notFound = splitstream.ENotFound
	)
	kinds := []string{"anonymous", "customer", "other customer", "admin", "expired", "bad signature", "alg none"}
	adminOnly := []string{unauth, forbid, forbid, ok, unauth, unauth, unauth}
	public := []string{ok, ok, ok, ok, unauth, unauth, unauth}
	ownForbidden := []string{unauth, ok, forbid, ok, unauth, unauth, unauth}
	ownHiddenRow := []string{unauth, ok, notFound, ok, unauth, unauth, unauth}
	want := map[string][]string{
		"version":                  public,
		"createProduct":            adminOnly,
		"renameProduct":            adminOnly,
		"changeProductDescription": adminOnly,
		"changeProductPrice":       adminOnly,
		"restockProduct":           adminOnly,
		"discontinueProduct":       adminOnly,
		"addReview":                {unauth, ok, ok, ok, unauth, unauth, unauth},
		"removeReview":             ownForbidden,
		"placeOrder":               ownForbidden,
		"cancelOrder":              ownHiddenRow,
		"product":                  public,
		"products":                 public,
		"reviews":                  public,
		"productAt":                public,
		"productHistory":           adminOnly,
		"order":                    ownHiddenRow,
		"orders":                   ownForbidden,
		"productChanged":           public,
		"productsChanged":          public,
		"reviewAdded":              public,
		"orderChanged":             ownHiddenRow,
		"registerCustomer":         ownForbidden,
		"renameCustomer":           ownForbidden,
		"changeCustomerAddress":    ownForbidden,
		"customer":                 ownHiddenRow,
		"customerChanged":          ownHiddenRow,
	}
	cs := callers(t)
	for op, row := range want {
		for i, kind := range kinds {
			got := ok
			if err := AuthorizeOwner(cs[kind], op, "alice"); err != nil {
				got = splitstream.ErrorCode(err)
			}
			if got != row[i] {
				t.Errorf("%s by %s: %s, want %s", op, kind, got, row[i])
			}
		}
	}
	ops := Operations()
	slices.Sort(ops)
	for _, op := range ops {
		if _, ok := want[op]; !ok {
			t.Errorf("policy has %s, the table does not", op)
		}
	}
	if len(ops) != len(want) {
		t.Errorf("policy has %d operations, the table %d", len(ops), len(want))
	}
	// An operation nobody decided about is closed, to admins too.
	if err := AuthorizeOwner(cs["admin"], "reserveStock", ""); splitstream.ErrorCode(err) != forbid {
		t.Errorf("unknown operation by admin: %v", err)
	}
}

// Every field of both schemas' Query, Mutation and Subscription is in the
// policy, so a new field cannot slip through undecided.
func TestPolicyCoversBothSchemas(t *testing.T) {
	for _, path := range []string{"../graph/write/schema.graphqls", "../graph/read/schema.graphqls"} {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		schema, gerr := gqlparser.LoadSchema(&ast.Source{Name: path, Input: string(raw)})
		if gerr != nil {
			t.Fatal(gerr)
		}
		for _, root := range []*ast.Definition{schema.Query, schema.Mutation, schema.Subscription} {
			if root == nil {
				continue
			}
			for _, f := range root.Fields {
				if f.Name[0] == '_' {
					continue // __schema, __type
				}
				if _, ok := rules[f.Name]; !ok {
					t.Errorf("%s: %s.%s is not in the policy", path, root.Name, f.Name)
				}
			}
		}
	}
}

func TestPolicyActorIsTheSubject(t *testing.T) {
	ctx := WithCaller(context.Background(), Caller{Subject: "alice"})
	if got := (Policy{}).Actor(ctx); got != "alice" {
		t.Errorf("actor %q", got)
	}
	if sub, all := (Policy{}).Scope(ctx); sub != "alice" || all {
		t.Errorf("scope %q %v", sub, all)
	}
	if _, all := (Policy{}).Scope(WithCaller(ctx, Caller{Subject: "root", Admin: true})); !all {
		t.Error("admin scope is not all")
	}
}
