package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/ops"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/tracing"
)

// projectorRole consumes the projector queue into the read models. It reads
// Postgres to fill a gap in a stream and to park dead letters, so Postgres
// is not among its readiness checks; a stall it causes shows in the
// "projector" check.
func (a *app) projectorRole(ctx context.Context) (role, error) {
	pool, err := a.postgres(ctx)
	if err != nil {
		return role{}, err
	}
	conn, err := a.rabbitmq(ctx)
	if err != nil {
		return role{}, err
	}
	es, err := a.elasticsearch(ctx)
	if err != nil {
		return role{}, err
	}
	ensureCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	indices := elastic.NewIndices(es, a.cfg.IndexPrefix, a.cfg.RefreshInterval)
	if err := indices.Ensure(ensureCtx); err != nil {
		return role{}, fmt.Errorf("projector: create indices: %w", err)
	}
	if err := indices.AddCheckpointFields(ensureCtx); err != nil {
		return role{}, fmt.Errorf("projector: %w", err)
	}
	notices, err := rabbitmq.NewNoticePublisher(conn)
	if err != nil {
		return role{}, err
	}
	log := a.log.With("role", roleProjector)
	dead, err := postgres.NewDeadLetters(pool)
	if err != nil {
		return role{}, err
	}
	history, err := postgres.NewEventStore(pool)
	if err != nil {
		return role{}, err
	}
	source, err := postgres.NewRelaySource(pool)
	if err != nil {
		return role{}, err
	}
	p, err := projector.New(projector.Config{
		Store:       elastic.NewDocStore(es, a.cfg.IndexPrefix),
		History:     history,
		EventLog:    source,
		DeadLetters: dead,
		Notices:     notices,
		Registerer:  a.reg,
		Log:         log,
	})
	if err != nil {
		return role{}, err
	}
	if err := a.checkLanes(ctx, pool); err != nil {
		return role{}, err
	}
	lanes, intake, err := a.projectorLanes(conn, pool, p, log)
	if err != nil {
		return role{}, err
	}
	return role{
		name: roleProjector,
		checks: []ops.Check{a.rabbitCheck(conn), a.esCheck(es), {Name: "projector", Fn: func(context.Context) error {
			if err := p.Healthy(projector.DefaultMaxStall); err != nil {
				return err
			}
			// Dead letters do not stop the pipeline: green, with the count.
			if n := p.DeadLetterCount(); n > 0 {
				return ops.Note(fmt.Sprintf("%d dead letters waiting (splitstream dead list)", n))
			}
			return nil
		}}},
		workers: []func(ctx context.Context) error{func(ctx context.Context) error {
			defer notices.Close()
			return lanes.Run(ctx)
		}, intake.Run},
	}, nil
}

// projectorLanes builds the lane runner of p (leases in Postgres, a lane
// consumer per held lane) and the consumer of the unrouted intake.
func (a *app) projectorLanes(conn *rabbitmq.Conn, pool *pgxpool.Pool, p *projector.Projector, log *slog.Logger) (*projector.Lanes, *rabbitmq.ProjectorConsumer, error) {
	member := memberName()
	leases, err := postgres.NewLeases(pool, member, leaseTTL)
	if err != nil {
		return nil, nil, err
	}
	n := a.cfg.ProjectorLanes
	lanes, err := projector.NewLanes(p, projector.LanesConfig{
		Lanes: n, Member: member, Leases: leases, Renew: leaseRenew, TTL: leaseTTL, Margin: leaseMargin,
		Registerer: a.reg, Log: log,
		Consume: func(ctx context.Context, lane int, child *projector.Projector) error {
			c, err := rabbitmq.NewLaneConsumer(conn, tracedProjector{child, tracing.Tracer(a.tp)}, lane, n, rabbitmq.ConsumerConfig{Log: log})
			if err != nil {
				return err
			}
			return c.Run(ctx)
		},
	})
	if err != nil {
		return nil, nil, err
	}
	intake, err := rabbitmq.NewIntakeConsumer(conn, projector.Unrouted{}, n, rabbitmq.ConsumerConfig{Log: log})
	if err != nil {
		return nil, nil, err
	}
	return lanes, intake, nil
}
