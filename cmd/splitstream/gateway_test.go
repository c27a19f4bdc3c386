package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
	"github.com/splitstream/splitstream/gateway"
	"github.com/vektah/gqlparser/v2"
)

// answer is a GraphQL response as a client reads it.
type answer struct {
	Data   json.RawMessage
	Errors []struct {
		Message    string
		Extensions map[string]any
	}
}

func (a answer) code() string {
	if len(a.Errors) == 0 {
		return ""
	}
	c, _ := a.Errors[0].Extensions["code"].(string)
	return c
}

// unavailableWithin is the bound the gateway keeps on a down upstream.
const unavailableWithin = 2 * time.Second

// post sends one operation as an admin; a client that gives up after
// unavailableWithin, so a slow refusal fails the test.
func post(t *testing.T, url, query string, vars map[string]any) answer {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+adminToken)
	client := &http.Client{Timeout: unavailableWithin + 5*time.Second} // consistentWith may wait up to 5 s
	if strings.HasPrefix(query, "mutation") {
		client.Timeout = unavailableWithin + 3*time.Second
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var a answer
	if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
		t.Fatalf("%s: %v", res.Status, err)
	}
	return a
}

// startRoles runs roles as one process of their own until the returned
// function stops it (or the test ends).
func startRoles(t *testing.T, env map[string]string, ready string, roles ...string) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, roles, func(k string) string { return env[k] }, io.Discard, io.Discard)
	}()
	stopped := false
	stop = func() {
		if !stopped {
			stopped = true
			cancel()
			<-done
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get("http://" + ready + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return stop
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v on %s not ready", roles, ready)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// subscription is a graphql-transport-ws subscription through a URL.
type subscription struct {
	conn   *websocket.Conn
	events chan answer
}

func subscribeWS(t *testing.T, ctx context.Context, url, query string, vars map[string]any) *subscription {
	t.Helper()
	return subscribeWSAs(t, ctx, url, adminToken, query, vars)
}

// subscribeWSAs is subscribeWS for the caller of token.
func subscribeWSAs(t *testing.T, ctx context.Context, url, token, query string, vars map[string]any) *subscription {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.CloseNow() })
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "connection_init", "payload": map[string]any{"authorization": "Bearer " + token}}); err != nil {
		t.Fatal(err)
	}
	var ack struct{ Type string }
	if err := wsjson.Read(ctx, conn, &ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("connection_ack: %q %v", ack.Type, err)
	}
	if err := wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": query, "variables": vars}}); err != nil {
		t.Fatal(err)
	}
	s := &subscription{conn: conn, events: make(chan answer, 16)}
	go func() {
		defer close(s.events)
		for {
			var m struct {
				Type    string
				Payload json.RawMessage
			}
			if err := wsjson.Read(ctx, conn, &m); err != nil || m.Type == "complete" {
				return
			}
			if m.Type == "ping" || m.Type == "pong" {
				continue
			}
			var a answer
			if m.Type == "error" {
				_ = json.Unmarshal(m.Payload, &a.Errors)
			} else {
				_ = json.Unmarshal(m.Payload, &a)
			}
			s.events <- a
		}
	}()
	return s
}

func (s *subscription) next(t *testing.T) answer {
	t.Helper()
	select {
	case a, ok := <-s.events:
		if !ok {
			t.Fatal("the subscription ended")
		}
		return a
	case <-time.After(30 * time.Second):
		t.Fatal("no event in 30 s")
	}
	return answer{}
}

const (
	gwCreate  = `mutation($n: String!) { createProduct(input: {name: $n, category: "lamps", priceCents: 1200, currency: "EUR", stock: 3}) { id version token } }`
	gwRename  = `mutation($id: ID!, $n: String!) { renameProduct(input: {id: $id, name: $n}) { id version token } }`
	gwProduct = `query($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { id name version } }`
	gwWatch   = `subscription($id: ID!) { productChanged(id: $id) { id name version } }`
)

// The gateway in front of its own copies of the two services, a whole
// stack beside them. With the command service stopped, queries and
// subscriptions through the gateway still work and mutations get
// SERVICE_UNAVAILABLE at once; with the query service stopped, the
// reverse.
func TestGatewaySurvivesEitherUpstream(t *testing.T) {
	env, commandURL, _ := stack(t)
	side := maps.Clone(env)
	side["SPLITSTREAM_COMMAND_ADDR"], side["SPLITSTREAM_QUERY_ADDR"] = freeAddr(t), freeAddr(t)
	side["SPLITSTREAM_GATEWAY_ADDR"], side["SPLITSTREAM_ADMIN_ADDR"] = freeAddr(t), freeAddr(t)
	stopCommand := startRoles(t, side, side["SPLITSTREAM_COMMAND_ADDR"], "command")
	stopQuery := startRoles(t, side, side["SPLITSTREAM_QUERY_ADDR"], "query")
	startRoles(t, side, side["SPLITSTREAM_GATEWAY_ADDR"], "gateway")
	gw := "http://" + side["SPLITSTREAM_GATEWAY_ADDR"] + "/graphql"
	ws := "ws://" + side["SPLITSTREAM_GATEWAY_ADDR"] + "/graphql"
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	created := post(t, gw, gwCreate, map[string]any{"n": "Gateway lamp"})
	var c struct{ CreateProduct struct{ ID, Token string } }
	if err := json.Unmarshal(created.Data, &c); err != nil || c.CreateProduct.ID == "" {
		t.Fatalf("createProduct through the gateway: %+v %v", created, err)
	}
	id := c.CreateProduct.ID
	if a := post(t, gw, gwProduct, map[string]any{"id": id, "t": c.CreateProduct.Token}); !strings.Contains(string(a.Data), "Gateway lamp") {
		t.Fatalf("consistentWith read through the gateway: %+v", a)
	}
	sub := subscribeWS(t, ctx, ws, gwWatch, map[string]any{"id": id})
	time.Sleep(300 * time.Millisecond) // the subscription reaches the query service
	post(t, gw, gwRename, map[string]any{"id": id, "n": "Renamed once"})
	if a := sub.next(t); !strings.Contains(string(a.Data), "Renamed once") {
		t.Fatalf("subscription event: %+v", a)
	}

	stopCommand()
	if a := post(t, gw, gwRename, map[string]any{"id": id, "n": "never"}); a.code() != "SERVICE_UNAVAILABLE" {
		t.Fatalf("mutation with the command service down: %+v", a)
	}
	// The stack's own command service still takes writes; the gateway's
	// query side still sees them, and pushes them.
	var direct struct{ RenameProduct struct{ Token string } }
	if err := gql(commandURL, gwRename, map[string]any{"id": id, "n": "Renamed twice"}, &direct); err != nil {
		t.Fatal(err)
	}
	if a := sub.next(t); !strings.Contains(string(a.Data), "Renamed twice") {
		t.Fatalf("subscription event with the command service down: %+v", a)
	}
	if a := post(t, gw, gwProduct, map[string]any{"id": id, "t": direct.RenameProduct.Token}); !strings.Contains(string(a.Data), "Renamed twice") {
		t.Fatalf("query with the command service down: %+v", a)
	}

	startRoles(t, side, side["SPLITSTREAM_COMMAND_ADDR"], "command")
	stopQuery()
	if a := post(t, gw, gwProduct, map[string]any{"id": id}); a.code() != "SERVICE_UNAVAILABLE" {
		t.Fatalf("query with the query service down: %+v", a)
	}
	if a := subscribeWS(t, ctx, ws, gwWatch, map[string]any{"id": id}).next(t); a.code() != "SERVICE_UNAVAILABLE" {
		t.Fatalf("new subscription with the query service down: %+v", a)
	}
	if a := post(t, gw, gwRename, map[string]any{"id": id, "n": "Renamed thrice"}); len(a.Errors) > 0 || !strings.Contains(string(a.Data), id) {
		t.Fatalf("mutation with the query service down: %+v", a)
	}
}

// The gateway's GraphiQL tabs are valid against its union schema.
func TestGatewayTabsValidate(t *testing.T) {
	g, err := gateway.New(gateway.Options{CommandURL: "http://127.0.0.1:1", QueryURL: "http://127.0.0.1:2", Log: slog.New(slog.DiscardHandler),
		QueryTimeout: time.Second, CommandTimeout: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	for _, tab := range gatewayTabs() {
		if _, errs := gqlparser.LoadQueryWithRules(g.Schema(), tab.Query, nil); errs != nil {
			t.Errorf("tab %q: %v", tab.Name, errs)
		}
	}
}

// Persisted-only mode needs a list, and refuses a list that does not load.
func TestGatewayPersistedOnlySettings(t *testing.T) {
	dir := t.TempDir()
	good, bad := dir+"/ops.json", dir+"/bad.json"
	doc := `{ products { totalCount } }`
	sum := sha256.Sum256([]byte(doc))
	if err := os.WriteFile(good, []byte(`{"`+hex.EncodeToString(sum[:])+`": "`+doc+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte(`{"00": "`+doc+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for file, ok := range map[string]bool{"": false, good: true, bad: false, dir + "/missing.json": false} {
		a := testApp(t, map[string]string{"SPLITSTREAM_JWT_SECRET": testJWTSecret, "SPLITSTREAM_TOKEN_SECRET": testTokenSecret,
			"SPLITSTREAM_PERSISTED_ONLY": "true", "SPLITSTREAM_PERSISTED_FILE": file})
		if _, err := a.gatewayRole(context.Background()); (err == nil) != ok {
			t.Errorf("persisted file %q: %v", file, err)
		}
	}
}

// The gateway keeps the services' edge rules itself: an invalid token is
// 401 UNAUTHENTICATED, an anonymous flood 429 RATE_LIMITED, an oversized
// body 413, before anything goes upstream (here nothing listens upstream).
func TestGatewayEdgeRules(t *testing.T) {
	env := map[string]string{"SPLITSTREAM_JWT_SECRET": testJWTSecret, "SPLITSTREAM_TOKEN_SECRET": testTokenSecret,
		"SPLITSTREAM_GATEWAY_ADDR": freeAddr(t), "SPLITSTREAM_COMMAND_URL": "http://" + freeAddr(t), "SPLITSTREAM_QUERY_URL": "http://" + freeAddr(t),
		"SPLITSTREAM_RATE_LIMIT": "1", "SPLITSTREAM_MAX_BODY_BYTES": "4096"}
	startRoles(t, env, env["SPLITSTREAM_GATEWAY_ADDR"], "gateway")
	url := "http://" + env["SPLITSTREAM_GATEWAY_ADDR"] + "/graphql"
	ask := func(auth, query string) (int, string) {
		body, _ := json.Marshal(map[string]any{"query": query})
		req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var a answer
		_ = json.NewDecoder(res.Body).Decode(&a)
		return res.StatusCode, a.code()
	}
	if status, code := ask("Bearer not-a-jwt", `{ products { totalCount } }`); status != http.StatusUnauthorized || code != "UNAUTHENTICATED" {
		t.Errorf("invalid token: %d %s", status, code)
	}
	if status, _ := ask("Bearer "+adminToken, `{ products(search: "`+strings.Repeat("x", 5000)+`") { totalCount } }`); status != http.StatusRequestEntityTooLarge {
		t.Errorf("oversized body: %d", status)
	}
	codes := map[string]int{}
	for range 5 {
		_, code := ask("", `{ products { totalCount } }`)
		codes[code]++
	}
	if codes["RATE_LIMITED"] == 0 || codes["SERVICE_UNAVAILABLE"] == 0 {
		t.Errorf("anonymous flood at 1 request/s: %v, want some SERVICE_UNAVAILABLE (nothing upstream) and then RATE_LIMITED", codes)
	}
}
