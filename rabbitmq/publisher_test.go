package rabbitmq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/rabbitmq"
)

func record(n int) event.Record {
	return event.Record{
		Envelope: event.Envelope{
			ID: fmt.Sprintf("00000000-0000-0000-0000-%012d", n), Position: int64(n), StreamID: "p1",
			StreamType: event.StreamProduct, Version: n, Type: "ProductRenamed", SchemaVersion: 1,
			Data: json.RawMessage(`{"name":"x"}`), OccurredAt: time.Now(),
		},
		Cursor: event.Cursor{Tx: uint64(100 + n), Position: int64(n)},
		Prev:   event.Cursor{Tx: uint64(99 + n), Position: int64(n - 1)},
	}
}

// queue declares a queue bound to the events exchange with "#" through its
// own connection, and returns a function that gets the next message.
func queue(t *testing.T, amqpURL string) (rebind func(), next func() amqp.Delivery) {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	rebind = func() {
		t.Helper()
		if err := rabbitmq.DeclareEvents(ch); err != nil {
			t.Fatal(err)
		}
		if _, err := ch.QueueDeclare("test.publisher", true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind("test.publisher", "#", rabbitmq.EventsExchange, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	rebind()
	next = func() amqp.Delivery {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			d, ok, err := ch.Get("test.publisher", true)
			if err != nil {
				t.Fatal(err)
			}
			if ok {
				return d
			}
			if time.Now().After(deadline) {
				t.Fatal("no message")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return rebind, next
}

func newPublisher(t *testing.T, amqpURL string) (*rabbitmq.Conn, *rabbitmq.Publisher) {
	t.Helper()
	conn, err := rabbitmq.Dial(context.Background(), amqpURL, testenv.Name("publisher-test"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	pub, err := rabbitmq.NewPublisher(conn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	return conn, pub
}

// TestPublisherConfirmsAndEncodes: a confirmed batch is on the queue, in
// order, as EncodeRecord made it, under its routing key.
func TestPublisherConfirmsAndEncodes(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	_, next := queue(t, amqpURL)
	_, pub := newPublisher(t, amqpURL)
	recs := []event.Record{record(1), record(2), record(3)}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, recs); err != nil {
		t.Fatal(err)
	}
	for _, want := range recs {
		d := next()
		got, err := rabbitmq.DecodeRecord(d)
		if err != nil {
			t.Fatal(err)
		}
		if got.Envelope.ID != want.Envelope.ID || got.Cursor != want.Cursor || got.Prev != want.Prev ||
			d.RoutingKey != "product.ProductRenamed" || d.DeliveryMode != amqp.Persistent || d.MessageId != want.Envelope.ID {
			t.Errorf("got %+v (key %s), want %+v", got, d.RoutingKey, want)
		}
	}
	if err := pub.Publish(ctx, nil); err != nil {
		t.Errorf("empty batch: %v", err)
	}
}

// TestPublisherReopensAfterChannelError: when the broker closes the
// publisher's channel (here: the exchange was deleted under it), Publish
// fails instead of claiming a confirm, and the next call works on a fresh
// channel that declared the exchange again.
func TestPublisherReopensAfterChannelError(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	rebind, next := queue(t, amqpURL)
	_, pub := newPublisher(t, amqpURL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, []event.Record{record(1)}); err != nil {
		t.Fatal(err)
	}
	next()

	side, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer side.Close()
	sch, err := side.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := sch.ExchangeDelete(rabbitmq.EventsExchange, false, false); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, []event.Record{record(2)}); err == nil {
		t.Fatal("Publish to a deleted exchange returned no error")
	}
	rebind()
	if err := pub.Publish(ctx, []event.Record{record(2)}); err != nil {
		t.Fatalf("Publish after the channel error: %v", err)
	}
	if d := next(); d.MessageId != record(2).Envelope.ID {
		t.Errorf("got %s", d.MessageId)
	}
}

// TestPublisherSurvivesConnectionLoss: the broker closes the connection;
// Publish fails while it is away and succeeds once Conn has reconnected,
// on a new channel.
func TestPublisherSurvivesConnectionLoss(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	_, next := queue(t, amqpURL)
	conn, pub := newPublisher(t, amqpURL)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, []event.Record{record(1)}); err != nil {
		t.Fatal(err)
	}
	next()

	changed := conn.Changed()
	closeConnections(t, amqpURL)
	select {
	case <-changed:
	case <-ctx.Done():
		t.Fatal("Conn did not notice the connection closed")
	}
	var err error
	for {
		if err = pub.Publish(ctx, []event.Record{record(2)}); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("Publish never worked again: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if d := next(); d.MessageId != record(2).Envelope.ID {
		t.Errorf("got %s", d.MessageId)
	}
}

// closeConnections makes the broker close every connection to the URL's
// vhost whose name starts with publisher-test, through the management API.
func closeConnections(t *testing.T, amqpURL string) {
	t.Helper()
	u, _ := url.Parse(amqpURL)
	vhost := strings.TrimPrefix(u.Path, "/")
	base, _ := url.Parse(testenv.ManagementURL())
	user := base.User
	base.User = nil
	do := func(method, path string) *http.Response {
		req, err := http.NewRequest(method, strings.TrimRight(base.String(), "/")+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if user != nil {
			pw, _ := user.Password()
			req.SetBasicAuth(user.Username(), pw)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		res := do(http.MethodGet, "/api/vhosts/"+url.PathEscape(vhost)+"/connections")
		var conns []struct {
			Name  string `json:"name"`
			Props struct {
				Name string `json:"connection_name"`
			} `json:"client_properties"`
		}
		err := json.NewDecoder(res.Body).Decode(&conns)
		res.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		closed := 0
		for _, c := range conns {
			if strings.HasPrefix(c.Props.Name, "publisher-test") {
				res := do(http.MethodDelete, "/api/connections/"+url.PathEscape(c.Name))
				res.Body.Close()
				closed++
			}
		}
		if closed > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the publisher's connection never showed in the management API")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestPublisherTreatsAReturnAsNotDelivered: with no queue bound for a
// routing key the broker returns the mandatory message (and still acks
// it); Publish fails, so the relay does not move its checkpoint, and the
// same batch goes through once a queue takes it again.
func TestPublisherTreatsAReturnAsNotDelivered(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	_, pub := newPublisher(t, amqpURL)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := pub.Publish(ctx, []event.Record{record(1)}); err != nil {
		t.Fatal(err)
	}
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// The publisher declared the topology; take away the only binding
	// product events route by.
	if err := ch.QueueUnbind(rabbitmq.ProjectorQueue, "#", rabbitmq.EventsExchange, nil); err != nil {
		t.Fatal(err)
	}
	batch := []event.Record{record(2), record(3)}
	err = pub.Publish(ctx, batch)
	if err == nil || !strings.Contains(err.Error(), "returned") || !strings.Contains(err.Error(), "product.ProductRenamed") {
		t.Fatalf("publish with no queue for the key: %v, want a returned-message error naming the key", err)
	}
	if err := ch.QueueBind(rabbitmq.ProjectorQueue, "#", rabbitmq.EventsExchange, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := pub.Publish(ctx, batch); err != nil {
		t.Fatalf("publish once a queue takes the key again: %v", err)
	}
	// Exactly three messages: the returned batch was delivered nowhere.
	q, err := ch.QueueDeclarePassive(rabbitmq.ProjectorQueue, true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if q.Messages != 3 {
		t.Fatalf("projector queue holds %d messages, want 3", q.Messages)
	}
	// The projector queue is a single-active-consumer quorum queue: read
	// it by consuming, as the projector does.
	deliveries, err := ch.Consume(rabbitmq.ProjectorQueue, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for range 3 {
		select {
		case d := <-deliveries:
			got = append(got, d.MessageId)
		case <-ctx.Done():
			t.Fatalf("projector queue gave %v, want three messages", got)
		}
	}
	want := []string{record(1).Envelope.ID, record(2).Envelope.ID, record(3).Envelope.ID}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("projector queue holds %v, want %v", got, want)
	}
}
