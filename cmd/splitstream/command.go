package main

import (
	"context"
	"net/http"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/graph/write"
	"github.com/splitstream/splitstream/ops"
	"github.com/splitstream/splitstream/postgres"
)

func (a *app) commandRole(ctx context.Context) (role, error) {
	pool, err := a.postgres(ctx)
	if err != nil {
		return role{}, err
	}
	acc, err := a.access(ctx)
	if err != nil {
		return role{}, err
	}
	store, notifier, err := a.notifyingStore(pool)
	if err != nil {
		return role{}, err
	}
	svc, err := command.NewService(store, command.WithMetrics(a.reg), command.WithGuard(auth.Policy{}), command.WithTokens(acc.tokens), command.WithTracer(a.tp),
		command.WithLanes(a.laneOfEvent))
	if err != nil {
		return role{}, err
	}
	schema := write.NewExecutableSchema(write.Config{Resolvers: &write.Resolver{Commands: svc, Version: version}})
	srv := graph.NewServer(schema, graph.Options{
		Log:             a.log,
		ComplexityLimit: a.cfg.ComplexityLimit,
		Introspection:   a.cfg.Introspection,
		Document:        a.cfg.Limits.Document,
		Tracer:          a.tracer(),
	})
	metrics := ops.NewHTTPMetrics(a.reg, roleCommand)
	return role{
		name:    roleCommand,
		addr:    a.cfg.CommandAddr,
		checks:  append([]ops.Check{a.pgCheck(pool)}, acc.checks()...),
		workers: []func(ctx context.Context) error{notifier.Run},
		routes: func(mux *http.ServeMux) {
			mux.Handle("/graphql", metrics.Wrap("/graphql", acc.middleware(graph.Middleware(a.cfg.MaxBodyBytes, graph.Limit(graph.StreamLimits{Timeout: a.cfg.Limits.CommandTimeout}, srv)))))
			playground := graph.Playground(a.playground(graph.PlaygroundConfig{
				Title: "Splitstream commands", Endpoint: "/graphql", Tabs: graph.CommandTabs(), Hint: commandHint,
			}, devAdminSubject, true))
			mux.Handle("GET /{$}", playground)
			mux.Handle("GET /playground/", playground)
		},
		inProcess: metrics.Wrap("/graphql", acc.middleware(srv)),
	}, nil
}

// notifyingStore is the event store the command and saga roles append
// through, with the notifier that tells the relay of each commit
// (LISTEN/NOTIFY), so it need not wait for its poll; start its Run.
func (a *app) notifyingStore(pool *pgxpool.Pool) (postgres.NotifyingStore, *postgres.CommitNotifier, error) {
	notifier, err := postgres.NewCommitNotifier(pool)
	if err != nil {
		return postgres.NotifyingStore{}, nil, err
	}
	events, err := postgres.NewEventStore(pool, postgres.WithTracer(a.tp))
	if err != nil {
		return postgres.NotifyingStore{}, nil, err
	}
	return postgres.NotifyingStore{EventStore: events, Notifier: notifier}, notifier, nil
}
