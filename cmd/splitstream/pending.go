package main

import (
	"context"
	"errors"
	"flag"

	"github.com/splitstream/splitstream/ops"
)

var errNotYet = errors.New("not built yet")

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
func benchFlags(*flag.FlagSet) func(context.Context, *app) error {
	return func(context.Context, *app) error { return errNotYet }
}
