package main

import (
	"context"

	"github.com/splitstream/splitstream/ops"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/relay"
	"github.com/splitstream/splitstream/tracing"
)

// relayName is the relay's checkpoint and leadership name: every relay
// process shares it, so one publishes and the others stand by.
const relayName = "default"

func (a *app) relayRole(ctx context.Context) (role, error) {
	pool, err := a.postgres(ctx)
	if err != nil {
		return role{}, err
	}
	conn, err := a.rabbitmq(ctx)
	if err != nil {
		return role{}, err
	}
	if err := a.checkLanes(ctx, pool); err != nil {
		return role{}, err
	}
	pub, err := rabbitmq.NewPublisher(conn, rabbitmq.WithLanes(a.cfg.ProjectorLanes))
	if err != nil {
		return role{}, err
	}
	source, err := postgres.NewRelaySource(pool)
	if err != nil {
		return role{}, err
	}
	r, err := relay.New(source, tracedPublisher{pub, tracing.Tracer(a.tp)}, relay.Config{
		Name: relayName, Lanes: relay.Lanes{Count: a.cfg.ProjectorLanes, Of: a.laneOfEnvelope},
	}, a.log, a.reg)
	if err != nil {
		return role{}, err
	}
	return role{
		name: roleRelay,
		// The horizon check fails, naming the blocking backend's pid, while
		// an open transaction holds committed events back from the relay.
		checks: []ops.Check{a.pgCheck(pool), a.rabbitCheck(conn), {Name: "horizon", Fn: r.HorizonCheck}},
		workers: []func(ctx context.Context) error{func(ctx context.Context) error {
			defer pub.Close()
			return r.Run(ctx)
		}},
	}, nil
}
