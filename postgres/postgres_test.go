package postgres_test

import (
	"context"
	"log/slog"
	"net/url"
	"testing"

	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
)

// Every app session carries the guards; DATABASE_URL may override them.
func TestSessionsAreGuarded(t *testing.T) {
	dbURL, pool := testenv.Postgres(t)
	ctx := context.Background()
	var statement, idle string
	if err := pool.QueryRow(ctx, `SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')`).
		Scan(&statement, &idle); err != nil {
		t.Fatal(err)
	}
	if statement != "30s" || idle != "5s" {
		t.Fatalf("statement_timeout %s, idle_in_transaction_session_timeout %s; want 30s and 5s", statement, idle)
	}
	u, _ := url.Parse(dbURL)
	q := u.Query()
	q.Set("statement_timeout", "0")
	u.RawQuery = q.Encode()
	own, err := postgres.Open(ctx, u.String(), 1)
	if err != nil {
		t.Fatal(err)
	}
	defer own.Close()
	if err := own.QueryRow(ctx, `SELECT current_setting('statement_timeout'), current_setting('idle_in_transaction_session_timeout')`).
		Scan(&statement, &idle); err != nil {
		t.Fatal(err)
	}
	if statement != "0" || idle != "5s" {
		t.Fatalf("with ?statement_timeout=0: %s and %s, want 0 and 5s", statement, idle)
	}
	// Migrations run without the guards, and again changes nothing.
	if err := postgres.Migrate(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatal(err)
	}
}
