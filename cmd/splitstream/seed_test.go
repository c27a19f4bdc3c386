package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"

	"github.com/splitstream/splitstream/internal/testenv"
)

// seed goes through the command layer; the same seed gives the same data,
// and running it again appends nothing.
func TestSeedIsReproducible(t *testing.T) {
	dbURL, pool := testenv.Postgres(t)
	env := func(k string) string {
		if k == "DATABASE_URL" {
			return dbURL
		}
		return ""
	}
	args := []string{"seed", "--products", "30", "--reviews", "60", "--orders", "10", "--seed", "7"}
	var out bytes.Buffer
	if code := run(context.Background(), args, env, &out, io.Discard); code != 0 {
		t.Fatalf("seed exited %d: %s", code, out.String())
	}
	if !strings.Contains(out.String(), "30 products, 60 reviews, 10 customers, 10 orders") || !strings.Contains(out.String(), "0 failed") {
		t.Fatalf("summary: %s", out.String())
	}
	count := func() (n int) {
		if err := pool.QueryRow(context.Background(), `SELECT count(*) FROM events`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	names := func() string {
		rows, err := pool.Query(context.Background(), `SELECT data->>'name' FROM events WHERE event_type = 'ProductCreated' ORDER BY data->>'name'`)
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var all []string
		for rows.Next() {
			var n string
			_ = rows.Scan(&n)
			all = append(all, n)
		}
		return strings.Join(all, "|")
	}
	first, firstNames := count(), names()
	if first != 110 {
		t.Fatalf("seed appended %d events, want 30 + 60 + 10 customers + 10", first)
	}
	if code := run(context.Background(), args, env, io.Discard, io.Discard); code != 0 {
		t.Fatalf("second seed exited %d", code)
	}
	if again := count(); again != first || names() != firstNames {
		t.Fatalf("a second run with the same seed changed the data: %d events, was %d", again, first)
	}
	if code := run(context.Background(), []string{"seed", "--products", "-1"}, env, io.Discard, io.Discard); code == 0 {
		t.Fatal("a negative count was accepted")
	}
}
