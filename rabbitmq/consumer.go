package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/projector"
)

// The projector's queues: ProjectorQueue is part of the external contract
// (../shared/ARCHITECTURE.md, beside the repository); its dead-letter queue is
// this design's (docs/ARCHITECTURE.md, "Broker topology").
const (
	ProjectorQueue     = "projector"
	ProjectorDeadQueue = "projector.dead"
)

// Headers a dead-lettered message carries besides its original ones.
const (
	HeaderDeathReason        = "x-death-reason"
	HeaderOriginalExchange   = "x-original-exchange"
	HeaderOriginalRoutingKey = "x-original-routing-key"
	HeaderOriginalQueue      = "x-original-queue"
)

// DeclareProjector declares, idempotently, everything the projector
// consumes from: the events exchange; the durable quorum queue "projector"
// bound to it with "#"; and the direct dead-letter exchange
// "splitstream.dlx" with the durable queue "projector.dead" bound by the
// key "projector" (each consumer's dead queue is bound by its own queue's
// name, so dead letters of different consumers do not mix).
//
// The queue has a single active consumer: the projector can run in several
// copies for availability, but one at a time consumes, so records arrive in
// relay order and the watermark has no holes another copy would fill.
// Should the broker ever drop a message after too many deliveries (the
// delivery limit of newer RabbitMQ versions), it goes to the dead queue
// rather than nowhere.
func DeclareProjector(ch *amqp.Channel) error {
	if err := declareProjectorQueues(ch); err != nil {
		return err
	}
	if err := ch.QueueBind(ProjectorQueue, "#", EventsExchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %s: %w", ProjectorQueue, err)
	}
	return nil
}

// declareProjectorQueues declares the projector queue and its dead-letter
// queue, without the projector queue's binding.
func declareProjectorQueues(ch *amqp.Channel) error {
	if err := DeclareEvents(ch); err != nil {
		return err
	}
	if err := ch.ExchangeDeclare(DeadExchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", DeadExchange, err)
	}
	if _, err := ch.QueueDeclare(ProjectorDeadQueue, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg: amqp.QueueTypeQuorum,
	}); err != nil {
		return fmt.Errorf("declare queue %s: %w", ProjectorDeadQueue, err)
	}
	if err := ch.QueueBind(ProjectorDeadQueue, ProjectorQueue, DeadExchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %s: %w", ProjectorDeadQueue, err)
	}
	if _, err := ch.QueueDeclare(ProjectorQueue, true, false, false, false, amqp.Table{
		amqp.QueueTypeArg:            amqp.QueueTypeQuorum,
		amqp.SingleActiveConsumerArg: true,
		"x-dead-letter-exchange":     DeadExchange,
		"x-dead-letter-routing-key":  ProjectorQueue,
	}); err != nil {
		return fmt.Errorf("declare queue %s: %w", ProjectorQueue, err)
	}
	return nil
}

// ProjectorHandler is what the projector consumer feeds:
// *projector.Projector.
type ProjectorHandler interface {
	Handle(ctx context.Context, msgs []projector.Message) ([]projector.Verdict, error)
	// Idle is called when no message came for a while.
	Idle(ctx context.Context)
	// Consuming is told whether the consumer is subscribed.
	Consuming(on bool)
}

// ConsumerConfig tunes the projector consumer; zero means the default.
type ConsumerConfig struct {
	// Prefetch is how many unacked messages the broker sends ahead (2000):
	// twice the batch size, so the next batch is there when one is done.
	Prefetch int
	// BatchSize is the most messages handed over at once (1000).
	BatchSize int
	// Gap is how long a batch waits for the next message (1ms): a batch
	// is handed over once none comes within it, so a lone message waits
	// only the gap. While messages keep arriving (a backlog streaming in
	// from the broker), the batch fills.
	Gap time.Duration
	// Linger is the longest a batch waits to fill while messages keep
	// arriving (20ms).
	Linger time.Duration
	// IdleEvery is how often Idle is called while nothing comes (1s).
	IdleEvery time.Duration
	Log       *slog.Logger
}

func (c ConsumerConfig) withDefaults() ConsumerConfig {
	if c.Prefetch <= 0 {
		c.Prefetch = 2000
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.BatchSize > c.Prefetch {
		c.BatchSize = c.Prefetch
	}
	if c.Gap <= 0 {
		c.Gap = time.Millisecond
	}
	if c.Linger <= 0 {
		c.Linger = 20 * time.Millisecond
	}
	if c.IdleEvery <= 0 {
		c.IdleEvery = time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return c
}

// ProjectorConsumer consumes the projector queue in batches with manual
// acks: a message is acked only after the handler has made its effect
// durable, dead-lettered (with the reason) when the handler says it can
// never apply, and handed back when the handler wants another try.
type ProjectorConsumer struct {
	conn *Conn
	h    ProjectorHandler
	cfg  ConsumerConfig
	sub  subscription
}

// NewProjectorConsumer returns a consumer of the projector queue on conn.
func NewProjectorConsumer(conn *Conn, h ProjectorHandler, cfg ConsumerConfig) (*ProjectorConsumer, error) {
	if conn == nil {
		return nil, errors.New("rabbitmq: nil connection")
	}
	if h == nil {
		return nil, errors.New("rabbitmq: nil projector handler")
	}
	cfg = cfg.withDefaults()
	return &ProjectorConsumer{conn: conn, h: h, cfg: cfg, sub: subscription{
		what: "projector consumer", queue: ProjectorQueue, declare: DeclareProjector, prefetch: cfg.Prefetch,
		batchSize: cfg.BatchSize, gap: cfg.Gap, linger: cfg.Linger, confirmed: true, log: cfg.Log,
	}}, nil
}

// NewLaneConsumer returns a consumer of lane's queue (LaneQueue) on conn,
// declaring the topology of lanes lanes. It runs until its context ends:
// the projector starts one for each lane it holds a lease of and ends it
// when the lease goes.
func NewLaneConsumer(conn *Conn, h ProjectorHandler, lane, lanes int, cfg ConsumerConfig) (*ProjectorConsumer, error) {
	if lane < 0 || lane >= lanes {
		return nil, fmt.Errorf("rabbitmq: lane %d of %d", lane, lanes)
	}
	c, err := NewProjectorConsumer(conn, h, cfg)
	if err != nil {
		return nil, err
	}
	c.sub.what, c.sub.queue = fmt.Sprintf("lane %d consumer", lane), LaneQueue(lane)
	c.sub.declare = func(ch *amqp.Channel) error { return DeclareLanes(ch, lanes) }
	return c, nil
}

// NewIntakeConsumer returns a consumer of the projector queue as the lanes'
// unrouted intake (DeclareLanes): h is handed what no lane took.
func NewIntakeConsumer(conn *Conn, h ProjectorHandler, lanes int, cfg ConsumerConfig) (*ProjectorConsumer, error) {
	c, err := NewProjectorConsumer(conn, h, cfg)
	if err != nil {
		return nil, err
	}
	c.sub.what = "unrouted intake consumer"
	c.sub.declare = func(ch *amqp.Channel) error { return DeclareLanes(ch, lanes) }
	return c, nil
}

// Run consumes until ctx ends, subscribing again after every loss of the
// channel or the connection. Unacked messages of a lost channel come back
// from the broker, and the handler treats them as the duplicates they are.
func (c *ProjectorConsumer) Run(ctx context.Context) error {
	c.h.Consuming(false) // from now on, not being subscribed for long is unhealthy
	return c.sub.run(ctx, c.conn, c.serve, func() { c.h.Consuming(false) })
}

// serve hands batches to the handler and settles them until the session ends.
func (c *ProjectorConsumer) serve(ctx context.Context, s *session) error {
	c.h.Consuming(true)
	idle := time.NewTicker(c.cfg.IdleEvery)
	defer idle.Stop()
	for {
		batch, err := s.collect(ctx, idle.C)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			c.h.Idle(ctx)
			continue
		}
		msgs := make([]projector.Message, len(batch))
		for i, d := range batch {
			msgs[i] = decodeMessage(d)
		}
		verdicts, err := c.h.Handle(ctx, msgs)
		if err != nil {
			return err
		}
		if err := c.settle(ctx, s, batch, verdicts); err != nil {
			return err
		}
		idle.Reset(c.cfg.IdleEvery)
	}
}

// settle carries out the verdicts: retries go back to the queue, dead
// letters are published (with confirm) and then acked, and everything else
// is acked with one multiple ack. That ack is safe: every earlier delivery
// on this channel is settled by now (batches are settled in order, and the
// other verdicts of this batch were settled one by one just before).
func (c *ProjectorConsumer) settle(ctx context.Context, s *session, batch []amqp.Delivery, verdicts []projector.Verdict) error {
	if len(verdicts) != len(batch) {
		return fmt.Errorf("handler returned %d verdicts for %d messages", len(verdicts), len(batch))
	}
	var last uint64
	for i, d := range batch {
		v := verdicts[i]
		switch v.Action {
		case projector.Ack:
			last = max(last, d.DeliveryTag)
		case projector.Retry:
			if err := s.requeue(d.DeliveryTag); err != nil {
				return err
			}
		case projector.DeadLetter:
			if err := s.publishDead(ctx, d, v.Reason); err != nil {
				c.cfg.Log.Warn("dead-letter publish failed; handing the message back", "err", err)
				if err := s.requeue(d.DeliveryTag); err != nil {
					return err
				}
				continue
			}
			c.cfg.Log.Warn("message dead-lettered", "queue", ProjectorDeadQueue, "from", c.sub.queue, "routingKey", d.RoutingKey, "reason", v.Reason)
			if err := s.ack(d.DeliveryTag, false); err != nil {
				return err
			}
		}
	}
	if last > 0 {
		return s.ack(last, true)
	}
	return nil
}

// decodeMessage reads a delivery as a record. When it cannot, the relay's
// headers may still say where it stands in relay order, so the watermark
// can pass it once it is dead-lettered.
func decodeMessage(d amqp.Delivery) projector.Message {
	r, err := DecodeRecord(d)
	if err == nil {
		return projector.Message{Record: r, Chained: true}
	}
	m := projector.Message{Record: r, Invalid: err}
	tx, ok1 := int64Header(d.Headers, HeaderTx)
	pos, ok2 := int64Header(d.Headers, HeaderPosition)
	prevTx, ok3 := int64Header(d.Headers, HeaderPrevTx)
	prevPos, ok4 := int64Header(d.Headers, HeaderPrevPosition)
	if ok1 && ok2 && ok3 && ok4 && tx > 0 && pos > 0 {
		m.Record.Cursor = event.Cursor{Tx: uint64(tx), Position: pos}
		m.Record.Prev = event.Cursor{Tx: uint64(prevTx), Position: prevPos}
		m.Chained = true
		if _, routed := d.Headers[HeaderLane]; routed {
			m.Chained = decodeLane(d.Headers, &m.Record) == nil
		}
	}
	return m
}
