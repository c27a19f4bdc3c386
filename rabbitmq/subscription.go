package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// subscription is the skeleton every consumer of a durable queue shares:
// subscribe (declare, qos, consume), hand deliveries over in batches,
// settle them with manual acks, and subscribe again after every loss. The
// projector and saga consumers differ only in these fields and in what they
// do with a batch.
type subscription struct {
	what     string                    // names the consumer in logs: "projector consumer"
	queue    string                    // the queue consumed
	declare  func(*amqp.Channel) error // the topology the queue needs, declared idempotently
	prefetch int                       // unacked messages the broker sends ahead
	// batchSize bounds a batch. A batch is handed over once no further
	// delivery comes within gap, so a lone message waits only that; linger
	// bounds how long a batch that keeps filling waits for more.
	batchSize   int
	gap, linger time.Duration
	// confirmed opens a second channel in confirm mode for publishing dead
	// letters with a reason (the projector's); without it, dead letters are
	// rejected into the queue's dead-letter exchange (the saga's).
	confirmed bool
	log       *slog.Logger
}

// session is one subscription's life on one channel. Each delivery keeps
// its headers (amqp.Delivery.Headers): per-message context, such as trace
// propagation, is read from there by the consumer's decode step.
type session struct {
	sub        *subscription
	ch         *amqp.Channel
	dead       *amqp.Channel // confirm-mode channel for dead letters; nil unless sub.confirmed
	deliveries <-chan amqp.Delivery
	changed    <-chan struct{}
}

// run subscribes and calls serve with each session until ctx ends, again
// after every loss of the channel or the connection. after, when set, runs
// when a session ends. Messages unacked on a lost channel come back from
// the broker, and handlers treat them as the duplicates they are.
func (s *subscription) run(ctx context.Context, conn *Conn, serve func(context.Context, *session) error, after func()) error {
	return conn.resubscribe(ctx, s.log, s.what, func(ctx context.Context) error {
		sess, closeSession, err := s.open(conn)
		if err != nil {
			return err
		}
		defer closeSession()
		s.log.Info(s.what+" subscribed", "queue", s.queue, "prefetch", s.prefetch)
		return serve(ctx, sess)
	}, after)
}

// open declares the topology, sets the prefetch and starts consuming; the
// returned func closes the session's channels without waiting on them.
func (s *subscription) open(conn *Conn) (*session, func(), error) {
	sess := &session{sub: s, changed: conn.Changed()}
	closeAll := func() {
		for _, ch := range []*amqp.Channel{sess.ch, sess.dead} {
			if ch != nil {
				go func() { _ = ch.Close() }()
			}
		}
	}
	fail := func(err error) (*session, func(), error) { closeAll(); return nil, nil, err }
	var err error
	if sess.ch, err = conn.Channel(); err != nil {
		return fail(err)
	}
	if err := conn.Declare(sess.ch, s.declare); err != nil {
		return fail(err)
	}
	if err := sess.ch.Qos(s.prefetch, 0, false); err != nil {
		return fail(fmt.Errorf("qos: %w", err))
	}
	if s.confirmed {
		if sess.dead, err = conn.Channel(); err != nil {
			return fail(err)
		}
		if err := sess.dead.Confirm(false); err != nil {
			return fail(fmt.Errorf("confirm mode: %w", err))
		}
	}
	if sess.deliveries, err = sess.ch.Consume(s.queue, "", false, false, false, false, nil); err != nil {
		return fail(fmt.Errorf("consume %s: %w", s.queue, err))
	}
	return sess, closeAll, nil
}

var errDeliveriesClosed = errors.New("deliveries closed (channel or connection lost)")

// collect waits for a first delivery, then takes what keeps arriving, up to
// the batch size: the batch is handed over once no further delivery comes
// within the gap, and waits at most the linger while deliveries keep
// arriving. No delivery before an idle tick returns an empty batch.
func (s *session) collect(ctx context.Context, idle <-chan time.Time) ([]amqp.Delivery, error) {
	return collect(ctx, s.deliveries, s.changed, idle, s.sub.batchSize, s.sub.gap, s.sub.linger)
}

func collect(ctx context.Context, deliveries <-chan amqp.Delivery, changed <-chan struct{}, idle <-chan time.Time, size int, gap, linger time.Duration) ([]amqp.Delivery, error) {
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
			return nil, errDeliveriesClosed
		}
		batch = append(batch, d)
	}
	if len(batch) >= size {
		return batch, nil
	}
	lingerEnds := time.NewTimer(linger)
	defer lingerEnds.Stop()
	var quiet *time.Timer // made only when a delivery is not ready at once
	defer func() {
		if quiet != nil {
			quiet.Stop()
		}
	}()
	for len(batch) < size {
		var (
			d  amqp.Delivery
			ok bool
		)
		select {
		case d, ok = <-deliveries: // ready now: no timer needed
		default:
			if quiet == nil {
				quiet = time.NewTimer(gap)
			} else {
				quiet.Reset(gap)
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-lingerEnds.C:
				return batch, nil
			case <-quiet.C:
				return batch, nil // nothing more is arriving: hand over now
			case d, ok = <-deliveries:
			}
		}
		if !ok {
			// The channel died: its tags cannot be acked; the broker
			// hands these messages out again.
			return nil, errDeliveriesClosed
		}
		batch = append(batch, d)
	}
	return batch, nil
}

// ack acks every delivery up to tag on the session's channel.
func (s *session) ack(tag uint64, multiple bool) error {
	if err := s.ch.Ack(tag, multiple); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// requeue hands a delivery back to the broker for another try.
func (s *session) requeue(tag uint64) error {
	if err := s.ch.Nack(tag, false, true); err != nil {
		return fmt.Errorf("nack: %w", err)
	}
	return nil
}

// reject nacks a delivery without requeue: the queue's dead-letter exchange
// takes it (the broker adds an x-death header saying where from).
func (s *session) reject(tag uint64) error {
	if err := s.ch.Nack(tag, false, false); err != nil {
		return fmt.Errorf("reject: %w", err)
	}
	return nil
}

// publishDead publishes d to the dead-letter exchange, keyed by the queue's
// name, with the reason and where it came from, on the confirm-mode channel,
// and waits for the broker's confirm.
func (s *session) publishDead(ctx context.Context, d amqp.Delivery, reason string) error {
	if s.dead == nil {
		return errors.New("dead-letter publish on a subscription without a confirm channel")
	}
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
	headers[HeaderOriginalQueue] = s.sub.queue
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	dc, err := s.dead.PublishWithDeferredConfirmWithContext(ctx, DeadExchange, s.sub.queue, false, false, amqp.Publishing{
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
	return nil
}
