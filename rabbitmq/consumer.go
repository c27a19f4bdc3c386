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

// The projector's queues, part of the contract (../shared/ARCHITECTURE.md beside the repository; docs/ARCHITECTURE.md for the design).
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
	if err := ch.QueueBind(ProjectorQueue, "#", EventsExchange, false, nil); err != nil {
		return fmt.Errorf("bind queue %s: %w", ProjectorQueue, err)
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
	// Linger is how long a batch waits to fill after its first message (20ms).
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
}

// NewProjectorConsumer returns a consumer of the projector queue on conn.
func NewProjectorConsumer(conn *Conn, h ProjectorHandler, cfg ConsumerConfig) (*ProjectorConsumer, error) {
	if conn == nil {
		return nil, errors.New("rabbitmq: nil connection")
	}
	if h == nil {
		return nil, errors.New("rabbitmq: nil projector handler")
	}
	return &ProjectorConsumer{conn: conn, h: h, cfg: cfg.withDefaults()}, nil
}

// Run consumes until ctx ends, subscribing again after every loss of the
// channel or the connection. Unacked messages of a lost channel come back
// from the broker, and the handler treats them as the duplicates they are.
func (c *ProjectorConsumer) Run(ctx context.Context) error {
	c.h.Consuming(false) // from now on, not being subscribed for long is unhealthy
	return c.conn.resubscribe(ctx, c.cfg.Log, "projector consumer", c.session, func() { c.h.Consuming(false) })
}

// session subscribes once and consumes until the channel or ctx ends.
func (c *ProjectorConsumer) session(ctx context.Context) error {
	changed := c.conn.Changed()
	ch, err := c.conn.Channel()
	if err != nil {
		return err
	}
	defer func() { go func() { _ = ch.Close() }() }()
	if err := DeclareProjector(ch); err != nil {
		return err
	}
	if err := ch.Qos(c.cfg.Prefetch, 0, false); err != nil {
		return fmt.Errorf("qos: %w", err)
	}
	dead, err := c.conn.Channel()
	if err != nil {
		return err
	}
	defer func() { go func() { _ = dead.Close() }() }()
	if err := dead.Confirm(false); err != nil {
		return fmt.Errorf("confirm mode: %w", err)
	}
	deliveries, err := ch.Consume(ProjectorQueue, "", false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume %s: %w", ProjectorQueue, err)
	}
	c.h.Consuming(true)
	c.cfg.Log.Info("projector consumer subscribed", "queue", ProjectorQueue, "prefetch", c.cfg.Prefetch)

	idle := time.NewTicker(c.cfg.IdleEvery)
	defer idle.Stop()
	for {
		batch, err := c.collect(ctx, deliveries, changed, idle.C)
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
		if err := c.settle(ctx, ch, dead, batch, verdicts); err != nil {
			return err
		}
		idle.Reset(c.cfg.IdleEvery)
	}
}

// collect waits for a first delivery, then takes what comes within the
// linger time, up to the batch size. No delivery before an idle tick
// returns an empty batch.
func (c *ProjectorConsumer) collect(ctx context.Context, deliveries <-chan amqp.Delivery, changed <-chan struct{}, idle <-chan time.Time) ([]amqp.Delivery, error) {
	var batch []amqp.Delivery
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-changed:
		return nil, errors.New("connection changed")
	case <-idle:
		return nil, nil
	case d, ok := <-deliveries:
		if !ok {
			return nil, errors.New("deliveries closed (channel or connection lost)")
		}
		batch = append(batch, d)
	}
	linger := time.NewTimer(c.cfg.Linger)
	defer linger.Stop()
	for len(batch) < c.cfg.BatchSize {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case d, ok := <-deliveries:
			if !ok {
				// The channel died: its tags cannot be acked; the broker
				// hands these messages out again.
				return nil, errors.New("deliveries closed (channel or connection lost)")
			}
			batch = append(batch, d)
		case <-linger.C:
			return batch, nil
		}
	}
	return batch, nil
}

// settle carries out the verdicts: retries go back to the queue, dead
// letters are published (with confirm) and then acked, and everything else
// is acked with one multiple ack. That ack is safe: every earlier delivery
// on this channel is settled by now (batches are settled in order, and the
// other verdicts of this batch were settled one by one just before).
func (c *ProjectorConsumer) settle(ctx context.Context, ch, dead *amqp.Channel, batch []amqp.Delivery, verdicts []projector.Verdict) error {
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
			if err := ch.Nack(d.DeliveryTag, false, true); err != nil {
				return fmt.Errorf("nack: %w", err)
			}
		case projector.DeadLetter:
			if err := c.deadLetter(ctx, dead, d, v.Reason); err != nil {
				c.cfg.Log.Warn("dead-letter publish failed; handing the message back", "err", err)
				if err := ch.Nack(d.DeliveryTag, false, true); err != nil {
					return fmt.Errorf("nack: %w", err)
				}
				continue
			}
			if err := ch.Ack(d.DeliveryTag, false); err != nil {
				return fmt.Errorf("ack: %w", err)
			}
		}
	}
	if last > 0 {
		if err := ch.Ack(last, true); err != nil {
			return fmt.Errorf("ack: %w", err)
		}
	}
	return nil
}

// deadLetter publishes d to the dead-letter exchange with the reason and
// where it came from, and waits for the broker's confirm.
func (c *ProjectorConsumer) deadLetter(ctx context.Context, dead *amqp.Channel, d amqp.Delivery, reason string) error {
	headers := amqp.Table{}
	for k, v := range d.Headers {
		headers[k] = v
	}
	if len(reason) > 2000 {
		reason = reason[:2000] + "…"
	}
	headers[HeaderDeathReason] = reason
	headers[HeaderOriginalExchange] = d.Exchange
	headers[HeaderOriginalRoutingKey] = d.RoutingKey
	headers[HeaderOriginalQueue] = ProjectorQueue
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dc, err := dead.PublishWithDeferredConfirmWithContext(ctx, DeadExchange, ProjectorQueue, false, false, amqp.Publishing{
		Headers:         headers,
		ContentType:     d.ContentType,
		ContentEncoding: d.ContentEncoding,
		DeliveryMode:    amqp.Persistent,
		CorrelationId:   d.CorrelationId,
		MessageId:       d.MessageId,
		Timestamp:       d.Timestamp,
		Type:            d.Type,
		AppId:           d.AppId,
		Body:            d.Body,
	})
	if err != nil {
		return fmt.Errorf("publish to %s: %w", DeadExchange, err)
	}
	ok, err := dc.WaitContext(ctx)
	if err != nil {
		return fmt.Errorf("confirm from %s: %w", DeadExchange, err)
	}
	if !ok {
		return fmt.Errorf("%s did not confirm", DeadExchange)
	}
	c.cfg.Log.Warn("message dead-lettered", "queue", ProjectorDeadQueue, "routingKey", d.RoutingKey, "reason", reason)
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
	}
	return m
}
