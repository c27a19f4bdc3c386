package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"go.opentelemetry.io/otel/trace"
	"golang.org/x/sync/errgroup"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/ops"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/rabbitmq"
)

const (
	roleCommand   = "command"
	roleRelay     = "relay"
	roleProjector = "projector"
	roleSaga      = "saga"
	roleQuery     = "query"
	// roleGateway is in gateway.go.
)

// app is one process: its configuration, logger, metrics registry and the
// servers it opens (deps), shared by every role it runs.
type app struct {
	*deps
	cfg Config
	log *slog.Logger
	out io.Writer
	err io.Writer // progress bars
	reg *prometheus.Registry
	tp  trace.TracerProvider // nil: tracing off

	mu  sync.Mutex
	acc *access
}

func newApp(cfg Config, log *slog.Logger, out, errOut io.Writer) *app {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &app{deps: &deps{cfg: cfg, log: log}, cfg: cfg, log: log, out: out, err: errOut, reg: reg}
}

func (a *app) pgCheck(pool *pgxpool.Pool) ops.Check {
	return ops.Check{Name: "postgres", Fn: func(ctx context.Context) error {
		if err := pool.Ping(ctx); err != nil {
			cfg := pool.Config().ConnConfig
			return postgres.Unreachable(cfg.Host, cfg.Port, err)
		}
		return nil
	}}
}

func (a *app) rabbitCheck(c *rabbitmq.Conn) ops.Check {
	return ops.Check{Name: "rabbitmq", Fn: c.Check}
}

func (a *app) esCheck(es *elasticsearch.Client) ops.Check {
	return ops.Check{Name: "elasticsearch", Fn: func(ctx context.Context) error { return elastic.Check(ctx, es) }}
}

// role is what one role contributes to a process: an optional API listener,
// readiness checks and background workers.
type role struct {
	name    string
	addr    string // own API listener, or "" for roles served on the admin port
	routes  func(mux *http.ServeMux)
	checks  []ops.Check
	workers []func(ctx context.Context) error
	// inProcess, when set, is the role's /graphql handler for a gateway of
	// this process: the role's own metrics and identity (with its own
	// rate limit) in front of its GraphQL server, but not the request-id,
	// body-size and timeout layers, which the gateway's request has been
	// through already with the same settings.
	inProcess http.Handler
	// colocate, when set, is given the inProcess handler of every role
	// that has one before anything serves (the gateway calls the services
	// in process when they run beside it).
	colocate func(handlers map[string]http.Handler) error
}

func (a *app) build(ctx context.Context, name string) (role, error) {
	switch name {
	case roleCommand:
		return a.commandRole(ctx)
	case roleRelay:
		return a.relayRole(ctx)
	case roleProjector:
		return a.projectorRole(ctx)
	case roleSaga:
		return a.sagaRole(ctx)
	case roleQuery:
		return a.queryRole(ctx)
	case roleGateway:
		return a.gatewayRole(ctx)
	}
	return role{}, fmt.Errorf("unknown role %q", name)
}

// runRoles builds the named roles, serves their listeners (the admin port
// once, for every role without its own, or whenever the profiler is on)
// and runs until ctx ends or one fails.
func (a *app) runRoles(ctx context.Context, names ...string) error {
	var (
		roles      []role
		adminCheck []ops.Check
		needAdmin  bool
	)
	for _, n := range names {
		r, err := a.build(ctx, n)
		if err != nil {
			return err
		}
		roles = append(roles, r)
		if r.addr == "" {
			needAdmin = true
			adminCheck = append(adminCheck, r.checks...)
		}
	}
	operations, err := a.operations(ctx, roles, nil)
	if err != nil {
		return err
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error { return operations.run(ctx) })
	muxes, inProcess := map[string]http.Handler{}, map[string]http.Handler{}
	for _, r := range roles {
		if r.addr != "" {
			mux := ops.PublicMux(r.checks, a.reg, a.log)
			r.routes(mux)
			muxes[r.name] = mux
		}
		if r.inProcess != nil {
			inProcess[r.name] = r.inProcess
		}
	}
	for _, r := range roles {
		if r.colocate != nil {
			if err := r.colocate(inProcess); err != nil {
				return err
			}
		}
	}
	for _, r := range roles {
		if mux, ok := muxes[r.name]; ok {
			g.Go(func() error { return ops.Serve(ctx, a.log, r.name, r.addr, mux, a.cfg.Limits.HTTP, 10*time.Second) })
		}
		for _, w := range r.workers {
			g.Go(func() error { return w(ctx) })
		}
	}
	// The API roles answer readiness on their own port; they open the
	// admin listener too when the profiler is on, so that a command or
	// query process running alone can be profiled.
	if needAdmin || a.cfg.PProf {
		mux := a.adminMux(dedupe(adminCheck))
		operations.mount(mux)
		g.Go(func() error {
			return ops.Serve(ctx, a.log, "admin", a.cfg.AdminAddr, mux, a.cfg.Limits.HTTP, 5*time.Second)
		})
	}
	a.log.Info("splitstream started", "roles", names, "version", version)
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// adminMux is the operators' listener (127.0.0.1 unless configured): full
// readiness reasons, the profiler when SPLITSTREAM_PPROF is on, and (added
// by runRoles) the admin console at / (console.go).
func (a *app) adminMux(checks []ops.Check) *http.ServeMux {
	mux := ops.Mux(checks, a.reg)
	if a.cfg.PProf {
		ops.Profiling(mux)
		if !loopback(a.cfg.AdminAddr) {
			a.log.Warn("pprof is on and the admin listener is not on loopback: anyone who reaches it can profile this process", "addr", a.cfg.AdminAddr)
		}
	}
	return mux
}

// loopback reports whether addr (host:port) listens on a loopback address
// only; ":8070" or "0.0.0.0:8070" listen on every interface.
func loopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func dedupe(checks []ops.Check) []ops.Check {
	seen := map[string]bool{}
	var out []ops.Check
	for _, c := range checks {
		if !seen[c.Name] {
			seen[c.Name] = true
			out = append(out, c)
		}
	}
	return out
}

func (a *app) migrate(ctx context.Context) error {
	pool, err := a.postgres(ctx)
	if err != nil {
		return err
	}
	if err := postgres.Migrate(ctx, pool, a.log); err != nil {
		return err
	}
	fmt.Fprintln(a.out, "migrations: up to date")
	return nil
}

func (a *app) errOut() io.Writer { return a.err }
