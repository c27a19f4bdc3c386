package main

import (
	"context"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/ops"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/saga"
	"github.com/splitstream/splitstream/tracing"
)

// sagaRole runs the order fulfilment saga: a consumer of "saga.orders" that
// drives each placed order through the command layer, and a loop that
// rejects orders still PENDING after SPLITSTREAM_SAGA_DEADLINE. Any number
// of copies may run; the saga's commands are idempotent and deadlines are
// claimed with SKIP LOCKED.
func (a *app) sagaRole(ctx context.Context) (role, error) {
	pool, err := a.postgres(ctx)
	if err != nil {
		return role{}, err
	}
	conn, err := a.rabbitmq(ctx)
	if err != nil {
		return role{}, err
	}
	store, notifier, err := a.notifyingStore(pool) // the notifier wakes the relay on each commit
	if err != nil {
		return role{}, err
	}
	sagas, err := postgres.NewSagaStore(pool)
	if err != nil {
		return role{}, err
	}
	svc, err := command.NewService(store, command.WithTracer(a.tp))
	if err != nil {
		return role{}, err
	}
	log := a.log.With("role", roleSaga)
	s, err := saga.New(saga.Config{
		Commands:   svc,
		Streams:    store,
		Store:      sagas,
		Deadline:   a.cfg.SagaDeadline,
		Log:        log,
		Registerer: a.reg,
	})
	if err != nil {
		return role{}, err
	}
	consumer, err := rabbitmq.NewSagaConsumer(conn, tracedSaga{s, tracing.Tracer(a.tp)}, rabbitmq.SagaConsumerConfig{Log: log})
	if err != nil {
		return role{}, err
	}
	return role{
		name:    roleSaga,
		checks:  []ops.Check{a.pgCheck(pool), a.rabbitCheck(conn)},
		workers: []func(ctx context.Context) error{consumer.Run, s.RunDeadlines, notifier.Run},
	}, nil
}
