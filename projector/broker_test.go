package projector_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/rabbitmq"
)

// broker is a fresh vhost with the projector's topology declared and a
// channel for the test's own publishing and reading.
type broker struct {
	name string // the connection's name, unique per test
	conn *rabbitmq.Conn
	ch   *amqp.Channel
}

func newBroker(t *testing.T) *broker {
	t.Helper()
	url := testenv.RabbitMQ(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	name := testenv.Name("projector-test")
	conn, err := rabbitmq.Dial(ctx, url, name, testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// Declared before anything is published: the relay publishes without
	// declaring consumers' queues.
	if err := rabbitmq.DeclareProjector(ch); err != nil {
		t.Fatal(err)
	}
	if err := rabbitmq.DeclareProjected(ch); err != nil {
		t.Fatal(err)
	}
	return &broker{name: name, conn: conn, ch: ch}
}

func (b *broker) publish(t *testing.T, key string, msg amqp.Publishing) {
	t.Helper()
	if err := b.ch.PublishWithContext(context.Background(), rabbitmq.EventsExchange, key, false, false, msg); err != nil {
		t.Fatal(err)
	}
}

func (b *broker) publishRecords(t *testing.T, recs []event.Record) {
	t.Helper()
	for _, r := range recs {
		m, err := rabbitmq.EncodeRecord(r)
		if err != nil {
			t.Fatal(err)
		}
		b.publish(t, rabbitmq.RoutingKey(r.Envelope), m)
	}
}

// queueLen is the number of ready messages in a queue.
// It opens a channel of its own: the broker may have restarted since the
// test's channel was opened.
func (b *broker) queueLen(t *testing.T, name string) int {
	t.Helper()
	var ch *amqp.Channel
	waitFor(t, "a channel", 30*time.Second, func() bool {
		var err error
		ch, err = b.conn.Channel()
		return err == nil
	})
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(name, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	return q.Messages
}

// startConsumer runs the projector's consumer until the test ends.
func startConsumer(t *testing.T, b *broker, p *projector.Projector) {
	t.Helper()
	c, err := rabbitmq.NewProjectorConsumer(b.conn, p, rabbitmq.ConsumerConfig{Linger: 10 * time.Millisecond, Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("consumer: %v", err)
		}
	})
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestPoisonGoesToDeadLetterQueue publishes real events through RabbitMQ
// with two poison messages among them — a body that is not JSON, and an
// event of a type this build does not know — and checks that both land in
// projector.dead with their reason while every later event still applies.
func TestPoisonGoesToDeadLetterQueue(t *testing.T) {
	w := newWorld(t)
	rm := newReadModels(t)
	b := newBroker(t)

	// A queue of our own on the notices exchange, to see them.
	notices, err := b.ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.ch.QueueBind(notices.Name, "", rabbitmq.ProjectedExchange, false, nil); err != nil {
		t.Fatal(err)
	}
	pub, err := rabbitmq.NewNoticePublisher(b.conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	p, _ := newProjector(t, w, rm, pub)
	startConsumer(t, b, p)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	newCommander(w.svc, 3).run(t, ctx, 200, 4)
	recs := readLog(t, w.pool)
	half := len(recs) / 2
	b.publishRecords(t, recs[:half])

	publishPoison(t, b)

	b.publishRecords(t, recs[half:])

	last := recs[len(recs)-1].Cursor
	waitFor(t, "the watermark to reach the last event", time.Minute, func() bool { return p.Watermark() == last })
	waitFor(t, "two dead letters", 30*time.Second, func() bool { return b.queueLen(t, rabbitmq.ProjectorDeadQueue) == 2 })
	verify(t, w.pool, rm)

	checkDeadLetters(t, b)
	if n := b.queueLen(t, rabbitmq.ProjectorQueue); n != 0 {
		t.Errorf("%d messages left in the projector queue", n)
	}

	waitForLastNotice(t, b, notices.Name, last)
	if err := p.Healthy(0); err != nil {
		t.Errorf("healthy: %v", err)
	}
}

// publishPoison publishes two messages the projector cannot handle: bad JSON,
// and an event of a type from the future.
func publishPoison(t *testing.T, b *broker) {
	b.publish(t, "product.ProductCreated", amqp.Publishing{ContentType: "application/json", Body: []byte(`{"id": "x", "streamId":`)})
	_, sv, data, _ := event.Encode(event.ProductRenamed{Name: "from the future"})
	unknown, err := rabbitmq.EncodeRecord(event.Record{
		Envelope: event.Envelope{ID: "0b1f6c1e-0000-4000-8000-000000000001", Position: 1 << 40, StreamID: "p-future",
			StreamType: event.StreamProduct, Version: 1, Type: "ProductTeleported", SchemaVersion: sv, Data: data, OccurredAt: time.Now()},
		Cursor: event.Cursor{Tx: 1 << 40, Position: 1 << 40},
		Prev:   event.Cursor{Tx: 1 << 40, Position: 1<<40 - 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	b.publish(t, "product.ProductTeleported", unknown)
}

// checkDeadLetters takes the two dead letters and checks they are the bad
// JSON and the unknown type, with their routing keys and reasons.
func checkDeadLetters(t *testing.T, b *broker) {
	reasons := map[string]amqp.Table{}
	for range 2 {
		d, ok, err := b.ch.Get(rabbitmq.ProjectorDeadQueue, true)
		if err != nil || !ok {
			t.Fatalf("get dead letter: %v %v", ok, err)
		}
		reason, _ := d.Headers[rabbitmq.HeaderDeathReason].(string)
		reasons[reason] = d.Headers
		t.Logf("dead letter: %s -> %q", d.Headers[rabbitmq.HeaderOriginalRoutingKey], reason)
		if d.Headers[rabbitmq.HeaderOriginalExchange] != rabbitmq.EventsExchange {
			t.Errorf("dead letter without its original exchange: %v", d.Headers)
		}
	}
	var sawBadJSON, sawUnknown bool
	for reason, h := range reasons {
		switch {
		case strings.Contains(reason, "malformed event message"):
			sawBadJSON = h[rabbitmq.HeaderOriginalRoutingKey] == "product.ProductCreated"
		case strings.Contains(reason, "unknown event type") && strings.Contains(reason, "ProductTeleported"):
			sawUnknown = h[rabbitmq.HeaderOriginalRoutingKey] == "product.ProductTeleported" && strings.Contains(reason, "attempts")
		}
	}
	if !sawBadJSON || !sawUnknown {
		t.Errorf("dead letters %v: want the bad JSON and the unknown type, with their routing keys", reasons)
	}
}

// waitForLastNotice waits until the last notice on queue carries last.
func waitForLastNotice(t *testing.T, b *broker, queue string, last event.Cursor) {
	var lastNotice projector.Notice
	waitFor(t, "a notice with the final watermark", 10*time.Second, func() bool {
		for {
			d, ok, err := b.ch.Get(queue, true)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				return lastNotice.Watermark == last
			}
			if d.Type != projector.NoticeType {
				t.Fatalf("notice of type %q", d.Type)
			}
			if lastNotice, err = projector.DecodeNotice(d.Body); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestConsumerResubscribes drops the consumer's connection and checks that
// it subscribes again and the rest of the events apply.
func TestConsumerResubscribes(t *testing.T) {
	w := newWorld(t)
	rm := newReadModels(t)
	b := newBroker(t)
	p, reg := newProjector(t, w, rm, nil)
	startConsumer(t, b, p)

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	newCommander(w.svc, 5).run(t, ctx, 100, 4)
	recs := readLog(t, w.pool)
	half := len(recs) / 2
	b.publishRecords(t, recs[:half])
	waitFor(t, "the first half", 30*time.Second, func() bool { return p.Watermark() == recs[half-1].Cursor })

	// Close every connection of the vhost named like ours, from the
	// management API, as a broker restart would.
	lost := b.conn.Changed()
	closeConnections(t, b.name)
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the connection was not lost")
	}
	waitFor(t, "the connection to come back", 30*time.Second, func() bool {
		return b.conn.Check(context.Background()) == nil
	})
	ch, err := b.conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	b.ch = ch
	b.publishRecords(t, recs[half:])
	waitFor(t, "the second half", 30*time.Second, func() bool { return p.Watermark() == recs[len(recs)-1].Cursor })
	verify(t, w.pool, rm)
	waitFor(t, "the lag to read 0 once the queue is idle", 10*time.Second, func() bool {
		return metric(t, reg, "splitstream_projector_lag_seconds") == 0 && metric(t, reg, "splitstream_projector_lag_positions") == 0
	})
	if err := p.Healthy(0); err != nil {
		t.Errorf("healthy: %v", err)
	}
}

func closeConnections(t *testing.T, name string) {
	t.Helper()
	// The management API lists a new connection after its next stats
	// interval (5 s by default).
	var mine []string
	waitFor(t, "the connection to show in the management API", 20*time.Second, func() bool {
		var conns []struct {
			Name       string         `json:"name"`
			ClientProp map[string]any `json:"client_properties"`
		}
		if err := management("GET", "/api/connections", &conns); err != nil {
			t.Fatal(err)
		}
		for _, c := range conns {
			if c.ClientProp["connection_name"] == name {
				mine = append(mine, c.Name)
			}
		}
		return len(mine) > 0
	})
	for _, c := range mine {
		if err := management("DELETE", "/api/connections/"+url.PathEscape(c), nil); err != nil {
			t.Fatal(err)
		}
	}
}

// management calls RabbitMQ's management API and decodes the answer.
func management(method, path string, out any) error {
	base, err := url.Parse(testenv.ManagementURL())
	if err != nil {
		return err
	}
	req, err := http.NewRequest(method, strings.TrimRight(base.String(), "/")+path, nil)
	if err != nil {
		return err
	}
	if base.User != nil {
		pw, _ := base.User.Password()
		req.SetBasicAuth(base.User.Username(), pw)
		req.URL.User = nil
	}
	res, err := (&http.Client{Timeout: 15 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode >= 300 {
		return fmt.Errorf("%s %s: %s", method, path, res.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(res.Body).Decode(out)
}
