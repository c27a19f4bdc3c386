// Package rabbitmq owns Splitstream's use of RabbitMQ: a connection that
// heals itself, the topology (exchanges, queues, dead-lettering), a publisher
// that waits for confirms, and consumers that ack only after their handler
// has made the effect durable.
package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The exchanges. EventsExchange and ProjectedExchange are part of the
// external contract (../shared/ARCHITECTURE.md, beside the repository);
// DeadExchange is this design's (docs/ARCHITECTURE.md, "Broker topology").
const (
	EventsExchange    = "splitstream.events"
	ProjectedExchange = "splitstream.projected"
	DeadExchange      = "splitstream.dlx"
)

// Conn keeps one AMQP connection open, redialling with backoff when the
// broker goes away. Users ask it for channels and watch Changed to redo their
// setup after a reconnect.
type Conn struct {
	url  string
	log  *slog.Logger
	name string

	mu      sync.Mutex
	conn    *amqp.Connection
	lastErr error
	changed chan struct{} // closed and replaced on every (re)connect or loss
	done    chan struct{}

	declaring sync.Mutex // one Declare at a time
}

// Dial connects to url and keeps the connection up until Close. The first
// attempt's failure is returned, in one line a person can act on.
func Dial(ctx context.Context, rawURL, name string, log *slog.Logger) (*Conn, error) {
	c := &Conn{url: rawURL, log: log, name: name, changed: make(chan struct{}), done: make(chan struct{})}
	conn, err := c.dial()
	if err != nil {
		return nil, Unreachable(rawURL, err)
	}
	c.set(conn, nil)
	go c.keep(conn)
	return c, nil
}

func (c *Conn) dial() (*amqp.Connection, error) {
	cfg := amqp.Config{
		Heartbeat:  10 * time.Second,
		Locale:     "en_US",
		Properties: amqp.Table{"connection_name": c.name},
		Dial:       amqp.DefaultDial(5 * time.Second),
	}
	return amqp.DialConfig(c.url, cfg)
}

// Unreachable turns a dial failure into the one line a person needs.
func Unreachable(rawURL string, err error) error {
	host := rawURL
	if u, perr := url.Parse(rawURL); perr == nil {
		host = u.Host
	}
	reason := "unreachable"
	switch msg := err.Error(); {
	case strings.Contains(msg, "refused"):
		reason = "connection refused"
	case strings.Contains(msg, "403") || strings.Contains(msg, "ACCESS_REFUSED"):
		reason = "access refused"
	case strings.Contains(msg, "vhost"):
		reason = "no such vhost"
	case strings.Contains(msg, "timeout"):
		reason = "timed out"
	}
	return fmt.Errorf("AMQP_URL: cannot connect to %s (%s) — is RabbitMQ running? Try: make services", host, reason)
}

func (c *Conn) set(conn *amqp.Connection, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.conn, c.lastErr = conn, err
	close(c.changed)
	c.changed = make(chan struct{})
}

// keep waits for the connection to close and redials until Close.
func (c *Conn) keep(conn *amqp.Connection) {
	for {
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case <-c.done:
			_ = conn.Close()
			return
		case amqpErr := <-closed:
			err := errors.New("connection closed")
			if amqpErr != nil {
				err = amqpErr
			}
			c.log.Warn("rabbitmq connection lost; reconnecting", "conn", c.name, "err", err)
			c.set(nil, err)
		}
		b := backoff.NewExponentialBackOff()
		b.InitialInterval, b.MaxInterval = 200*time.Millisecond, 5*time.Second
		for {
			select {
			case <-c.done:
				return
			case <-time.After(b.NextBackOff()):
			}
			next, err := c.dial()
			if err != nil {
				c.mu.Lock()
				c.lastErr = err
				c.mu.Unlock()
				continue
			}
			conn = next
			c.log.Info("rabbitmq reconnected", "conn", c.name)
			c.set(conn, nil)
			break
		}
	}
}

// ErrDisconnected means the broker is not reachable right now.
var ErrDisconnected = errors.New("rabbitmq: not connected")

// Declare runs declare (a topology's idempotent declarations) on ch, one
// declaration at a time on this connection. RabbitMQ answers a second
// declaration of a quorum queue that another channel is still declaring as
// soon as the queue is recorded, before its Raft member runs, and a consume
// right after it then fails with noproc, which the broker turns into a
// connection error (541 INTERNAL_ERROR, seen on 3.10 when every lane
// consumer of a process subscribed at once on a fresh vhost): every channel
// of the connection is lost and subscribes again. One at a time, a
// declaration that finds the queue comes after the one that started it.
func (c *Conn) Declare(ch *amqp.Channel, declare func(*amqp.Channel) error) error {
	c.declaring.Lock()
	defer c.declaring.Unlock()
	return declare(ch)
}

// Channel opens a channel on the current connection.
func (c *Conn) Channel() (*amqp.Channel, error) {
	c.mu.Lock()
	conn, lastErr := c.conn, c.lastErr
	c.mu.Unlock()
	if conn == nil || conn.IsClosed() {
		if lastErr != nil {
			return nil, fmt.Errorf("%w: %v", ErrDisconnected, lastErr)
		}
		return nil, ErrDisconnected
	}
	ch, err := conn.Channel()
	if err != nil {
		return nil, fmt.Errorf("open channel: %w", err)
	}
	return ch, nil
}

// Changed returns a channel closed at the next connect or loss.
func (c *Conn) Changed() <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.changed
}

// Check reports whether the connection is up, for readiness.
func (c *Conn) Check(context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.conn == nil || c.conn.IsClosed() {
		if c.lastErr != nil {
			return fmt.Errorf("rabbitmq unreachable: %v", c.lastErr)
		}
		return ErrDisconnected
	}
	return nil
}

// Close stops reconnecting and closes the connection.
func (c *Conn) Close() {
	select {
	case <-c.done:
	default:
		close(c.done)
	}
	c.mu.Lock()
	conn := c.conn
	c.mu.Unlock()
	if conn != nil {
		_ = conn.Close()
	}
}

// cachedChannel keeps one channel across calls and opens a new one when
// there is none, when it closed, or when the connection changed since it
// was opened; setup (confirm mode, declarations) runs on every new channel.
// Its user serializes the calls.
type cachedChannel struct {
	conn    *Conn
	setup   func(*amqp.Channel) error
	ch      *amqp.Channel
	changed <-chan struct{} // the connection's Changed when ch was opened
}

func (c *cachedChannel) get() (*amqp.Channel, error) {
	if c.ch != nil {
		select {
		case <-c.changed:
			c.drop()
		default:
			if !c.ch.IsClosed() {
				return c.ch, nil
			}
			c.drop()
		}
	}
	// Taken before opening: a reconnect in between makes the next call
	// reopen rather than keep a channel on a dead connection.
	changed := c.conn.Changed()
	ch, err := c.conn.Channel()
	if err != nil {
		return nil, err
	}
	if err := c.setup(ch); err != nil {
		_ = ch.Close()
		return nil, err
	}
	c.ch, c.changed = ch, changed
	return ch, nil
}

// drop forgets the channel, closing it in the background: Close waits for
// the broker's close-ok, and a hung broker must not hold the next call up.
func (c *cachedChannel) drop() {
	if ch := c.ch; ch != nil {
		go func() { _ = ch.Close() }()
	}
	c.ch, c.changed = nil, nil
}

// resubscribe runs session until ctx ends, and again after every loss of
// its channel or of the connection: at once (then backing off) when the
// connection changed, after a backoff otherwise. after, if set, runs when a
// session ends. A session that ran 30 s resets the backoff.
func (c *Conn) resubscribe(ctx context.Context, log *slog.Logger, what string, session func(context.Context) error, after func()) error {
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval, bo.MaxInterval = 100*time.Millisecond, 5*time.Second
	for {
		changed := c.Changed()
		began := time.Now()
		err := session(ctx)
		if after != nil {
			after()
		}
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(began) > 30*time.Second {
			bo.Reset()
		}
		if errors.Is(err, ErrDisconnected) {
			// The connection logs its loss and its return; this would repeat it.
			log.Debug(what+" waiting for the broker", "err", err)
		} else {
			log.Warn(what+" lost its subscription; subscribing again", "err", err)
		}
		wait := bo.NextBackOff()
		select {
		case <-ctx.Done():
			return nil
		case <-changed: // reconnected (or lost): try soon
			wait /= 4
		case <-time.After(wait):
			wait = 0
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}
