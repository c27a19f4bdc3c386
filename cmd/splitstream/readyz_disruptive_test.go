//go:build disruptive

package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/splitstream/splitstream/internal/testenv"
)

// Stopping Postgres turns the command service's /readyz red with a generic
// reason, and green again when it returns, with no restart.
func TestDisruptiveReadyzFollowsPostgres(t *testing.T) {
	dbURL, _ := testenv.Postgres(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	env := map[string]string{"DATABASE_URL": dbURL, "SPLITSTREAM_COMMAND_ADDR": addr,
		"SPLITSTREAM_JWT_SECRET": testJWTSecret, "SPLITSTREAM_TOKEN_SECRET": testTokenSecret}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"command"}, func(k string) string { return env[k] }, io.Discard, io.Discard)
	}()
	t.Cleanup(func() {
		testenv.Run(t, "../../scripts/services", "up", "postgres") // idempotent
		cancel()
		<-done
	})

	readyz := func() (int, map[string]any) {
		res, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		var body map[string]any
		_ = json.NewDecoder(res.Body).Decode(&body)
		return res.StatusCode, body
	}
	waitFor := func(want int, what string) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			if code, body := readyz(); code == want {
				return body
			}
			time.Sleep(200 * time.Millisecond)
		}
		t.Fatalf("/readyz never answered %d %s", want, what)
		return nil
	}
	waitFor(http.StatusOK, "before the stop")
	testenv.Run(t, "../../scripts/services", "down", "postgres")
	body := waitFor(http.StatusServiceUnavailable, "while Postgres is stopped")
	checks, _ := body["checks"].(map[string]any)
	reason, _ := checks["postgres"].(string)
	// The public listener names the dependency (the check) and a generic
	// reason, never the server's address; the log has the rest.
	if !strings.HasPrefix(reason, "cannot connect") || strings.Contains(reason, "127.0.0.1") || strings.Contains(reason, "5432") {
		t.Fatalf("postgres check says %q, want a generic reason", reason)
	}
	testenv.Run(t, "../../scripts/services", "up", "postgres")
	waitFor(http.StatusOK, "after Postgres returned")
	select {
	case code := <-done:
		t.Fatalf("splitstream exited (%d) while Postgres was away", code)
	default:
	}
}
