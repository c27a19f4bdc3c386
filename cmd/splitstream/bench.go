package main

import (
	"context"
	"flag"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/bench"
	"github.com/splitstream/splitstream/ops"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/rabbitmq"
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
		DatabaseURL: a.cfg.DatabaseURL, AMQPURL: a.cfg.AMQPURL, ElasticsearchURL: a.cfg.ElasticsearchURL, JWTSecret: a.cfg.JWTSecret,
		IndexPrefix: a.cfg.IndexPrefix, Refresh: a.cfg.RefreshInterval, Log: a.log,
		Postgres: a.postgres, Elasticsearch: a.elasticsearch,
		Rebuild: func(ctx context.Context, pool *pgxpool.Pool, es *elasticsearch.Client, prefix string, progress io.Writer) (int64, time.Duration, float64, error) {
			r := rebuilder{pool: pool, es: es, indices: elastic.NewIndices(es, prefix, a.cfg.RefreshInterval),
				log: a.log, progress: progress, batch: 5000, lanes: a.cfg.ProjectorLanes}
			stats, err := r.run(ctx, elastic.Models, false)
			return stats.events, stats.took, stats.rate(), err
		},
		Version:       version,
		CommandServer: a.localCommand,
		TraceProjector: func(p *projector.Projector, t trace.Tracer) rabbitmq.ProjectorHandler {
			return tracedProjector{p, t}
		},
	}
}

// localCommand serves a command role of its own (tracing with tp; nil is
// off) on a loopback port and returns its GraphQL URL: the bench's traced
// write suite runs one of each side by side.
func (a *app) localCommand(ctx context.Context, tp trace.TracerProvider) (string, func(), error) {
	b := newApp(a.cfg, a.log, a.out, a.err)
	b.tp = tp
	r, err := b.commandRole(ctx)
	if err != nil {
		b.close()
		return "", nil, err
	}
	mux := ops.PublicMux(r.checks, b.reg, b.log)
	r.routes(mux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.close()
		return "", nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String() + "/graphql", func() { _ = srv.Close(); b.close() }, nil
}
