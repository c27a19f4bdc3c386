package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/ops"
)

// config parses env the way main does.
func config(t *testing.T, env map[string]string) Config {
	t.Helper()
	cfg, err := bindConfig(flagSet(), func(k string) string { return env[k] })()
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// The admin listener is for operators: loopback unless configured, and no
// profiler unless asked for.
func TestAdminListenerDefaults(t *testing.T) {
	cfg := config(t, nil)
	if cfg.AdminAddr != "127.0.0.1:8070" || !loopback(cfg.AdminAddr) {
		t.Errorf("admin address defaults to %q, want 127.0.0.1:8070", cfg.AdminAddr)
	}
	if cfg.PProf || cfg.Dev {
		t.Errorf("pprof %v, dev %v by default; want both off", cfg.PProf, cfg.Dev)
	}
	for addr, want := range map[string]bool{
		"127.0.0.1:8070": true, "[::1]:8070": true, "localhost:8070": true, "127.0.0.2:1": true,
		":8070": false, "0.0.0.0:8070": false, "[::]:8070": false, "10.0.0.1:8070": false, "nonsense": false,
	} {
		if got := loopback(addr); got != want {
			t.Errorf("loopback(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestAdminProfilerOnlyWhenEnabled(t *testing.T) {
	for _, on := range []bool{false, true} {
		cfg := config(t, map[string]string{"SPLITSTREAM_PPROF": map[bool]string{false: "false", true: "true"}[on]})
		a := newApp(cfg, testenv.Logger(t), io.Discard, io.Discard)
		srv := httptest.NewServer(a.adminMux(nil))
		for _, path := range []string{"/debug/pprof/", "/debug/pprof/cmdline"} {
			res, err := http.Get(srv.URL + path)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if want := map[bool]int{false: http.StatusNotFound, true: http.StatusOK}[on]; res.StatusCode != want {
				t.Errorf("pprof %v: GET %s = %d, want %d", on, path, res.StatusCode, want)
			}
		}
		srv.Close()
	}
}

// The API listeners' /readyz and /metrics name no host or address of the
// servers behind them; the admin listener's /readyz has the whole reason.
func TestPublicListenersNameNoAddresses(t *testing.T) {
	env, _, _ := stack(t)
	var hosts []string
	for _, k := range []string{"DATABASE_URL", "AMQP_URL"} {
		u, err := url.Parse(env[k])
		if err != nil {
			t.Fatal(err)
		}
		hosts = append(hosts, u.Host)
	}
	hosts = append(hosts, "127.0.0.1", "localhost", "[::1]", strings.TrimPrefix(testenv.ElasticsearchURL(), "http://"),
		env["SPLITSTREAM_ADMIN_ADDR"], env["SPLITSTREAM_COMMAND_ADDR"], env["SPLITSTREAM_QUERY_ADDR"])
	for _, listener := range []string{"SPLITSTREAM_COMMAND_ADDR", "SPLITSTREAM_QUERY_ADDR"} {
		for _, path := range []string{"/readyz", "/metrics"} {
			res, err := http.Get("http://" + env[listener] + path)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != http.StatusOK || len(body) == 0 {
				t.Fatalf("%s %s = %d", listener, path, res.StatusCode)
			}
			for _, h := range hosts {
				if strings.Contains(string(body), h) {
					t.Errorf("%s %s names %q", listener, path, h)
				}
			}
		}
	}

	// Real failures: servers on ports where nothing listens.
	closed := freeAddr(t)
	pool, err := pgxpool.New(context.Background(), "postgres://postgres@"+closed+"/splitstream?sslmode=disable&connect_timeout=2")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	es, err := elastic.New("http://" + closed)
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	a := newApp(config(t, nil), slog.New(slog.NewTextHandler(&logs, nil)), io.Discard, io.Discard)
	checks := []ops.Check{a.pgCheck(pool), a.esCheck(es)}
	readyz := func(h http.Handler) (string, map[string]string) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body struct{ Checks map[string]string }
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || rec.Code != http.StatusServiceUnavailable {
			t.Fatalf("/readyz = %d %q (%v)", rec.Code, rec.Body.String(), err)
		}
		return rec.Body.String(), body.Checks
	}
	raw, got := readyz(ops.PublicMux(checks, prometheus.NewRegistry(), a.log))
	if got["postgres"] != "cannot connect (connection refused)" || got["elasticsearch"] != "cannot connect (connection refused)" {
		t.Errorf("public checks = %v", got)
	}
	if _, port, _ := strings.Cut(closed, ":"); strings.Contains(raw, port) || strings.Contains(raw, "127.0.0.1") {
		t.Errorf("public /readyz names the address: %s", raw)
	}
	if !strings.Contains(logs.String(), closed) {
		t.Errorf("the log lacks the address:\n%s", logs.String())
	}
	_, full := readyz(a.adminMux(checks))
	if !strings.Contains(full["postgres"], closed) || !strings.Contains(full["elasticsearch"], "connection refused") {
		t.Errorf("admin checks = %v, want the whole reasons", full)
	}
}

// When a server goes away under running roles, the command service's public
// /readyz names the dependency and a generic reason, and the relay's admin
// listener (loopback) the whole one. The database is dropped, not the
// server stopped: other tests share the server.
func TestReadyzDetailOnlyOnTheAdminListener(t *testing.T) {
	dbURL, pool := testenv.Postgres(t)
	env := map[string]string{
		"DATABASE_URL": dbURL, "AMQP_URL": testenv.RabbitMQ(t),
		"SPLITSTREAM_COMMAND_ADDR": freeAddr(t), "SPLITSTREAM_ADMIN_ADDR": freeAddr(t),
		"SPLITSTREAM_JWT_SECRET": testJWTSecret, "SPLITSTREAM_TOKEN_SECRET": testTokenSecret,
	}
	a := testApp(t, env)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.runRoles(ctx, roleCommand, roleRelay) }()
	t.Cleanup(func() { cancel(); <-done })

	readyz := func(addr string) (int, string) {
		res, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0, ""
		}
		defer res.Body.Close()
		body, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(body)
	}
	waitFor := func(addr string, want int) string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			code, body := readyz(addr)
			if code == want {
				return body
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s/readyz never answered %d (last %d %s)", addr, want, code, body)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitFor(env["SPLITSTREAM_COMMAND_ADDR"], http.StatusOK)
	waitFor(env["SPLITSTREAM_ADMIN_ADDR"], http.StatusOK)

	u, _ := url.Parse(dbURL)
	name := strings.TrimPrefix(u.Path, "/")
	pool.Close()
	admin, err := pgxpool.New(context.Background(), testenv.DatabaseURL())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if _, err := admin.Exec(context.Background(), "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
		t.Fatal(err)
	}

	// The first failures are the dropped sessions ("cannot connect"); the
	// reason settles on the missing database once the pool redials.
	var public string
	for deadline := time.Now().Add(60 * time.Second); ; {
		public = waitFor(env["SPLITSTREAM_COMMAND_ADDR"], http.StatusServiceUnavailable)
		var body struct{ Checks map[string]string }
		if err := json.Unmarshal([]byte(public), &body); err != nil {
			t.Fatal(err)
		}
		got := body.Checks["postgres"]
		if got == "cannot connect (database or vhost missing)" {
			break
		}
		if got != "cannot connect" || time.Now().After(deadline) {
			t.Fatalf("public postgres check says %q", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, leak := range []string{u.Host, u.Hostname(), name} {
		if strings.Contains(public, leak) {
			t.Errorf("public /readyz names %q: %s", leak, public)
		}
	}
	full := waitFor(env["SPLITSTREAM_ADMIN_ADDR"], http.StatusServiceUnavailable)
	if !strings.Contains(full, u.Host) || !strings.Contains(full, "does not exist") {
		t.Errorf("admin /readyz lacks the detail: %s", full)
	}
}

// A command service running alone answers readiness on its own port and
// has no admin listener, unless the profiler is on: then the admin
// listener serves it, so that the process can be profiled.
func TestCommandAloneOpensTheAdminListenerForTheProfiler(t *testing.T) {
	dbURL, _ := testenv.Postgres(t)
	for _, on := range []bool{false, true} {
		env := map[string]string{"DATABASE_URL": dbURL, "SPLITSTREAM_COMMAND_ADDR": freeAddr(t), "SPLITSTREAM_ADMIN_ADDR": freeAddr(t),
			"SPLITSTREAM_JWT_SECRET": testJWTSecret, "SPLITSTREAM_TOKEN_SECRET": testTokenSecret,
			"SPLITSTREAM_PPROF": map[bool]string{false: "false", true: "true"}[on]}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan int, 1)
		var stderr lockedBuffer
		go func() {
			done <- run(ctx, []string{"command"}, func(k string) string { return env[k] }, io.Discard, &stderr)
		}()
		deadline := time.Now().Add(30 * time.Second)
		for {
			res, err := http.Get("http://" + env["SPLITSTREAM_COMMAND_ADDR"] + "/readyz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("pprof %v: command service not ready (%v): %s", on, err, stderr.tail(500))
			}
			time.Sleep(50 * time.Millisecond)
		}
		res, err := http.Get("http://" + env["SPLITSTREAM_ADMIN_ADDR"] + "/debug/pprof/cmdline")
		switch {
		case on && err != nil:
			t.Errorf("pprof on: the admin listener does not answer: %v", err)
		case on && res.StatusCode != http.StatusOK:
			t.Errorf("pprof on: GET /debug/pprof/cmdline = %d, want 200", res.StatusCode)
		case !on && err == nil:
			t.Errorf("pprof off: a command service alone opened the admin listener (GET /debug/pprof/cmdline = %d)", res.StatusCode)
		}
		if err == nil {
			res.Body.Close()
		}
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("pprof %v: exit code %d: %s", on, code, stderr.tail(500))
		}
	}
}
