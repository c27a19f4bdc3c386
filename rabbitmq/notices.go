package rabbitmq

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/projector"
)

// DeclareProjected declares, idempotently, the durable fanout exchange the
// projector announces durable batches on. Each query instance binds its own
// exclusive queue to it.
func DeclareProjected(ch *amqp.Channel) error {
	if err := ch.ExchangeDeclare(ProjectedExchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare exchange %s: %w", ProjectedExchange, err)
	}
	return nil
}

// NoticePublisher publishes projector.Notice messages to
// "splitstream.projected": transient and unconfirmed, since a notice only
// shortens a wait and the next one carries a newer watermark.
type NoticePublisher struct {
	mu sync.Mutex
	ch cachedChannel
}

var _ projector.NoticePublisher = (*NoticePublisher)(nil)

// NewNoticePublisher returns a publisher on conn; it opens its channel on
// first use.
func NewNoticePublisher(conn *Conn) (*NoticePublisher, error) {
	if conn == nil {
		return nil, errors.New("rabbitmq: nil connection")
	}
	return &NoticePublisher{ch: cachedChannel{conn: conn, setup: DeclareProjected}}, nil
}

// PublishNotice sends one notice as JSON.
func (p *NoticePublisher) PublishNotice(ctx context.Context, n projector.Notice) error {
	body, err := json.Marshal(n)
	if err != nil {
		return fmt.Errorf("encode notice: %w", err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	ch, err := p.ch.get()
	if err != nil {
		return fmt.Errorf("publish notice: %w", err)
	}
	err = ch.PublishWithContext(ctx, ProjectedExchange, "", false, false, amqp.Publishing{
		ContentType:  "application/json",
		DeliveryMode: amqp.Transient,
		Type:         projector.NoticeType,
		Timestamp:    n.At,
		AppId:        "splitstream",
		Headers:      injectTrace(ctx, nil),
		Body:         body,
	})
	if err != nil {
		p.ch.drop()
		return fmt.Errorf("publish notice: %w", err)
	}
	return nil
}

// Close closes the publisher's channel; the connection stays open.
func (p *NoticePublisher) Close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.ch.drop()
}
