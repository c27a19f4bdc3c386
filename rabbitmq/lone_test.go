package rabbitmq_test

import (
	"context"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/rabbitmq"
)

// signalHandler acks every message and says when a batch arrived.
type signalHandler struct{ got chan int }

func (h signalHandler) Handle(_ context.Context, msgs []projector.Message) ([]projector.Verdict, error) {
	h.got <- len(msgs)
	return make([]projector.Verdict, len(msgs)), nil // the zero verdict is Ack
}
func (signalHandler) Idle(context.Context) {}
func (signalHandler) Consuming(bool)       {}

// BenchmarkLoneMessage times one record from publish to the handler, one at
// a time (the low-load case of mutation → visible): through the projector
// consumer, beside the ceiling of a plain consumer of a plain queue bound to
// the same exchange, in the same run. The consumer's linger is the default
// (20 ms); a lone message should not wait for it.
func BenchmarkLoneMessage(b *testing.B) {
	amqpURL := testenv.RabbitMQ(b)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := testenv.Logger(b)
	conn, err := rabbitmq.Dial(ctx, amqpURL, "bench-lone", log)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	pub, err := rabbitmq.NewPublisher(conn)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	rec := orderRecord(1, "o-1", event.OrderPlaced{}.EventType(), 1)

	b.Run("ceiling=plain-consumer", func(b *testing.B) {
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		defer ch.Close()
		if err := rabbitmq.DeclareEvents(ch); err != nil {
			b.Fatal(err)
		}
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := ch.QueueBind(q.Name, "#", rabbitmq.EventsExchange, false, nil); err != nil {
			b.Fatal(err)
		}
		deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
		if err != nil {
			b.Fatal(err)
		}
		loneMessages(b, ctx, pub, rec, func() { <-deliveries })
	})

	b.Run("projector-consumer", func(b *testing.B) {
		h := signalHandler{got: make(chan int, 16)}
		c, err := rabbitmq.NewProjectorConsumer(conn, h, rabbitmq.ConsumerConfig{Log: log})
		if err != nil {
			b.Fatal(err)
		}
		cctx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = c.Run(cctx) }()
		defer func() { stop(); <-done }()
		waitForQueue(b, conn)
		batches := 0
		loneMessages(b, ctx, pub, rec, func() { <-h.got; batches++ })
		if batches != b.N {
			b.Fatalf("%d batches for %d lone messages", batches, b.N)
		}
	})
}

// loneMessages publishes b.N records one at a time, waiting for each.
func loneMessages(b *testing.B, ctx context.Context, pub *rabbitmq.Publisher, rec event.Record, wait func()) {
	b.ResetTimer()
	for range b.N {
		if err := pub.Publish(ctx, []event.Record{rec}); err != nil {
			b.Fatal(err)
		}
		wait()
	}
}

// waitForQueue returns once the projector queue exists: the exchange drops
// what no queue is bound for.
func waitForQueue(b testing.TB, conn *rabbitmq.Conn) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		ch, err := conn.Channel()
		if err != nil {
			b.Fatal(err)
		}
		_, err = ch.QueueDeclarePassive(rabbitmq.ProjectorQueue, true, false, false, false, amqp.Table{
			amqp.QueueTypeArg: amqp.QueueTypeQuorum, amqp.SingleActiveConsumerArg: true,
			"x-dead-letter-exchange": rabbitmq.DeadExchange, "x-dead-letter-routing-key": rabbitmq.ProjectorQueue,
		})
		_ = ch.Close()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("projector queue not declared: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A lone message reaches the handler although the linger is an hour: a
// batch is handed over as soon as nothing more is ready. Two messages
// published together still arrive, in one batch or two.
func TestProjectorConsumerHandsOverALoneMessage(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := testenv.Logger(t)
	conn, err := rabbitmq.Dial(ctx, amqpURL, "lone-message", log)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	h := signalHandler{got: make(chan int, 16)}
	c, err := rabbitmq.NewProjectorConsumer(conn, h, rabbitmq.ConsumerConfig{Linger: time.Hour, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(ctx) }()
	defer func() { cancel(); <-done }()
	waitForQueue(t, conn)
	pub, err := rabbitmq.NewPublisher(conn)
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	handed := func(want int) {
		t.Helper()
		got := 0
		for got < want {
			select {
			case n := <-h.got:
				got += n
			case <-time.After(30 * time.Second): // a bound on a hang, far below the linger
				t.Fatalf("%d of %d messages handed over; the batch waited for the linger", got, want)
			}
		}
	}
	if err := pub.Publish(ctx, []event.Record{orderRecord(1, "o-1", event.OrderPlaced{}.EventType(), 1)}); err != nil {
		t.Fatal(err)
	}
	handed(1)
	if err := pub.Publish(ctx, []event.Record{orderRecord(2, "o-2", event.OrderPlaced{}.EventType(), 1),
		orderRecord(3, "o-3", event.OrderPlaced{}.EventType(), 1)}); err != nil {
		t.Fatal(err)
	}
	handed(2)
}

// slowHandler acks every message after a fixed cost per batch, as a bulk
// request has, and counts what it was handed.
type slowHandler struct {
	cost    time.Duration
	handled chan int
}

func (h slowHandler) Handle(_ context.Context, msgs []projector.Message) ([]projector.Verdict, error) {
	time.Sleep(h.cost)
	h.handled <- len(msgs)
	return make([]projector.Verdict, len(msgs)), nil
}
func (slowHandler) Idle(context.Context) {}
func (slowHandler) Consuming(bool)       {}

// BenchmarkBacklogDrain drains a backlog of b.N records through the
// projector consumer into a handler that costs 5 ms a batch, and reports
// the mean batch size: handing a batch over once nothing is ready must
// still fill batches while a backlog streams in.
func BenchmarkBacklogDrain(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	log := testenv.Logger(b)
	records := make([]event.Record, b.N)
	for i := range records {
		records[i] = orderRecord(i+1, "o-1", event.OrderPlaced{}.EventType(), i+1)
	}
	conn := publishedBacklog(ctx, b, "bench-drain", rabbitmq.DeclareProjector, records)
	h := slowHandler{cost: 5 * time.Millisecond, handled: make(chan int, 1024)}
	c, err := rabbitmq.NewProjectorConsumer(conn, h, rabbitmq.ConsumerConfig{Log: log})
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(cctx) }()
	got, batches := 0, 0
	for got < b.N {
		got += <-h.handled
		batches++
	}
	b.StopTimer()
	stop()
	<-done
	b.ReportMetric(float64(got)/float64(batches), "msgs/batch")
}

// publishedBacklog connects to a fresh vhost, declares its topology with
// declare and publishes records there, a thousand at a time, with
// confirms: the backlog a drain benchmark then consumes on the connection
// it returns (closed when b ends).
func publishedBacklog(ctx context.Context, b *testing.B, name string, declare func(*amqp.Channel) error, records []event.Record) *rabbitmq.Conn {
	b.Helper()
	conn, err := rabbitmq.Dial(ctx, testenv.RabbitMQ(b), name, testenv.Logger(b))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(conn.Close)
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	if err := declare(ch); err != nil {
		b.Fatal(err)
	}
	_ = ch.Close()
	pub, err := rabbitmq.NewPublisher(conn)
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	for i := 0; i < len(records); i += 1000 {
		if err := pub.Publish(ctx, records[i:min(i+1000, len(records))]); err != nil {
			b.Fatal(err)
		}
	}
	return conn
}
