package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/saga"
)

// The order saga's queues: SagaQueue is part of the external contract
// (../shared/ARCHITECTURE.md, beside the repository); its dead-letter queue is
// this design's (docs/ARCHITECTURE.md, "Broker topology").
const (
	SagaQueue     = "saga.orders"
	SagaDeadQueue = "saga.orders.dead"
)

// SagaRoutingKeys are the events the order saga consumes.
var SagaRoutingKeys = []string{
	event.StreamOrder + "." + event.OrderPlaced{}.EventType(),
	event.StreamOrder + "." + event.OrderCancelled{}.EventType(),
}

// DeclareSaga declares, idempotently, what the order saga consumes from:
// the events exchange; the durable quorum queue "saga.orders" bound to it
// with SagaRoutingKeys; and its dead-letter queue "saga.orders.dead" on
// "splitstream.dlx", bound by the key "saga.orders", for messages that can
// never be handled (not an event, or an event this build cannot read).
func DeclareSaga(ch *amqp.Channel) error {
	if err := DeclareEvents(ch); err != nil {
		return err
	}
	if err := ch.ExchangeDeclare(DeadExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", DeadExchange, err)
	}
	if _, err := ch.QueueDeclare(SagaDeadQueue, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg: amqp.QueueTypeQuorum,
	}); err != nil {
		return fmt.Errorf("declare queue %s: %w", SagaDeadQueue, err)
	}
	if err := ch.QueueBind(SagaDeadQueue, SagaQueue, DeadExchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %s: %w", SagaDeadQueue, err)
	}
	if _, err := ch.QueueDeclare(SagaQueue, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg:           amqp.QueueTypeQuorum,
		"x-dead-letter-exchange":    DeadExchange,
		"x-dead-letter-routing-key": SagaQueue,
	}); err != nil {
		return fmt.Errorf("declare queue %s: %w", SagaQueue, err)
	}
	for _, key := range SagaRoutingKeys {
		if err := ch.QueueBind(SagaQueue, key, EventsExchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %s to %s: %w", SagaQueue, key, err)
		}
	}
	return nil
}

// SagaHandler is what the saga consumer feeds: *saga.Saga.
type SagaHandler interface {
	// Handle returns nil when the event is dealt with (the message is
	// acked), an error wrapping saga.ErrUnprocessable, event.ErrMalformed or
	// event.ErrUnknownType when it never can be (dead-lettered), and any
	// other error to have it retried.
	Handle(ctx context.Context, e event.Envelope) error
}

// SagaConsumerConfig tunes the saga consumer; zero means the default.
type SagaConsumerConfig struct {
	// Prefetch is how many unacked messages the broker sends ahead (32).
	Prefetch int
	// Workers is how many orders are handled at once (8). One order's
	// messages always go to the same worker, so they are handled one at a
	// time and in delivery order.
	Workers int
	// MinBackoff and MaxBackoff bound the wait before a failed message is
	// handed back to the broker (100ms, 5s); the wait doubles while a
	// worker keeps failing.
	MinBackoff, MaxBackoff time.Duration
	Log                    *slog.Logger
}

func (c SagaConsumerConfig) withDefaults() SagaConsumerConfig {
	if c.Prefetch <= 0 {
		c.Prefetch = 32
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.MinBackoff <= 0 {
		c.MinBackoff = 100 * time.Millisecond
	}
	if c.MaxBackoff < c.MinBackoff {
		c.MaxBackoff = max(5*time.Second, c.MinBackoff)
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// SagaConsumer consumes "saga.orders" with manual acks: a message is acked
// once the handler returned nil, handed back after a backoff when the
// handler failed (Postgres away: never dead-lettered for that), and
// dead-lettered only when it can never be handled.
//
// RabbitMQ 3.x sets no delivery limit on quorum queues, so a message handed
// back is retried for as long as it takes. RabbitMQ 4 defaults to 20
// deliveries, after which the broker dead-letters it: an OrderPlaced lost
// so still meets its deadline, but an OrderCancelled would leave its stock
// reserved, so on 4.x set a delivery-limit policy of -1 on "saga.orders".
type SagaConsumer struct {
	conn *Conn
	h    SagaHandler
	cfg  SagaConsumerConfig
	sub  subscription
}

// NewSagaConsumer returns a consumer of the saga queue on conn.
func NewSagaConsumer(conn *Conn, h SagaHandler, cfg SagaConsumerConfig) (*SagaConsumer, error) {
	if conn == nil {
		return nil, errors.New("rabbitmq: nil connection")
	}
	if h == nil {
		return nil, errors.New("rabbitmq: nil saga handler")
	}
	cfg = cfg.withDefaults()
	// Batches of one: each message goes to its order's worker and is
	// settled on its own.
	return &SagaConsumer{conn: conn, h: h, cfg: cfg, sub: subscription{
		what: "saga consumer", queue: SagaQueue, declare: DeclareSaga, prefetch: cfg.Prefetch,
		batchSize: 1, log: cfg.Log,
	}}, nil
}

// Run consumes until ctx ends, subscribing again after every loss of the
// channel or the connection. Messages unacked on a lost channel come back
// from the broker; the saga handles them again safely.
func (c *SagaConsumer) Run(ctx context.Context) error {
	return c.sub.run(ctx, c.conn, c.serve, nil)
}

// serve dispatches deliveries to the workers until the channel, the
// connection or ctx ends. Workers finish the message in hand; what they had
// not begun is left unacked for the broker to deliver again.
func (c *SagaConsumer) serve(ctx context.Context, s *session) error {
	// Handlers stop with the session: their results could not be acked on
	// a dead channel anyway.
	ctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	queues := make([]chan sagaMessage, c.cfg.Workers)
	for i := range queues {
		// Never more than Prefetch deliveries are unacked, so a worker's
		// queue never fills and one slow order never blocks the others.
		queues[i] = make(chan sagaMessage, c.cfg.Prefetch)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.work(ctx, s, queues[i])
		}()
	}
	defer func() {
		stop()
		for _, q := range queues {
			close(q)
		}
		wg.Wait()
	}()
	for {
		batch, err := s.collect(ctx, nil)
		if err != nil {
			return err
		}
		for _, d := range batch {
			r, err := DecodeRecord(d)
			if err != nil {
				c.deadLetter(s, d, err)
				continue
			}
			queues[shard(r.Envelope.StreamID, len(queues))] <- sagaMessage{d: d, e: r.Envelope}
		}
	}
}

// sagaMessage is a delivery with its decoded event.
type sagaMessage struct {
	d amqp.Delivery
	e event.Envelope
}

// shard picks the worker for an order.
func shard(orderID string, n int) int {
	h := fnv.New32a()
	_, _ = h.Write([]byte(orderID))
	return int(h.Sum32() % uint32(n))
}

// work handles one worker's deliveries in order until its queue closes or
// ctx ends; after ctx ends it only drains, leaving messages unacked.
func (c *SagaConsumer) work(ctx context.Context, s *session, queue <-chan sagaMessage) {
	wait := c.cfg.MinBackoff
	for m := range queue {
		if ctx.Err() != nil {
			continue
		}
		d := m.d
		err := c.h.Handle(TraceContext(ctx, d.Headers), m.e)
		switch {
		case err == nil:
			wait = c.cfg.MinBackoff
			if err := s.ack(d.DeliveryTag, false); err != nil {
				c.cfg.Log.Debug("saga ack failed; the broker will deliver again", "err", err)
			}
		case permanent(err):
			c.deadLetter(s, d, err)
		case ctx.Err() != nil:
			// Stopping: the channel's close hands the message back.
		default:
			c.cfg.Log.Warn("saga handler failed; retrying after a backoff",
				"routingKey", d.RoutingKey, "order", m.e.StreamID, "backoff", wait, "err", err)
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
			case <-t.C:
			}
			t.Stop()
			wait = min(2*wait, c.cfg.MaxBackoff)
			if err := s.requeue(d.DeliveryTag); err != nil {
				c.cfg.Log.Debug("saga nack failed; the broker will deliver again", "err", err)
			}
		}
	}
}

// permanent reports whether no retry can ever handle the message.
func permanent(err error) bool {
	return errors.Is(err, ErrBadMessage) || errors.Is(err, event.ErrMalformed) ||
		errors.Is(err, event.ErrUnknownType) || errors.Is(err, saga.ErrUnprocessable)
}

// deadLetter rejects the message without requeue; the queue's dead-letter
// exchange moves it to "saga.orders.dead" (the broker adds an x-death
// header saying where from), and the reason goes to the log.
func (c *SagaConsumer) deadLetter(s *session, d amqp.Delivery, reason error) {
	c.cfg.Log.Error("saga message dead-lettered", "queue", SagaDeadQueue, "routingKey", d.RoutingKey,
		"messageId", d.MessageId, "reason", reason)
	if err := s.reject(d.DeliveryTag); err != nil {
		c.cfg.Log.Debug("saga dead-letter nack failed; the broker will deliver again", "err", err)
	}
}
