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

// Publisher publishes event records to the events exchange on a channel in
// confirm mode, and returns only once the broker confirmed all of a batch.
type Publisher struct {
	mu sync.Mutex // one batch at a time on one channel
	ch cachedChannel
}

var _ relay.Publisher = (*Publisher)(nil)

// NewPublisher returns a publisher on conn. It opens its channel on first
// use, so it can be built while the broker is away.
func NewPublisher(conn *Conn) (*Publisher, error) {
	if conn == nil {
		return nil, errors.New("rabbitmq: nil connection")
	}
	return &Publisher{ch: cachedChannel{conn: conn, setup: func(ch *amqp.Channel) error {
		if err := ch.Confirm(false); err != nil {
			return fmt.Errorf("confirm mode: %w", err)
		}
		return DeclareTopology(ch)
	}}}, nil
}

// Publish sends every record, persistent and not mandatory (queues are the
// consumers' to declare), then waits for each confirm. After any failure the
// channel is dropped and the next call opens a fresh one, so a channel that
// saw a nack, a timeout or a reconnect is never reused.
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
	ch, err := p.ch.get()
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	confirms := make([]*amqp.DeferredConfirmation, len(records))
	for i, r := range records {
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, EventsExchange, RoutingKey(r.Envelope), false, false, msgs[i])
		if err != nil {
			p.ch.drop()
			return fmt.Errorf("publish event %s: %w", r.Envelope.ID, err)
		}
		confirms[i] = dc
	}
	for i, dc := range confirms {
		acked, err := dc.WaitContext(ctx)
		if err != nil {
			p.ch.drop()
			return fmt.Errorf("confirm of event %s: %w", records[i].Envelope.ID, err)
		}
		if !acked {
			// A nack, or the channel closed before the confirm came (the
			// library resolves outstanding confirms as nacks then).
			p.ch.drop()
			return fmt.Errorf("broker did not confirm event %s (nack or channel closed)", records[i].Envelope.ID)
		}
	}
	return nil
}

// Close closes the publisher's channel; the connection stays open.
func (p *Publisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ch.drop()
}
