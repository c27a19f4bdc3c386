package ops_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/ops"
)

// What a public /readyz may say about a failed check: a fixed list.
var publicReasons = map[string]bool{
	"cannot connect (connection refused)":        true,
	"cannot connect (timed out)":                 true,
	"cannot connect (host not found)":            true,
	"cannot connect (authentication failed)":     true,
	"cannot connect (database or vhost missing)": true,
	"cannot connect":                             true,
	"unavailable":                                true,
}

func TestPublicReason(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(10, 1, 2, 3), Port: 5432},
		Err: &os.SyscallError{Syscall: "connect", Err: syscall.ECONNREFUSED}}
	for _, c := range []struct {
		name string
		err  error
		want string
	}{
		{"dial refused, wrapped", fmt.Errorf("ping: %w", refused), "cannot connect (connection refused)"},
		{"postgres one-liner", errors.New("DATABASE_URL: cannot connect to db.internal:5432 (connection refused) — is Postgres running? Try: make services"), "cannot connect (connection refused)"},
		{"postgres auth", errors.New("DATABASE_URL: cannot connect to db.internal:5432 (authentication failed) — is Postgres running?"), "cannot connect (authentication failed)"},
		{"postgres database", errors.New("DATABASE_URL: cannot connect to db.internal:5432 (database does not exist)"), "cannot connect (database or vhost missing)"},
		{"deadline", fmt.Errorf("ping 10.1.2.3:5432: %w", context.DeadlineExceeded), "cannot connect (timed out)"},
		{"dns", &net.DNSError{Err: "no such host", Name: "es-node-7.prod.internal"}, "cannot connect (host not found)"},
		{"rabbitmq lost", errors.New(`rabbitmq unreachable: Exception (501) Reason: "read tcp 10.0.0.5:40000->10.0.0.6:5672: i/o timeout"`), "cannot connect (timed out)"},
		{"rabbitmq access", errors.New(`rabbitmq unreachable: Exception (403) Reason: "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN"`), "cannot connect (authentication failed)"},
		{"rabbitmq gone", errors.New("rabbitmq: not connected"), "cannot connect"},
		{"elasticsearch answer", errors.New(`elasticsearch answered 503 Service Unavailable: {"error":"node es-node-7 (10.0.0.7:9300) left"}`), "unavailable"},
		{"anything else", errors.New("projector lag at 10.0.0.8"), "unavailable"},
	} {
		got := ops.PublicReason(c.err)
		if got != c.want {
			t.Errorf("%s: PublicReason = %q, want %q", c.name, got, c.want)
		}
		if !publicReasons[got] {
			t.Errorf("%s: %q is not on the public list", c.name, got)
		}
	}
}

// A public /readyz names the failed dependency and a generic reason; the
// operator's /readyz and the log have the whole error.
func TestPublicReadyzHidesAddresses(t *testing.T) {
	detail := errors.New("DATABASE_URL: cannot connect to db.internal:5432 (connection refused) — is Postgres running?")
	failing := true
	checks := []ops.Check{
		{Name: "postgres", Fn: func(context.Context) error {
			if failing {
				return detail
			}
			return nil
		}},
		{Name: "rabbitmq", Fn: func(context.Context) error { return nil }},
	}
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	reg := prometheus.NewRegistry()

	readyz := func(h http.Handler, public bool) (int, string, map[string]string) {
		t.Helper()
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body struct {
			Status string
			Checks map[string]string
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("readyz body %q: %v", rec.Body.String(), err)
		}
		if public && (strings.Contains(rec.Body.String(), "db.internal") || strings.Contains(rec.Body.String(), "5432")) {
			t.Errorf("a public /readyz says %s", rec.Body.String())
		}
		return rec.Code, body.Status, body.Checks
	}

	public := ops.PublicMux(checks, reg, log)
	for range 3 { // logged once, not per probe
		code, status, got := readyz(public, true)
		if code != http.StatusServiceUnavailable || status != "unavailable" {
			t.Errorf("public /readyz = %d %q, want 503 unavailable", code, status)
		}
		if got["postgres"] != "cannot connect (connection refused)" || got["rabbitmq"] != "ok" {
			t.Errorf("public checks = %v", got)
		}
	}
	if n := strings.Count(logs.String(), "readiness check failed"); n != 1 || !strings.Contains(logs.String(), "db.internal:5432") {
		t.Errorf("log has %d failures, want 1 with the detail:\n%s", n, logs.String())
	}

	code, _, got := readyz(ops.Mux(checks, reg), false)
	if code != http.StatusServiceUnavailable || got["postgres"] != detail.Error() {
		t.Errorf("admin /readyz = %d %v, want the whole error", code, got)
	}

	failing = false
	if code, status, got := readyz(public, true); code != http.StatusOK || status != "ok" || got["postgres"] != "ok" {
		t.Errorf("after recovery public /readyz = %d %q %v", code, status, got)
	}
	if !strings.Contains(logs.String(), "readiness check ok again") {
		t.Errorf("recovery not logged:\n%s", logs.String())
	}
}

// A check that returns a Note stays green and shows the note; any other
// error turns /readyz red.
func TestReadyzNotes(t *testing.T) {
	get := func(checks []ops.Check) (int, map[string]any) {
		rec := httptest.NewRecorder()
		ops.Mux(checks, prometheus.NewRegistry()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		return rec.Code, body
	}
	note := ops.Check{Name: "projector", Fn: func(context.Context) error { return ops.Note("3 dead letters waiting") }}
	code, body := get([]ops.Check{note})
	if code != http.StatusOK || body["checks"].(map[string]any)["projector"] != "ok: 3 dead letters waiting" {
		t.Errorf("with a note: %d %v", code, body)
	}
	bad := ops.Check{Name: "es", Fn: func(context.Context) error { return errors.New("down") }}
	if code, body := get([]ops.Check{note, bad}); code != http.StatusServiceUnavailable {
		t.Errorf("with a failure: %d %v", code, body)
	}
}
