package main

import (
	"context"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/ops"
	"github.com/splitstream/splitstream/ops/console"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
)

// operations is what every process adds for its operators beside the
// roles: readiness exported as metrics (a worker), and the admin console
// on the admin listener.
type operations struct {
	readiness *ops.Readiness
	console   *console.Console
}

// operations builds the readiness metrics over every role's checks and
// the console over the roles. The console's dead-letter actions are there
// when this process runs the projector (replay writes to Elasticsearch
// with the projector's rules, as `splitstream dead replay` does).
func (a *app) operations(ctx context.Context, roles []role, rebuilds console.Rebuilds) (*operations, error) {
	var all []ops.Check
	croles := make([]console.Role, 0, len(roles))
	for _, r := range roles {
		all = append(all, r.checks...)
		croles = append(croles, console.Role{Name: r.name, Checks: r.checks})
	}
	readiness, err := ops.NewReadiness(a.reg, dedupe(all))
	if err != nil {
		return nil, err
	}
	cfg := console.Config{Roles: croles, Gatherer: a.reg, Rebuilds: rebuilds, Version: version, Log: a.log.With("listener", "admin")}
	cfg.Verifier, cfg.VerifierErr = a.adminVerifier(ctx)
	if cfg.VerifierErr != nil {
		a.log.Warn("the admin console's API is off: it needs identity", "err", cfg.VerifierErr)
	}
	if slices.ContainsFunc(roles, func(r role) bool { return r.name == roleProjector }) {
		if cfg.DeadLetters, err = a.consoleDeadLetters(ctx); err != nil {
			return nil, err
		}
	}
	c, err := console.New(cfg)
	if err != nil {
		return nil, err
	}
	return &operations{readiness: readiness, console: c}, nil
}

// mount adds the console to the admin listener's mux.
func (o *operations) mount(mux *http.ServeMux) { o.console.Mount(mux) }

// run refreshes the readiness metrics every 5 s until ctx ends.
func (o *operations) run(ctx context.Context) error { return o.readiness.Run(ctx, 5*time.Second) }

// adminVerifier is the API roles' verifier when this process has one, or
// one of the console's own from the same settings: the console follows
// the contract's identity rules (an admin's JWT), whatever roles run.
func (a *app) adminVerifier(ctx context.Context) (*auth.Verifier, error) {
	a.mu.Lock()
	acc := a.acc
	a.mu.Unlock()
	if acc != nil {
		return acc.verifier, nil
	}
	var secret []byte
	if a.cfg.JWTSecret != "" {
		secret = []byte(a.cfg.JWTSecret)
	}
	return auth.NewVerifier(ctx, auth.Config{Secret: secret, JWKSURL: a.cfg.JWKSURL, Issuer: a.cfg.JWTIssuer,
		Audience: a.cfg.JWTAudience, Off: a.cfg.AuthOff, Log: a.log})
}

func (a *app) consoleDeadLetters(ctx context.Context) (console.DeadLetters, error) {
	pool, err := a.postgres(ctx)
	if err != nil {
		return nil, err
	}
	es, err := a.elasticsearch(ctx)
	if err != nil {
		return nil, err
	}
	store, err := postgres.NewDeadLetters(pool)
	if err != nil {
		return nil, err
	}
	tool := deadTool{store: store, out: io.Discard, log: a.log.With("role", "console")}
	p, err := tool.replayer(es, pool, a.cfg.IndexPrefix)
	if err != nil {
		return nil, err
	}
	return &consoleDead{tool: tool, replayer: p}, nil
}

// consoleDead is `splitstream dead` for the console: the same code, one
// action at a time.
type consoleDead struct {
	mu       sync.Mutex
	tool     deadTool
	replayer *projector.Projector
}

func (c *consoleDead) Documents(ctx context.Context, limit int) ([]console.DeadDocument, error) {
	docs, err := c.tool.store.Documents(ctx, limit)
	if err != nil {
		return nil, err
	}
	out := make([]console.DeadDocument, len(docs))
	for i, d := range docs {
		out[i] = console.DeadDocument{Doc: console.Doc{Kind: string(d.Ref.Kind), ID: d.Ref.ID}, Letters: d.Letters,
			Reasons: d.Reasons, First: d.First.UTC()}
	}
	return out, nil
}

func (c *consoleDead) Replay(ctx context.Context, d console.Doc) (applied, still int, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tool.replayOne(ctx, c.replayer, projector.Ref{Kind: projector.Kind(d.Kind), ID: d.ID})
}

func (c *consoleDead) Drop(ctx context.Context, d console.Doc) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tool.dropOne(ctx, projector.Ref{Kind: projector.Kind(d.Kind), ID: d.ID})
}

// rebuildConsole serves, while a rebuild runs, an admin listener of its
// own on addr: /healthz, /readyz and /metrics, and the console with the
// rebuild's progress (reported by the rebuilder into r.report). stop ends
// it once the rebuild returns.
func (a *app) rebuildConsole(ctx context.Context, addr string, pool *pgxpool.Pool, es *elasticsearch.Client, r *rebuilder) (stop func(), err error) {
	r.report = &console.Progress{}
	rb := role{name: "rebuild", checks: []ops.Check{a.pgCheck(pool), a.esCheck(es)}}
	o, err := a.operations(ctx, []role{rb}, r.report)
	if err != nil {
		return nil, err
	}
	mux := ops.Mux(rb.checks, a.reg)
	o.mount(mux)
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	go func() {
		defer func() { done <- struct{}{} }()
		if err := ops.Serve(ctx, a.log, "rebuild admin", addr, mux, a.cfg.Limits.HTTP, 2*time.Second); err != nil {
			a.log.Warn("rebuild: the admin listener stopped", "err", err)
		}
	}()
	go func() { defer func() { done <- struct{}{} }(); _ = o.run(ctx) }()
	return func() { cancel(); <-done; <-done }, nil
}
