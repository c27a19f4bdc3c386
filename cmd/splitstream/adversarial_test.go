package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/coder/websocket/wsjson"
)

// The adversarial suite: hostile inputs sent to a real stack, as a client
// with plain HTTP, WebSocket and SSE would send them. Each must get a clear
// refusal (an error code, an HTTP status or a close code); after each, a
// fresh write is still readable with its token, and the process stays
// under memBound. To add a case, add a row to hostileCases: most are a
// query or mutation (graphQL) with the outcome it must get.

// memBound is the most memory the process may take, peak RSS included.
const memBound = 512 << 20

// target is where the stack listens.
type target struct {
	command, query         string // GraphQL endpoints
	commandAddr, queryAddr string // host:port
}

// outcome is how the stack answered. A zero field in a case's want is
// not checked.
type outcome struct {
	Status int    // HTTP status
	Code   string // extensions.code of the first error; "close 1009" for a WebSocket close; "closed" when the server hung up without answering; "cut" for a slow sender cut off
	Field  string // extensions.field
	Limit  string // extensions.limit (which document limit)
}

type hostileCase struct {
	name string
	send func(t *testing.T, s target) outcome
	want outcome
}

func hostileCases() []hostileCase {
	aliasFlood := func(n int, distinct bool) string {
		return repeatFields(n, func(i int) string {
			if distinct {
				return fmt.Sprintf(`a: product(id: "x%d") { id }`, i)
			}
			return `a: product(id: "x1") { id }`
		})
	}
	productAts := func(n int) string {
		return repeatFields(n, func(i int) string {
			return fmt.Sprintf(`p%d: productAt(id: "x%d", at: "2026-01-01T00:00:00Z") { id name }`, i, i) // 3 fields each
		})
	}
	deep := "{ __schema { types { " + strings.Repeat("fields { type { ", 20) + "name" + strings.Repeat(" } }", 20) + " } } }"
	long := func(n int) string { return strings.Repeat("x", n) }
	tokens := outcome{Code: "BAD_USER_INPUT", Limit: "tokens"}
	invalid := func(field string) outcome { return outcome{Code: "BAD_USER_INPUT", Field: field} }
	return []hostileCase{
		{"5,000 aliases named a, distinct ids", graphQL(onQuery, aliasFlood(5000, true), nil), tokens},
		{"20,000 aliases named a, distinct ids", graphQL(onQuery, aliasFlood(20000, true), nil), tokens},
		{"5,000 copies of one aliased field", graphQL(onQuery, aliasFlood(5000, false), nil), tokens},
		{"20,000 copies of one aliased field", graphQL(onQuery, aliasFlood(20000, false), nil), tokens},
		{"400 x productAt", graphQL(onQuery, productAts(400), nil), outcome{Code: "BAD_USER_INPUT", Limit: "fields"}},
		{"150 x productAt", graphQL(onQuery, repeatFields(150, func(i int) string {
			return fmt.Sprintf(`p%d: productAt(id: "x%d", at: "2026-01-01T00:00:00Z") { id }`, i, i)
		}), nil), outcome{Code: "BAD_USER_INPUT", Limit: "aliases"}},
		{"80 x productAt", graphQL(onQuery, repeatFields(80, func(i int) string {
			return fmt.Sprintf(`p%d: productAt(id: "x%d", at: "2026-01-01T00:00:00Z") { id }`, i, i)
		}), nil), outcome{Code: "COMPLEXITY_LIMIT_EXCEEDED"}},
		{"5 x productAt", graphQL(onQuery, productAts(5), nil), outcome{Code: "COMPLEXITY_LIMIT_EXCEEDED"}},
		{"600 fields", graphQL(onQuery, repeatFields(600, func(int) string { return "__typename" }), nil), outcome{Code: "BAD_USER_INPUT", Limit: "fields"}},
		{"nested 43 deep", graphQL(onQuery, deep, nil), outcome{Code: "BAD_USER_INPUT", Limit: "depth"}},
		{"5,000 aliased mutations", graphQL(onCommand, "mutation "+repeatFields(5000, func(i int) string {
			return fmt.Sprintf(`m%d: restockProduct(input: {id: "x", quantity: 1}) { id }`, i)
		}), nil), tokens},
		{"body over 1 MiB", graphQL(onQuery, "{ __typename }", map[string]any{"pad": long(1 << 20)}), outcome{Status: http.StatusRequestEntityTooLarge, Code: "BAD_USER_INPUT"}},
		{"a body trickled a byte at a time", trickledBody, outcome{Status: http.StatusRequestTimeout, Code: "BAD_USER_INPUT"}},
		{"slow-loris headers", slowHeaders, outcome{Code: "cut"}},
		{"128 KiB of headers", hugeHeaders, outcome{Status: http.StatusRequestHeaderFieldsTooLarge}},
		{"1 MiB WebSocket subscribe (graphql-transport-ws)", wsSubscribe("graphql-transport-ws", "subscription { productChanged(id: \""+long(1<<20)+"\") { id } }", nil), outcome{Code: "close 1009"}},
		{"1 MiB WebSocket subscribe (graphql-ws)", wsSubscribe("graphql-ws", "subscription { productChanged(id: \""+long(1<<20)+"\") { id } }", nil), outcome{Code: "close 1009"}},
		{"alias flood over WebSocket (graphql-transport-ws)", wsSubscribe("graphql-transport-ws", aliasFlood(5000, false), nil), tokens},
		{"alias flood over WebSocket (graphql-ws)", wsSubscribe("graphql-ws", aliasFlood(5000, false), nil), tokens},
		{"alias flood over SSE", sseSubscribe(aliasFlood(5000, false), nil), tokens},
		{"over-long id", graphQL(onQuery, `query($id: ID!) { product(id: $id) { id } }`, map[string]any{"id": long(129)}), invalid("id")},
		{"over-long id in productAt", graphQL(onQuery, `query($id: ID!) { productAt(id: $id, at: "2026-01-01T00:00:00Z") { id } }`, map[string]any{"id": long(10_000)}), invalid("id")},
		{"over-long review productId", graphQL(onQuery, `query($id: ID!) { reviews(productId: $id) { totalCount } }`, map[string]any{"id": long(129)}), invalid("productId")},
		{"over-long search", graphQL(onQuery, `query($s: String) { products(search: $s) { totalCount } }`, map[string]any{"s": long(100_000)}), invalid("search")},
		{"over-long cursor", graphQL(onQuery, `query($a: String) { products(after: $a) { totalCount } }`, map[string]any{"a": long(100_000)}), invalid("after")},
		{"over-long consistentWith", graphQL(onQuery, `query($t: String) { product(id: "x", consistentWith: $t) { id } }`, map[string]any{"t": long(100_000)}), invalid("consistentWith")},
		{"600 distinct valid queries of 1,000,000 bytes", distinctBigQueries(600), invalid("search")},
		{"300 reviews of 4,000 '<'", longReviews, outcome{Code: "none"}},
		{"over-long subscription id", wsSubscribe("graphql-transport-ws", `subscription($id: ID!) { productChanged(id: $id) { id } }`, map[string]any{"id": long(200)}), invalid("id")},
	}
}

func TestAdversarialInputs(t *testing.T) {
	env, commandURL, queryURL := stack(t, map[string]string{
		// Short, so the slow-sender cases end quickly; the defaults are 10s and 20s.
		"SPLITSTREAM_HTTP_READ_HEADER_TIMEOUT": "2s", "SPLITSTREAM_HTTP_READ_TIMEOUT": "3s",
	})
	s := target{command: commandURL, query: queryURL, commandAddr: env["SPLITSTREAM_COMMAND_ADDR"], queryAddr: env["SPLITSTREAM_QUERY_ADDR"]}
	for _, c := range slices.Concat(hostileCases(), longMutationCases(), forgedCases()) {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			got := c.send(t, s)
			took := time.Since(start)
			if (c.want.Status != 0 && got.Status != c.want.Status) || got.Code != c.want.Code ||
				(c.want.Field != "" && got.Field != c.want.Field) || (c.want.Limit != "" && got.Limit != c.want.Limit) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
			freshWriteIsReadable(t, s)
			rss, heap := memory()
			t.Logf("answered %+v in %s; peak RSS %d MiB, heap %d MiB", got, took.Round(time.Millisecond), rss>>20, heap>>20)
			if rss > memBound || heap > memBound {
				t.Fatalf("peak RSS %d MiB, heap %d MiB: over the %d MiB bound", rss>>20, heap>>20, memBound>>20)
			}
		})
	}
}

// freshWriteIsReadable creates a product and reads it back with its token:
// the read side kept up whatever came before.
func freshWriteIsReadable(t *testing.T, s target) {
	t.Helper()
	var c struct{ CreateProduct struct{ ID, Token string } }
	if err := gql(s.command, `mutation { createProduct(input: {name: "After", category: "c", priceCents: 100, currency: "EUR", stock: 1}) { id token } }`, nil, &c); err != nil {
		t.Fatalf("a fresh write failed: %v", err)
	}
	var q struct{ Product *struct{ ID string } }
	if err := gql(s.query, `query($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { id } }`,
		map[string]any{"id": c.CreateProduct.ID, "t": c.CreateProduct.Token}, &q); err != nil || q.Product == nil {
		t.Fatalf("a fresh write was not readable with its token: %v", err)
	}
}

// memory returns the process's peak RSS (VmHWM; the Go runtime's Sys where
// there is no /proc) and its heap in use.
func memory() (rss, heap uint64) {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	rss = m.Sys
	if raw, err := os.ReadFile("/proc/self/status"); err == nil {
		for _, line := range strings.Split(string(raw), "\n") {
			if f := strings.Fields(line); len(f) == 3 && f[0] == "VmHWM:" {
				if kb, err := strconv.ParseUint(f[1], 10, 64); err == nil {
					rss = kb << 10
				}
			}
		}
	}
	return rss, m.HeapInuse
}

func repeatFields(n int, field func(i int) string) string {
	var b strings.Builder
	b.WriteString("{")
	for i := range n {
		b.WriteString(" ")
		b.WriteString(field(i))
	}
	b.WriteString(" }")
	return b.String()
}

const (
	onQuery = iota
	onCommand
)

// graphQL posts a document to the query or command service, anonymously.
func graphQL(service int, query string, vars map[string]any) func(*testing.T, target) outcome {
	return graphQLAs(service, "", query, vars)
}

// firstError reads a GraphQL response (or a list of errors) and returns its
// first error's code, field and limit.
func firstError(t *testing.T, r io.Reader) outcome {
	t.Helper()
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	type gqlErr struct {
		Message    string
		Extensions struct{ Code, Field, Limit string }
	}
	var errs []gqlErr
	if bytes.HasPrefix(bytes.TrimSpace(raw), []byte("[")) {
		err = json.Unmarshal(raw, &errs)
	} else {
		var res struct{ Errors []gqlErr }
		err = json.Unmarshal(raw, &res)
		errs = res.Errors
	}
	if err != nil {
		t.Fatalf("not a GraphQL answer: %.300s: %v", raw, err)
	}
	if len(errs) == 0 {
		return outcome{Code: "none"}
	}
	e := errs[0].Extensions
	return outcome{Code: e.Code, Field: e.Field, Limit: e.Limit}
}

// trickledBody announces a body and sends it a byte every 200ms.
func trickledBody(t *testing.T, s target) outcome {
	conn, err := net.Dial("tcp", s.queryAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	body := `{"query":"{ __typename }"}` + strings.Repeat(" ", 500)
	fmt.Fprintf(conn, "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	go func() {
		for i := range len(body) {
			if _, err := conn.Write([]byte{body[i]}); err != nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	return readAnswer(t, conn)
}

// slowHeaders sends a request's headers a byte every 200ms, forever.
func slowHeaders(t *testing.T, s target) outcome {
	conn, err := net.Dial("tcp", s.queryAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	go func() {
		head := "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + strings.Repeat("a", 10_000)
		for i := range len(head) {
			if _, err := conn.Write([]byte{head[i]}); err != nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	}()
	// Go's server hangs up, or answers a plain-text 400 or 408 and hangs
	// up, depending on where in the request the timeout fell.
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("the server still holds a slow sender after a minute")
	case err != nil:
		return outcome{Code: "cut"}
	}
	res.Body.Close()
	if res.StatusCode == http.StatusBadRequest || res.StatusCode == http.StatusRequestTimeout {
		return outcome{Code: "cut", Status: res.StatusCode}
	}
	return outcome{Status: res.StatusCode}
}

func hugeHeaders(t *testing.T, s target) outcome {
	req, _ := http.NewRequest(http.MethodGet, "http://"+s.queryAddr+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 128<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	return outcome{Status: res.StatusCode}
}

// readAnswer reads one HTTP response from conn: its status and first
// error, or "closed" if the server hung up without one. A minute is the
// test's own bound, not a speed goal.
func readAnswer(t *testing.T, conn net.Conn) outcome {
	_ = conn.SetReadDeadline(time.Now().Add(time.Minute))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatal("the server still holds a slow sender after a minute")
	case err != nil:
		return outcome{Code: "closed"}
	}
	defer res.Body.Close()
	o := firstError(t, res.Body)
	o.Status = res.StatusCode
	return o
}

// wsSubscribe opens a WebSocket with protocol, subscribes with query, and
// returns the first error or the close code.
func wsSubscribe(protocol, query string, vars map[string]any) func(*testing.T, target) outcome {
	return func(t *testing.T, s target) outcome {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		conn, _, err := websocket.Dial(ctx, "ws://"+s.queryAddr+"/graphql", &websocket.DialOptions{Subprotocols: []string{protocol}})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.CloseNow()
		conn.SetReadLimit(4 << 20)
		if err := wsjson.Write(ctx, conn, map[string]any{"type": "connection_init"}); err != nil {
			t.Fatal(err)
		}
		start := "subscribe"
		if protocol == "graphql-ws" {
			start = "start"
		}
		var ack struct{ Type string }
		if err := wsjson.Read(ctx, conn, &ack); err != nil || ack.Type != "connection_ack" {
			t.Fatalf("connection_ack: %q %v", ack.Type, err)
		}
		// The write may fail when the server closes first; the read tells.
		_ = wsjson.Write(ctx, conn, map[string]any{"id": "1", "type": start, "payload": map[string]any{"query": query, "variables": vars}})
		for {
			var msg struct {
				Type    string
				Payload json.RawMessage
			}
			if err := wsjson.Read(ctx, conn, &msg); err != nil {
				if code := websocket.CloseStatus(err); code != -1 {
					return outcome{Code: fmt.Sprintf("close %d", code)}
				}
				if ctx.Err() != nil {
					t.Fatal("no answer to a subscribe within a minute")
				}
				return outcome{Code: "closed"}
			}
			switch msg.Type {
			case "error", "next", "data":
				return firstError(t, bytes.NewReader(msg.Payload))
			case "complete":
				return outcome{Code: "none"}
			}
		}
	}
}

// sseSubscribe subscribes over SSE and returns the first event's error.
func sseSubscribe(query string, vars map[string]any) func(*testing.T, target) outcome {
	return func(t *testing.T, s target) outcome {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		body, _ := json.Marshal(map[string]any{"query": query, "variables": vars})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.query, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Accept", "text/event-stream")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
				o := firstError(t, strings.NewReader(data))
				o.Status = res.StatusCode
				return o
			}
		}
		t.Fatalf("SSE stream ended without an event: %v", sc.Err())
		return outcome{}
	}
}

// Streams live longer than every HTTP timeout: the read, write and request
// timeouts are for ordinary requests, and a subscriber over WebSocket or
// SSE still gets a change made after all of them have passed.
func TestStreamsOutliveHTTPTimeouts(t *testing.T) {
	env, commandURL, queryURL := stack(t, map[string]string{
		"SPLITSTREAM_HTTP_READ_HEADER_TIMEOUT": "1s", "SPLITSTREAM_HTTP_READ_TIMEOUT": "1s", "SPLITSTREAM_HTTP_WRITE_TIMEOUT": "3s",
		"SPLITSTREAM_QUERY_TIMEOUT": "2s", "SPLITSTREAM_COMMAND_TIMEOUT": "2s", "SPLITSTREAM_CONSISTENCY_TIMEOUT": "1500ms",
		"SPLITSTREAM_WS_KEEPALIVE": "1h", // no pings to refresh anything
	})
	var c struct{ CreateProduct struct{ ID, Token string } }
	if err := gql(commandURL, `mutation { createProduct(input: {name: "Streamed", category: "c", priceCents: 100, currency: "EUR", stock: 1}) { id token } }`, nil, &c); err != nil {
		t.Fatal(err)
	}
	id := c.CreateProduct.ID
	if err := gql(queryURL, `query($id: ID!, $t: String) { product(id: $id, consistentWith: $t) { id } }`, map[string]any{"id": id, "t": c.CreateProduct.Token}, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const sub = `subscription($id: ID!) { productChanged(id: $id) { name } }`

	ws, _, err := websocket.Dial(ctx, "ws://"+env["SPLITSTREAM_QUERY_ADDR"]+"/graphql", &websocket.DialOptions{Subprotocols: []string{"graphql-transport-ws"}})
	if err != nil {
		t.Fatal(err)
	}
	defer ws.CloseNow()
	_ = wsjson.Write(ctx, ws, map[string]any{"type": "connection_init"})
	var ack struct{ Type string }
	if err := wsjson.Read(ctx, ws, &ack); err != nil || ack.Type != "connection_ack" {
		t.Fatalf("ack %q %v", ack.Type, err)
	}
	if err := wsjson.Write(ctx, ws, map[string]any{"id": "1", "type": "subscribe", "payload": map[string]any{"query": sub, "variables": map[string]any{"id": id}}}); err != nil {
		t.Fatal(err)
	}

	body, _ := json.Marshal(map[string]any{"query": sub, "variables": map[string]any{"id": id}})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, queryURL, bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "text/event-stream")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	events := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			if data, ok := strings.CutPrefix(sc.Text(), "data:"); ok {
				events <- data
			}
		}
		close(events)
	}()

	time.Sleep(4 * time.Second) // past the read, write and request timeouts
	var r struct{ RenameProduct struct{ Token string } }
	if err := gql(commandURL, `mutation($id: ID!) { renameProduct(input: {id: $id, name: "Renamed late"}) { token } }`, map[string]any{"id": id}, &r); err != nil {
		t.Fatal(err)
	}
	for {
		var msg struct {
			Type    string
			Payload struct {
				Data struct{ ProductChanged struct{ Name string } }
			}
		}
		if err := wsjson.Read(ctx, ws, &msg); err != nil {
			t.Fatalf("the WebSocket subscription ended after the HTTP timeouts: %v", err)
		}
		if msg.Type == "next" && msg.Payload.Data.ProductChanged.Name == "Renamed late" {
			break
		}
	}
	for data := range events {
		if strings.Contains(data, "Renamed late") {
			return
		}
	}
	t.Fatal("the SSE subscription ended after the HTTP timeouts without the change")
}

// distinctBigQueries sends n valid documents, each different and each
// carrying an almost 1 MiB literal, as one client after another would: a
// cache of parsed queries that kept them all would hold n MiB.
func distinctBigQueries(n int) func(*testing.T, target) outcome {
	return func(t *testing.T, s target) outcome {
		var o outcome
		pad := strings.Repeat("x", 1_000_000)
		for i := range n {
			o = graphQL(onQuery, fmt.Sprintf(`{ products(search: "%d%s") { totalCount } }`, i, pad), nil)(t, s)
			if o.Code != "BAD_USER_INPUT" {
				return o
			}
		}
		return o
	}
}
