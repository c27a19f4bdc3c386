package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/relay"
)

// publishChunk is the most messages in flight at once: the return
// channel's buffer holds that many, so the library never blocks handing
// a returned message over while the publisher waits for confirms.
const publishChunk = 500

// Publisher publishes event records to the events exchange on a channel in
// confirm mode, mandatory, and returns only once the broker confirmed all
// of a batch and returned none of it.
type Publisher struct {
	mu      sync.Mutex // one batch at a time on one channel
	ch      cachedChannel
	returns <-chan amqp.Return // the current channel's returned messages
	lanes   int                // projector lanes declared; 0: the single projector queue
}

var _ relay.Publisher = (*Publisher)(nil)

// PublisherOption configures a Publisher.
type PublisherOption func(*Publisher)

// WithLanes declares the topology of lanes projector lanes (DeclareLanes)
// instead of the single projector queue: the relay then stamps every
// record with its lane.
func WithLanes(lanes int) PublisherOption { return func(p *Publisher) { p.lanes = lanes } }

// NewPublisher returns a publisher on conn. It opens its channel on first
// use, so it can be built while the broker is away.
func NewPublisher(conn *Conn, opts ...PublisherOption) (*Publisher, error) {
	if conn == nil {
		return nil, errors.New("rabbitmq: nil connection")
	}
	p := &Publisher{}
	for _, o := range opts {
		o(p)
	}
	p.ch = cachedChannel{conn: conn, setup: func(ch *amqp.Channel) error {
		if err := ch.Confirm(false); err != nil {
			return fmt.Errorf("confirm mode: %w", err)
		}
		// setup runs inside get, under p.mu.
		p.returns = ch.NotifyReturn(make(chan amqp.Return, publishChunk))
		return conn.Declare(ch, func(ch *amqp.Channel) error {
			if p.lanes > 0 {
				if err := DeclareLanes(ch, p.lanes); err != nil {
					return err
				}
				return DeclareSaga(ch)
			}
			return DeclareTopology(ch)
		})
	}}
	return p, nil
}

// Publish sends every record, persistent and mandatory, then waits for each
// confirm. A message no queue takes is returned by the broker (basic.return,
// before its ack) and counts as not delivered: Publish fails, so the relay
// does not move its checkpoint past it. After any failure the channel is
// dropped and the next call opens a fresh one, so a channel that saw a
// nack, a return, a timeout or a reconnect is never reused.
func (p *Publisher) Publish(ctx context.Context, records []event.Record) error {
	if len(records) == 0 {
		return nil
	}
	msgs := make([]amqp.Publishing, len(records))
	for i, r := range records {
		m, err := EncodeRecord(r)
		if err != nil {
			return err
		}
		msgs[i] = m
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	for start := 0; start < len(records); start += publishChunk {
		end := min(start+publishChunk, len(records))
		if err := p.publish(ctx, records[start:end], msgs[start:end]); err != nil {
			p.ch.drop()
			return err
		}
	}
	return nil
}

// publish sends at most publishChunk messages and waits for their
// confirms. The library hands a basic.return over before it resolves the
// ack that follows it, so once every confirm is in, every return of the
// chunk is in the buffer.
func (p *Publisher) publish(ctx context.Context, records []event.Record, msgs []amqp.Publishing) error {
	ch, err := p.ch.get()
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	confirms := make([]*amqp.DeferredConfirmation, len(records))
	for i, r := range records {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, EventsExchange, RoutingKey(r.Envelope), true, false, msgs[i])
		if err != nil {
			return fmt.Errorf("publish event %s: %w", r.Envelope.ID, err)
		}
		confirms[i] = dc
	}
	for i, dc := range confirms {
		acked, err := dc.WaitContext(ctx)
		if err != nil {
			return fmt.Errorf("confirm of event %s: %w", records[i].Envelope.ID, err)
		}
		if !acked {
			// A nack, or the channel closed before the confirm came (the
			// library resolves outstanding confirms as nacks then).
			return fmt.Errorf("broker did not confirm event %s (nack or channel closed)", records[i].Envelope.ID)
		}
	}
	select {
	case ret, ok := <-p.returns:
		if !ok {
			return errors.New("publish: channel closed")
		}
		return fmt.Errorf("broker returned event %s: no queue takes routing key %q (%d %s)",
			ret.MessageId, ret.RoutingKey, ret.ReplyCode, ret.ReplyText)
	default:
		return nil
	}
}

// Close closes the publisher's channel; the connection stays open.
func (p *Publisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ch.drop()
}
