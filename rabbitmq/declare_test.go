package rabbitmq_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/rabbitmq"
)

// TestDeclarationsOnAConnectionTakeTurns: Declare runs one declaration at
// a time on a connection, whichever channels they come from.
func TestDeclarationsOnAConnectionTakeTurns(t *testing.T) {
	amqpURL := testenv.RabbitMQ(t)
	conn, err := rabbitmq.Dial(context.Background(), amqpURL, testenv.Name("declare-test"), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(conn.Close)
	var inFlight, most atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = ch.Close() })
		wg.Go(func() {
			err := conn.Declare(ch, func(ch *amqp.Channel) error {
				n := inFlight.Add(1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				defer inFlight.Add(-1)
				time.Sleep(5 * time.Millisecond) // overlap, were they not taking turns
				return rabbitmq.DeclareLanes(ch, 8)
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m != 1 {
		t.Errorf("%d declarations at once on one connection, want 1", m)
	}
}

// subscribedHandler says when its consumer is subscribed.
type subscribedHandler struct{ on chan<- bool }

func (h subscribedHandler) Handle(_ context.Context, msgs []projector.Message) ([]projector.Verdict, error) {
	return make([]projector.Verdict, len(msgs)), nil
}
func (subscribedHandler) Idle(context.Context) {}
func (h subscribedHandler) Consuming(on bool) {
	if on {
		select {
		case h.on <- true:
		default: // subscribed again and again: the test has failed already
		}
	}
}

// TestLaneConsumersSubscribingAtOnceKeepTheConnection: every lane consumer
// of a process and the unrouted intake subscribe at the same moment on a
// fresh vhost, where each declares the lanes' quorum queues; the
// connection is never lost doing it (RabbitMQ failed a consume that
// followed a declaration racing another channel's with a connection
// error, so every consumer subscribed twice).
func TestLaneConsumersSubscribingAtOnceKeepTheConnection(t *testing.T) {
	const lanes = 8
	amqpURL := testenv.RabbitMQ(t)
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := rabbitmq.Dial(ctx, amqpURL, testenv.Name("declare-test"), testenv.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	lost := conn.Changed()
	on := make(chan bool, 2*(lanes+1))
	h := subscribedHandler{on: on}
	var consumers []*rabbitmq.ProjectorConsumer
	for l := range lanes {
		c, err := rabbitmq.NewLaneConsumer(conn, h, l, lanes, rabbitmq.ConsumerConfig{Log: testenv.Logger(t)})
		if err != nil {
			t.Fatal(err)
		}
		consumers = append(consumers, c)
	}
	intake, err := rabbitmq.NewIntakeConsumer(conn, h, lanes, rabbitmq.ConsumerConfig{Log: testenv.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	consumers = append(consumers, intake)
	var wg sync.WaitGroup
	t.Cleanup(func() {
		cancel()
		wg.Wait()
		conn.Close()
	})
	start := make(chan struct{})
	for _, c := range consumers {
		wg.Go(func() {
			<-start
			_ = c.Run(ctx)
		})
	}
	close(start)
	deadline := time.After(30 * time.Second) // a bound for a broker that never answers, not a speed goal
	for range consumers {
		select {
		case <-on:
		case <-deadline:
			t.Fatal("not every consumer subscribed")
		}
	}
	select {
	case <-lost:
		t.Fatal("the connection was lost while the consumers subscribed")
	default:
	}
}
