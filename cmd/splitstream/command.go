package main

import (
	"context"
	"net/http"

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
	store := postgres.NewEventStore(pool)
	svc, err := command.NewService(store, command.WithMetrics(a.reg))
	if err != nil {
		return role{}, err
	}
	schema := write.NewExecutableSchema(write.Config{Resolvers: &write.Resolver{Commands: svc, Version: version}})
	srv := graph.NewServer(schema, graph.Options{
		Log:             a.log,
		ComplexityLimit: a.cfg.ComplexityLimit,
		Introspection:   a.cfg.Introspection,
		Document:        a.cfg.Limits.Document,
	})
	metrics := ops.NewHTTPMetrics(a.reg, roleCommand)
	return role{
		name:   roleCommand,
		addr:   a.cfg.CommandAddr,
		checks: []ops.Check{a.pgCheck(pool)},
		routes: func(mux *http.ServeMux) {
			mux.Handle("/graphql", metrics.Wrap("/graphql", graph.Middleware(a.cfg.MaxBodyBytes, graph.Limit(graph.StreamLimits{Timeout: a.cfg.Limits.CommandTimeout}, srv))))
			playground := graph.Playground(graph.PlaygroundConfig{Title: "Splitstream commands", Endpoint: "/graphql", Tabs: graph.CommandTabs()})
			mux.Handle("GET /{$}", playground)
			mux.Handle("GET /playground/", playground)
		},
	}, nil
}
