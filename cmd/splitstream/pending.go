package main

import (
	"context"
	"errors"
	"flag"

	"github.com/splitstream/splitstream/internal/bench"
)

var errNotYet = errors.New("not built yet")

func rebuildFlags(*flag.FlagSet) func(context.Context, *app) error {
	return func(context.Context, *app) error { return errNotYet }
}

func benchProjector(ctx context.Context, a *app, env bench.Env) ([]bench.Result, error) {
	return nil, errNotYet
}
