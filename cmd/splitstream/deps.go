package main

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/rabbitmq"
)

// dialTimeout bounds the first connection to each server: a role that cannot
// reach one within it fails at start-up with the server named.
const dialTimeout = 10 * time.Second

// deps opens each server once, on first use, for every role and command of
// the process, with the same first-dial timeout and log line, and closes
// what it opened in reverse order (a publisher's broker connection goes
// before the pool whose rows it relays).
type deps struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	pool   *pgxpool.Pool
	rabbit *rabbitmq.Conn
	es     *elasticsearch.Client
	closes []func() // in opening order
}

// open runs dial under the first-dial timeout, once per server, and logs it.
func open[T comparable](ctx context.Context, d *deps, held *T, server string, dial func(context.Context) (T, error), closeFn func(T)) (T, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var zero T
	if *held != zero {
		return *held, nil
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	v, err := dial(ctx)
	if err != nil {
		return zero, err
	}
	*held = v
	if closeFn != nil {
		d.closes = append(d.closes, func() { closeFn(v) })
	}
	d.log.Debug("connected", "server", server)
	return v, nil
}

// postgres is the process's pool (SPLITSTREAM_PG_MAX_CONNS connections).
func (d *deps) postgres(ctx context.Context) (*pgxpool.Pool, error) {
	return open(ctx, d, &d.pool, "postgres", func(dctx context.Context) (*pgxpool.Pool, error) {
		return postgres.Open(dctx, d.cfg.DatabaseURL, int32(d.cfg.PGMaxConns))
	}, (*pgxpool.Pool).Close)
}

// rabbitmq is the process's broker connection, redialled while it lives.
func (d *deps) rabbitmq(ctx context.Context) (*rabbitmq.Conn, error) {
	return open(ctx, d, &d.rabbit, "rabbitmq", func(dctx context.Context) (*rabbitmq.Conn, error) {
		return rabbitmq.Dial(dctx, d.cfg.AMQPURL, "splitstream", d.log)
	}, (*rabbitmq.Conn).Close)
}

// elasticsearch is the process's client; it holds no connection to close.
func (d *deps) elasticsearch(ctx context.Context) (*elasticsearch.Client, error) {
	return open(ctx, d, &d.es, "elasticsearch", func(dctx context.Context) (*elasticsearch.Client, error) {
		return elastic.Open(dctx, d.cfg.ElasticsearchURL)
	}, nil)
}

// close closes what was opened, the last opened first.
func (d *deps) close() {
	d.mu.Lock()
	defer d.mu.Unlock()
	for i := len(d.closes) - 1; i >= 0; i-- {
		d.closes[i]()
	}
	d.closes = nil
}
