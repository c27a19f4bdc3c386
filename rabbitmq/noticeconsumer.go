package rabbitmq

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/projector"
)

// NoticePrefetch is how many notices the broker sends ahead of the handler.
const NoticePrefetch = 256

// ConsumeNotices binds a fresh exclusive, auto-deleted queue to
// "splitstream.projected" (so every query instance sees every notice) and
// calls handle for each notice until ctx ends, binding again after a
// reconnect. Notices are hints (the watermark they carry is also in the
// checkpoint document), so each is acked as soon as it is handled; acks are
// manual only so the broker's prefetch bounds what sits in this process.
func ConsumeNotices(ctx context.Context, conn *Conn, log *slog.Logger, handle func(context.Context, projector.Notice), opts ...NoticeOption) error {
	var o noticeOptions
	for _, opt := range opts {
		opt(&o)
	}
	return conn.resubscribe(ctx, log, "projected notices consumer", func(ctx context.Context) error {
		return consumeNotices(ctx, conn, log, handle, o)
	}, func() {
		if o.stream != nil {
			o.stream(false)
		}
	})
}

// NoticeOption configures ConsumeNotices.
type NoticeOption func(*noticeOptions)

type noticeOptions struct {
	stream func(up bool)
}

// OnNoticeStream calls stream(true) once each subscription is bound and
// consuming, and stream(false) when it ends: notices published between
// the two calls were never seen by this process.
func OnNoticeStream(stream func(up bool)) NoticeOption {
	return func(o *noticeOptions) { o.stream = stream }
}

func consumeNotices(ctx context.Context, conn *Conn, log *slog.Logger, handle func(context.Context, projector.Notice), o noticeOptions) error {
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	var deliveries <-chan amqp.Delivery
	defer func() {
		// Drain while closing: a consumer whose deliveries nobody reads
		// blocks the connection's reader, and Close would wait forever.
		if deliveries != nil {
			go func() {
				for range deliveries {
				}
			}()
		}
		done := make(chan struct{})
		go func() { _ = ch.Close(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	}()
	if err := DeclareProjected(ch); err != nil {
		return err
	}
	q, err := ch.QueueDeclare("", false, true, true, false, amqp.Table{"x-max-length": 100_000})
	if err != nil {
		return fmt.Errorf("declare notice queue: %w", err)
	}
	if err := ch.QueueBind(q.Name, "", ProjectedExchange, false, nil); err != nil {
		return fmt.Errorf("bind notice queue: %w", err)
	}
	// Auto-ack would ignore the prefetch and let the broker push the whole
	// queue (up to x-max-length) into this process's memory.
	if err := ch.Qos(NoticePrefetch, 0, false); err != nil {
		return fmt.Errorf("notice qos: %w", err)
	}
	deliveries, err = ch.ConsumeWithContext(ctx, q.Name, "", false, true, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume notices: %w", err)
	}
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	if o.stream != nil {
		o.stream(true)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-closed:
			return fmt.Errorf("notice channel closed: %v", err)
		case d, ok := <-deliveries:
			if !ok {
				return fmt.Errorf("notice deliveries ended")
			}
			n, err := projector.DecodeNotice(d.Body)
			if err != nil {
				log.Warn("projected notices: skipping an unreadable notice", "err", err)
			} else {
				handle(TraceContext(ctx, d.Headers), n)
			}
			if err := d.Ack(false); err != nil {
				return fmt.Errorf("ack notice: %w", err)
			}
		}
	}
}
