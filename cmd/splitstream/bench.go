package main

import (
	"context"
	"flag"
	"io"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/bench"
)

// benchFlags: splitstream bench [--quick] [--json FILE] [flags] [suite...],
// against a running stack; command-history needs only Postgres. The suites
// live in internal/bench; this wires them to the process's servers.
func benchFlags(fs *flag.FlagSet) func(context.Context, *app) error {
	f := bench.BindFlags(fs)
	return func(ctx context.Context, a *app) error {
		return bench.Run(ctx, f, fs.Args(), a.benchStack(), a.out)
	}
}

// benchStack is the process's servers and its rebuild, for the bench.
func (a *app) benchStack() bench.Stack {
	return bench.Stack{
		DatabaseURL: a.cfg.DatabaseURL, AMQPURL: a.cfg.AMQPURL, JWTSecret: a.cfg.JWTSecret,
		IndexPrefix: a.cfg.IndexPrefix, Refresh: a.cfg.RefreshInterval, Log: a.log,
		Postgres: a.postgres, Elasticsearch: a.elasticsearch,
		Rebuild: func(ctx context.Context, pool *pgxpool.Pool, es *elasticsearch.Client, prefix string, progress io.Writer) (int64, time.Duration, float64, error) {
			r := rebuilder{pool: pool, es: es, indices: elastic.NewIndices(es, prefix, a.cfg.RefreshInterval),
				log: a.log, progress: progress, batch: 5000}
			stats, err := r.run(ctx, elastic.Models, false)
			return stats.events, stats.took, stats.rate(), err
		},
	}
}
