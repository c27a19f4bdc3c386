package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/query"
)

// consoleCall sends one request to the admin listener's console API and
// decodes the JSON answer into out (when not nil).
func consoleCall(t *testing.T, admin, method, path, token, body string, out any) int {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+admin+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if out != nil && res.StatusCode == http.StatusOK {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v\n%s", method, path, err, raw)
		}
	}
	return res.StatusCode
}

// The console's page is served to anyone on the admin listener with a CSP
// that allows only its own origin; its API answers only an admin.
func TestConsoleAPIIsForAdminsOnly(t *testing.T) {
	env, _, _ := stack(t)
	admin := env["SPLITSTREAM_ADMIN_ADDR"]
	res, err := http.Get("http://" + admin + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(res.Body)
	res.Body.Close()
	csp := res.Header.Get("Content-Security-Policy")
	if res.StatusCode != http.StatusOK || !strings.Contains(string(page), "admin console") ||
		!strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "connect-src 'self'") || strings.Contains(csp, "http") {
		t.Fatalf("GET / = %d, CSP %q", res.StatusCode, csp)
	}
	customer, _ := auth.Mint([]byte(testJWTSecret), "alice", nil, time.Hour, time.Now())
	expired, _ := auth.Mint([]byte(testJWTSecret), "test-admin", []string{auth.RoleAdmin}, time.Hour, time.Now().Add(-3*time.Hour))
	for _, c := range []struct {
		name, method, path, token, body string
		want                            int
	}{
		{"no token", "GET", "/api/status", "", "", http.StatusUnauthorized},
		{"expired admin token", "GET", "/api/status", expired, "", http.StatusUnauthorized},
		{"garbage token", "GET", "/api/status", "not-a-jwt", "", http.StatusUnauthorized},
		{"customer", "GET", "/api/status", customer, "", http.StatusForbidden},
		{"customer replays", "POST", "/api/dead-letters/replay", customer, `{"kind":"product","id":"x"}`, http.StatusForbidden},
		{"no token drops", "POST", "/api/dead-letters/drop", "", `{"kind":"product","id":"x"}`, http.StatusUnauthorized},
		{"admin", "GET", "/api/status", adminToken, "", http.StatusOK},
		{"page too large", "GET", "/api/dead-letters?limit=501", adminToken, "", http.StatusBadRequest},
		{"page not a number", "GET", "/api/dead-letters?limit=all", adminToken, "", http.StatusBadRequest},
		{"replay by GET", "GET", "/api/dead-letters/replay", adminToken, "", http.StatusMethodNotAllowed},
		{"id too long", "POST", "/api/dead-letters/replay", adminToken, `{"kind":"product","id":"` + strings.Repeat("x", 257) + `"}`, http.StatusBadRequest},
		{"no id", "POST", "/api/dead-letters/drop", adminToken, `{"kind":"product"}`, http.StatusBadRequest},
		{"unknown field", "POST", "/api/dead-letters/drop", adminToken, `{"kind":"product","id":"x","all":true}`, http.StatusBadRequest},
		{"a second value after the document", "POST", "/api/dead-letters/drop", adminToken, `{"kind":"product","id":"x"} {"kind":"order","id":"y"}`, http.StatusBadRequest},
		{"body too large", "POST", "/api/dead-letters/drop", adminToken, `{"kind":"product","id":"x"}` + strings.Repeat(" ", 5000), http.StatusBadRequest},
		{"unknown route", "GET", "/api/nothing", adminToken, "", http.StatusNotFound},
	} {
		if got := consoleCall(t, admin, c.method, c.path, c.token, c.body, nil); got != c.want {
			t.Errorf("%s: %s %s = %d, want %d", c.name, c.method, c.path, got, c.want)
		}
	}
	// A form post from another site carries no Bearer header: refused.
	res, err = http.Post("http://"+admin+"/api/dead-letters/drop", "application/x-www-form-urlencoded", strings.NewReader("kind=product&id=x"))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusUnauthorized {
		t.Errorf("a cookie-less form post = %d, want 401", res.StatusCode)
	}
}

type consoleStatus struct {
	Roles []struct {
		Name  string
		Ready bool
	}
	Relays []struct{ Name string }
	Lanes  []struct {
		Name              string
		WatermarkPosition float64
	}
	Sagas *struct {
		Open, PastDeadline *float64
		Started            float64
	}
	DeadLetters       *float64
	DeadLetterActions bool
}

type consoleDeadList struct {
	Documents []struct {
		Kind, ID string
		Letters  int
		Reasons  map[string]int
	}
}

// A product Elasticsearch refuses shows in the console's dead letters with
// its reason; after the mapping is fixed, a replay through the console
// applies them and the list is empty; the status names every role.
func TestConsoleShowsAndReplaysDeadLetters(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, commandURL, _ := stack(t)
	admin := env["SPLITSTREAM_ADMIN_ADDR"]
	badIndex := strictProducts(t, ctx, env["SPLITSTREAM_INDEX_PREFIX"])

	var created struct{ CreateProduct struct{ ID string } }
	if err := gql(commandURL, `mutation { createProduct(input: {name: "Console", description: "d", category: "c", priceCents: 100, currency: "EUR", stock: 5}) { id } }`,
		nil, &created); err != nil {
		t.Fatal(err)
	}
	id := created.CreateProduct.ID
	if err := gql(commandURL, `mutation($id: ID!) { addReview(input: {productId: $id, author: "Ada", rating: 4, comment: "fine"}) { id } }`,
		map[string]any{"id": id}, nil); err != nil {
		t.Fatal(err)
	}
	var dead consoleDeadList
	waitFor(t, "the product's dead letters in the console", func() bool {
		dead = consoleDeadList{}
		consoleCall(t, admin, "GET", "/api/dead-letters?limit=10", adminToken, "", &dead)
		return len(dead.Documents) == 1 && dead.Documents[0].ID == id
	})
	doc := dead.Documents[0]
	if doc.Kind != "product" || doc.Letters < 1 || !strings.Contains(strings.Join(keys(doc.Reasons), " "), "strict_dynamic_mapping_exception") {
		t.Fatalf("dead letters = %+v", dead)
	}
	var st consoleStatus
	if code := consoleCall(t, admin, "GET", "/api/status", adminToken, "", &st); code != http.StatusOK {
		t.Fatalf("status = %d", code)
	}
	var roles []string
	for _, r := range st.Roles {
		roles = append(roles, r.Name)
	}
	if strings.Join(roles, ",") != "command,relay,projector,saga,query,gateway" || len(st.Relays) != 1 || len(st.Lanes) != 1 ||
		st.Lanes[0].Name != "main" || st.Sagas == nil || !st.DeadLetterActions || st.DeadLetters == nil {
		t.Fatalf("status = %+v", st)
	}

	body := `{"kind":"product","id":"` + id + `"}`
	var replay struct{ Applied, StillDead int }
	if code := consoleCall(t, admin, "POST", "/api/dead-letters/replay", adminToken, body, &replay); code != http.StatusOK || replay.StillDead != doc.Letters {
		t.Fatalf("replay before the fix = %d %+v; want all %d still dead", code, replay, doc.Letters)
	}
	fixProducts(t, ctx, badIndex)
	if code := consoleCall(t, admin, "POST", "/api/dead-letters/replay", adminToken, body, &replay); code != http.StatusOK ||
		replay.StillDead != 0 || replay.Applied != doc.Letters {
		t.Fatalf("replay after the fix = %d %+v; want %d applied", code, replay, doc.Letters)
	}
	dead = consoleDeadList{}
	consoleCall(t, admin, "GET", "/api/dead-letters", adminToken, "", &dead)
	if len(dead.Documents) != 0 {
		t.Fatalf("after the replay: %+v", dead)
	}
}

// strictProducts points the products alias at an index whose mapping
// refuses any latestReviews entry, as dead_test.go does, and returns it.
func strictProducts(t *testing.T, ctx context.Context, prefix string) string {
	t.Helper()
	es, err := elastic.Open(ctx, testenv.ElasticsearchURL())
	if err != nil {
		t.Fatal(err)
	}
	good, _ := elastic.Mapping(query.Products.Index)
	bad := strings.Replace(good, `"latestReviews":{"enabled":false,"type":"object"}`,
		`"latestReviews": {"type":"object","dynamic":"strict","properties":{}}`, 1)
	if bad == good {
		t.Fatal("the products mapping has changed; update this test")
	}
	badIndex := prefix + "-products-strictlatest"
	if err := elastic.Do(ctx, es, http.MethodPut, "/"+badIndex, `{"settings":{"number_of_shards":1,"number_of_replicas":0},"mappings":`+bad+`}`, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := elastic.NewIndices(es, prefix, time.Second).Swap(ctx, query.Products.Index, badIndex); err != nil {
		t.Fatal(err)
	}
	return badIndex
}

// fixProducts teaches the strict index latestReviews' fields.
func fixProducts(t *testing.T, ctx context.Context, index string) {
	t.Helper()
	es, err := elastic.Open(ctx, testenv.ElasticsearchURL())
	if err != nil {
		t.Fatal(err)
	}
	if err := elastic.Do(ctx, es, http.MethodPut, "/"+index+"/_mapping",
		`{"properties":{"latestReviews":{"properties":{"id":{"type":"keyword"},"createdAt":{"type":"date"}}}}}`, nil); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func keys(m map[string]int) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// `splitstream rebuild --admin-addr` serves a console of its own that shows
// what the rebuilder reports, behind the same admin rule.
func TestRebuildConsoleShowsProgress(t *testing.T) {
	ctx := context.Background()
	dbURL, pool := testenv.Postgres(t)
	es, prefix := testenv.Elasticsearch(t)
	addr := freeAddr(t)
	a := testApp(t, map[string]string{"DATABASE_URL": dbURL, "SPLITSTREAM_INDEX_PREFIX": prefix, "SPLITSTREAM_JWT_SECRET": testJWTSecret})
	var r rebuilder
	stop, err := a.rebuildConsole(ctx, addr, pool, es, &r)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	var st struct {
		Roles   []struct{ Name string }
		Rebuild *struct {
			Models      []string
			Phase       string
			Done, Total int64
		}
	}
	waitFor(t, "the rebuild's admin listener", func() bool {
		res, err := http.Get("http://" + addr + "/healthz")
		if err == nil {
			res.Body.Close()
		}
		return err == nil
	})
	consoleCall(t, addr, "GET", "/api/status", adminToken, "", &st)
	if st.Rebuild != nil || len(st.Roles) != 1 || st.Roles[0].Name != "rebuild" {
		t.Fatalf("before the start: %+v", st)
	}
	r.report.Start([]string{"products"}, 10)
	r.report.Set(4, 10)
	consoleCall(t, addr, "GET", "/api/status", adminToken, "", &st)
	if st.Rebuild == nil || st.Rebuild.Phase != "replaying" || st.Rebuild.Done != 4 || st.Rebuild.Total != 10 || st.Rebuild.Models[0] != "products" {
		t.Fatalf("while replaying: %+v", st.Rebuild)
	}
	r.report.Finish(nil)
	consoleCall(t, addr, "GET", "/api/status", adminToken, "", &st)
	if st.Rebuild.Phase != "done" {
		t.Fatalf("after the end: %+v", st.Rebuild)
	}
	if code := consoleCall(t, addr, "GET", "/api/status", "", "", nil); code != http.StatusUnauthorized {
		t.Errorf("no token: %d", code)
	}
}
