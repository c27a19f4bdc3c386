package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// watch subscribes to productChanged(id) over graphql-transport-ws and
// sends every pushed version to got until ctx ends.
func watch(t *testing.T, ctx context.Context, url, id string, got func(int)) {
	t.Helper()
	conn, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + adminToken}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := wsjson.Write(ctx, conn, map[string]any{"type": "connection_init"}); err != nil {
		t.Fatal(err)
	}
	var ack struct{ Type string }
	if err := wsjson.Read(ctx, conn, &ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("connection_ack: %q %v", ack.Type, err)
	}
	if err := wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{
		"query": `subscription($id: ID!) { productChanged(id: $id) { id name version } }`, "variables": map[string]any{"id": id}}}); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer conn.CloseNow()
		for {
			var msg struct {
				Type    string
				Payload struct {
					Data struct{ ProductChanged struct{ Version int } }
				}
			}
			if err := wsjson.Read(ctx, conn, &msg); err != nil {
				return
			}
			if msg.Type == "next" {
				got(msg.Payload.Data.ProductChanged.Version)
			}
		}
	}()
}

// subscriptions reads a query instance's open-subscriptions gauge.
func subscriptions(addr string) int {
	res, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return -1
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	for _, line := range strings.Split(string(body), "\n") {
		var n int
		if _, err := fmt.Sscanf(line, "splitstream_subscriptions %d", &n); err == nil {
			return n
		}
	}
	return -1
}

// Two query instances with 100 subscribers each: every subscriber gets
// every change once, in version order.
func TestTwoQueryInstancesDeliverEveryChange(t *testing.T) {
	env, commandURL, _ := stack(t)
	second := startSecondQuery(t, env)

	queryURL := "http://" + env["SPLITSTREAM_QUERY_ADDR"] + "/graphql"
	var res struct{ CreateProduct struct{ ID, Token string } }
	if err := gql(commandURL, `mutation { createProduct(input: {name: "Watched", category: "c", priceCents: 100, currency: "EUR", stock: 1}) { id token } }`, nil, &res); err != nil {
		t.Fatal(err)
	}
	id := res.CreateProduct.ID
	// Subscribe once the creation is in the index, so only the renames follow.
	if err := gql(queryURL, `query($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { id } }`, map[string]any{"id": id, "t": res.CreateProduct.Token}, nil); err != nil {
		t.Fatal(err)
	}
	instances := []string{env["SPLITSTREAM_QUERY_ADDR"], second}
	const perInstance, renames = 100, 10
	seen := &versionsSeen{got: map[int][]int{}}
	wsCtx, stopWS := context.WithCancel(context.Background())
	defer stopWS()
	subscribeEverywhere(t, wsCtx, instances, id, perInstance, seen)
	renameReadingBack(t, commandURL, queryURL, id, renames)
	want := make([]int, renames)
	for i := range want {
		want[i] = i + 2
	}
	seen.waitComplete(2*perInstance, renames)
	time.Sleep(200 * time.Millisecond) // anything extra would arrive now
	seen.mu.Lock()
	defer seen.mu.Unlock()
	got := seen.got
	for s := range 2 * perInstance {
		if fmt.Sprint(got[s]) != fmt.Sprint(want) {
			t.Fatalf("subscriber %d (instance %d) got versions %v, want %v: every change once, in order", s, s/perInstance, got[s], want)
		}
	}
}

// startSecondQuery runs a second query instance beside the stack's, until
// the test ends, and returns its address.
func startSecondQuery(t *testing.T, env map[string]string) string {
	second := map[string]string{}
	for k, v := range env {
		second[k] = v
	}
	second["SPLITSTREAM_QUERY_ADDR"] = freeAddr(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"query"}, func(k string) string { return second[k] }, io.Discard, io.Discard)
	}()
	t.Cleanup(func() { cancel(); <-done })
	return second["SPLITSTREAM_QUERY_ADDR"]
}

// versionsSeen is the versions each subscriber received.
type versionsSeen struct {
	mu  sync.Mutex
	got map[int][]int // subscriber -> versions received
}

// subscribeEverywhere opens perInstance subscriptions to id on each
// instance and waits until every instance holds them.
func subscribeEverywhere(t *testing.T, ctx context.Context, instances []string, id string, perInstance int, seen *versionsSeen) {
	for i, addr := range instances {
		deadline := time.Now().Add(30 * time.Second)
		for subscriptions(addr) < 0 { // the second instance may still be starting
			if time.Now().After(deadline) {
				t.Fatalf("query instance %s never answered", addr)
			}
			time.Sleep(100 * time.Millisecond)
		}
		for j := range perInstance {
			s := i*perInstance + j
			watch(t, ctx, "ws://"+addr+"/graphql", id, func(v int) {
				seen.mu.Lock()
				seen.got[s] = append(seen.got[s], v)
				seen.mu.Unlock()
			})
		}
	}
	for _, addr := range instances {
		deadline := time.Now().Add(30 * time.Second)
		for subscriptions(addr) < perInstance {
			if time.Now().After(deadline) {
				t.Fatalf("%s holds %d subscriptions, want %d", addr, subscriptions(addr), perInstance)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// renameReadingBack renames id renames times. Each rename is read back
// before the next: a burst of changes to one document projected in one
// batch reaches the index, and so its subscribers, as its last state only
// (conflation), by design.
func renameReadingBack(t *testing.T, commandURL, queryURL, id string, renames int) {
	for r := range renames {
		var renamed struct{ RenameProduct struct{ Token string } }
		if err := gql(commandURL, `mutation($id: ID!, $n: String!) { renameProduct(input: {id: $id, name: $n}) { token } }`,
			map[string]any{"id": id, "n": fmt.Sprintf("Watched %d", r)}, &renamed); err != nil {
			t.Fatal(err)
		}
		if err := gql(queryURL, `query($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { id } }`,
			map[string]any{"id": id, "t": renamed.RenameProduct.Token}, nil); err != nil {
			t.Fatal(err)
		}
	}
}

// waitComplete waits (at most 30 s) until each of the subscribers has seen
// the last of the renames.
func (v *versionsSeen) waitComplete(subscribers, renames int) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		v.mu.Lock()
		complete := 0
		for s := range subscribers {
			if len(v.got[s]) >= renames && v.got[s][len(v.got[s])-1] == renames+1 {
				complete++
			}
		}
		v.mu.Unlock()
		if complete == subscribers || time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
