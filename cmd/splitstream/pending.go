package main

import (
	"context"
	"errors"
	"flag"
	"github.com/splitstream/splitstream/query"
	"github.com/splitstream/splitstream/rabbitmq"

	"github.com/splitstream/splitstream/ops"
)

var errNotYet = errors.New("not built yet")

func (a *app) projectorRole(ctx context.Context) (role, error) {
	conn, err := a.rabbitmq(ctx)
	if err != nil {
		return role{}, err
	}
	es, err := a.elasticsearch(ctx)
	if err != nil {
		return role{}, err
	}
	return role{name: roleProjector, checks: []ops.Check{a.rabbitCheck(conn), a.esCheck(es)}}, nil
}

func (a *app) sagaRole(ctx context.Context) (role, error) {
	pool, err := a.postgres(ctx)
	if err != nil {
		return role{}, err
	}
	conn, err := a.rabbitmq(ctx)
	if err != nil {
		return role{}, err
	}
	return role{name: roleSaga, checks: []ops.Check{a.pgCheck(pool), a.rabbitCheck(conn)}}, nil
}

func rebuildFlags(*flag.FlagSet) func(context.Context, *app) error {
	return func(context.Context, *app) error { return errNotYet }
}
func seedFlags(*flag.FlagSet) func(context.Context, *app) error {
	return func(context.Context, *app) error { return errNotYet }
}
func benchFlags(*flag.FlagSet) func(context.Context, *app) error {
	return func(context.Context, *app) error { return errNotYet }
}

func (a *app) noticeWorker(conn *rabbitmq.Conn, t *query.Tracker, h *query.Hub) func(context.Context) error {
	return func(ctx context.Context) error { <-ctx.Done(); return nil }
}
