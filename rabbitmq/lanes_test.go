package rabbitmq_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/rabbitmq"
)

// With lanes, a record reaches exactly its lane's queue with its lane
// headers, which decode back into the record; a record without a lane (a
// relay from before lanes) goes to the projector queue, the unrouted
// intake, and is not lost. The projector queue no longer takes every event.
func TestLanesRouteByHeader(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	conn, err := rabbitmq.Dial(context.Background(), amqpURL, "test", testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	pub, err := rabbitmq.NewPublisher(conn, rabbitmq.WithLanes(4))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pub.Close)
	r1, r2, r3 := record(1), record(2), record(3)
	r1.Lanes, r1.Lane, r1.LanePrev = 4, 2, event.Cursor{Tx: 7, Position: 7}
	r2.Lanes, r2.Lane, r2.LanePrev = 4, 0, event.Cursor{}
	// r3 has no lane.
	if err := pub.Publish(context.Background(), []event.Record{r1, r2, r3}); err != nil {
		t.Fatal(err)
	}
	raw, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	ch, err := raw.Channel()
	if err != nil {
		t.Fatal(err)
	}
	// Quorum queues with a single active consumer take no basic.get: consume.
	consumers := map[string]<-chan amqp.Delivery{}
	get := func(q string) (amqp.Delivery, bool) {
		t.Helper()
		c, ok := consumers[q]
		if !ok {
			if c, err = ch.Consume(q, "", true, false, false, false, nil); err != nil {
				t.Fatal(err)
			}
			consumers[q] = c
		}
		select {
		case d := <-c:
			return d, true
		case <-time.After(time.Second):
			return amqp.Delivery{}, false
		}
	}
	for lane, want := range map[int]event.Record{2: r1, 0: r2} {
		d, ok := get(rabbitmq.LaneQueue(lane))
		if !ok {
			t.Fatalf("lane %d: no message", lane)
		}
		got, err := rabbitmq.DecodeRecord(d)
		if err != nil {
			t.Fatal(err)
		}
		if got.Lane != want.Lane || got.Lanes != 4 || got.LanePrev != want.LanePrev || got.Cursor != want.Cursor {
			t.Fatalf("lane %d: decoded %+v, want lane %d prev %v", lane, got, want.Lane, want.LanePrev)
		}
		if _, more := get(rabbitmq.LaneQueue(lane)); more {
			t.Fatalf("lane %d: a second message", lane)
		}
	}
	for _, lane := range []int{1, 3} {
		if _, ok := get(rabbitmq.LaneQueue(lane)); ok {
			t.Fatalf("lane %d got a message of another lane", lane)
		}
	}
	d, ok := get(rabbitmq.ProjectorQueue)
	if !ok || d.MessageId != r3.Envelope.ID {
		t.Fatalf("intake: %v %q, want the unrouted record %s", ok, d.MessageId, r3.Envelope.ID)
	}
	if _, more := get(rabbitmq.ProjectorQueue); more {
		t.Fatal("the intake took a routed record too")
	}
}

// A lane header out of range is a malformed message.
func TestLaneHeadersChecked(t *testing.T) {
	r := record(1)
	r.Lanes, r.Lane = 4, 1
	m, err := rabbitmq.EncodeRecord(r)
	if err != nil {
		t.Fatal(err)
	}
	m.Headers[rabbitmq.HeaderLane] = int64(9)
	if _, err := rabbitmq.DecodeRecord(amqp.Delivery{Headers: m.Headers, Body: m.Body}); err == nil {
		t.Fatal("lane 9 of 4 accepted")
	}
}
