// Package postgres owns everything Splitstream keeps in Postgres: the event
// store, command idempotency, the relay's source and checkpoints, and the
// schema migrations that create them.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Session guards every app connection gets, unless DATABASE_URL sets them
// (for example ?statement_timeout=0):
//
//   - statement_timeout 30s: the app's longest statements (the relay's
//     backlog count, capped at a million rows; a rebuild's page or count)
//     take well under a second, so 30 s ends only a runaway, and a statement
//     never holds a connection, its locks and the relay's horizon forever.
//   - idle_in_transaction_session_timeout 5s: the app never waits inside a
//     transaction except for its own decide between two pipelines
//     (microseconds), and a session idle in a transaction holds the
//     transaction horizon, which stops the relay for everyone. Five seconds
//     is also when the relay starts to report a held horizon.
//
// Migrations run without them (Migrate): a schema change may take long.
var sessionGuards = map[string]string{
	"statement_timeout":                   "30s",
	"idle_in_transaction_session_timeout": "5s",
}

// Open connects a pool to url and checks that the server answers. Every
// session gets sessionGuards.
func Open(ctx context.Context, url string, maxConns int32) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if maxConns > 0 {
		cfg.MaxConns = maxConns
	}
	for k, v := range sessionGuards {
		if _, set := cfg.ConnConfig.RuntimeParams[k]; !set {
			cfg.ConnConfig.RuntimeParams[k] = v
		}
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, Unreachable(cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	return pool, nil
}

// Unreachable turns a connection failure into the one line a person needs.
func Unreachable(host string, port uint16, err error) error {
	reason := "unreachable"
	var op *net.OpError
	switch {
	case errors.As(err, &op) && strings.Contains(op.Err.Error(), "refused"):
		reason = "connection refused"
	case strings.Contains(err.Error(), "refused"):
		reason = "connection refused"
	case strings.Contains(err.Error(), "does not exist"):
		reason = "database does not exist"
	case strings.Contains(err.Error(), "password") || strings.Contains(err.Error(), "authentication"):
		reason = "authentication failed"
	case errors.Is(err, context.DeadlineExceeded):
		reason = "timed out"
	}
	return fmt.Errorf("DATABASE_URL: cannot connect to %s:%d (%s) — is Postgres running? Try: make services", host, port, reason)
}

// Migrate brings the schema up to date with the embedded migrations, on
// sessions of its own without the app's timeouts: a migration may rewrite
// a large table.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	cc := pool.Config().ConnConfig.Copy()
	for k := range sessionGuards {
		cc.RuntimeParams[k] = "0"
	}
	db := stdlib.OpenDB(*cc)
	defer db.Close()
	dir, err := fs.Sub(migrations, "migrations")
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	provider, err := goose.NewProvider(goose.DialectPostgres, db, dir)
	if err != nil {
		return fmt.Errorf("migrations: %w", err)
	}
	results, err := provider.Up(ctx)
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	for _, r := range results {
		log.Info("migration applied", "version", r.Source.Version, "file", r.Source.Path, "took", r.Duration)
	}
	return nil
}
