package rabbitmq_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/saga"
)

// sagaHandler records what the consumer hands it and answers with what
// its test asks for.
type sagaHandler struct {
	mu       sync.Mutex
	answer   func(e event.Envelope, attempt int) error
	calls    map[string]int   // event id -> attempts
	versions map[string][]int // order -> versions, in handling order
	running  map[string]int   // order -> handlers running now
	overlap  []string         // orders handled twice at once
	busy     int              // handlers running now
	maxBusy  int
	delay    time.Duration
}

func newSagaHandler(answer func(e event.Envelope, attempt int) error) *sagaHandler {
	return &sagaHandler{answer: answer, calls: map[string]int{}, versions: map[string][]int{}, running: map[string]int{}}
}

func (h *sagaHandler) Handle(ctx context.Context, e event.Envelope) error {
	h.mu.Lock()
	h.calls[e.ID]++
	attempt := h.calls[e.ID]
	h.running[e.StreamID]++
	if h.running[e.StreamID] > 1 {
		h.overlap = append(h.overlap, e.StreamID)
	}
	h.busy++
	h.maxBusy = max(h.maxBusy, h.busy)
	h.mu.Unlock()

	time.Sleep(h.delay)
	err := h.answer(e, attempt)

	h.mu.Lock()
	defer h.mu.Unlock()
	h.running[e.StreamID]--
	h.busy--
	if err == nil {
		h.versions[e.StreamID] = append(h.versions[e.StreamID], e.Version)
	}
	return err
}

func (h *sagaHandler) attempts(id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.calls[id]
}

func orderRecord(n int, order, typ string, version int) event.Record {
	return event.Record{
		Envelope: event.Envelope{
			ID: fmt.Sprintf("00000000-0000-0000-0001-%012d", n), Position: int64(n), StreamID: order,
			StreamType: event.StreamOrder, Version: version, Type: typ, SchemaVersion: 1,
			Data: json.RawMessage(`{}`), OccurredAt: time.Now(),
		},
		Cursor: event.Cursor{Tx: uint64(100 + n), Position: int64(n)},
		Prev:   event.Cursor{Tx: uint64(99 + n), Position: int64(n - 1)},
	}
}

// sagaConsumer runs a saga consumer on a fresh vhost and returns the URL
// and a publisher on it.
func sagaConsumer(t *testing.T, h rabbitmq.SagaHandler) (string, *rabbitmq.Publisher) {
	t.Helper()
	amqpURL := testenv.RabbitMQ(t)
	ctx, cancel := context.WithCancel(context.Background())
	log := testenv.Logger(t)
	conn, err := rabbitmq.Dial(ctx, amqpURL, "saga-consumer", log)
	if err != nil {
		t.Fatal(err)
	}
	c, err := rabbitmq.NewSagaConsumer(conn, h, rabbitmq.SagaConsumerConfig{Log: log, MinBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = c.Run(ctx)
	}()
	pubConn, err := rabbitmq.Dial(ctx, amqpURL, "saga-test-publisher", log)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := rabbitmq.NewPublisher(pubConn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		<-done
		pub.Close()
		pubConn.Close()
		conn.Close()
	})
	// Publish only once the queue is there: the exchange drops what no
	// queue is bound for.
	waitFor(t, 10*time.Second, func() error {
		_, err := sagaQueueDepth(amqpURL, rabbitmq.SagaQueue)
		return err
	})
	return amqpURL, pub
}

// sagaQueueDepth returns the number of ready messages in a queue.
func sagaQueueDepth(amqpURL, queue string) (int, error) {
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	q, err := ch.QueueDeclarePassive(queue, true, false, false, false, nil)
	if err != nil {
		return 0, err
	}
	return q.Messages, nil
}

func waitFor(t *testing.T, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSagaConsumerAcksRetriesAndDeadLetters(t *testing.T) {
	placed, cancelled := event.OrderPlaced{}.EventType(), event.OrderCancelled{}.EventType()
	ok := orderRecord(1, "o1", placed, 1)
	flaky := orderRecord(2, "o2", placed, 1)
	hopeless := orderRecord(3, "o3", cancelled, 2)
	h := newSagaHandler(func(e event.Envelope, attempt int) error {
		switch e.ID {
		case flaky.Envelope.ID:
			if attempt < 3 {
				return errors.New("postgres is away")
			}
		case hopeless.Envelope.ID:
			return fmt.Errorf("order o3: %w", saga.ErrUnprocessable)
		}
		return nil
	})
	amqpURL, pub := sagaConsumer(t, h)
	ctx := context.Background()
	unrelated := record(4) // product.ProductRenamed: not bound to the saga's queue
	if err := pub.Publish(ctx, []event.Record{ok, flaky, hopeless, unrelated}); err != nil {
		t.Fatal(err)
	}
	// Not an event at all.
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.PublishWithContext(ctx, rabbitmq.EventsExchange, "order.OrderPlaced", false, false,
		amqp.Publishing{Body: []byte("not json")}); err != nil {
		t.Fatal(err)
	}

	waitFor(t, 10*time.Second, func() error {
		dead, err := sagaQueueDepth(amqpURL, rabbitmq.SagaDeadQueue)
		if err != nil {
			return err
		}
		if got := h.attempts(flaky.Envelope.ID); got != 3 || dead != 2 {
			return fmt.Errorf("flaky handled %d times (want 3), %d dead letters (want 2)", got, dead)
		}
		return nil
	})
	time.Sleep(100 * time.Millisecond) // anything more would show now
	for _, c := range []struct {
		id   string
		want int
	}{{ok.Envelope.ID, 1}, {flaky.Envelope.ID, 3}, {hopeless.Envelope.ID, 1}, {unrelated.Envelope.ID, 0}} {
		if got := h.attempts(c.id); got != c.want {
			t.Errorf("event %s handled %d times, want %d", c.id, got, c.want)
		}
	}
	if n, err := sagaQueueDepth(amqpURL, rabbitmq.SagaQueue); err != nil || n != 0 {
		t.Errorf("%s holds %d messages (%v), want 0", rabbitmq.SagaQueue, n, err)
	}
}

func TestSagaConsumerHandlesOneOrderAtATime(t *testing.T) {
	h := newSagaHandler(func(event.Envelope, int) error { return nil })
	h.delay = 5 * time.Millisecond
	_, pub := sagaConsumer(t, h)
	const orders, perOrder = 6, 8
	var recs []event.Record
	for v := 1; v <= perOrder; v++ {
		for o := range orders {
			recs = append(recs, orderRecord(len(recs)+1, fmt.Sprintf("order-%d", o), event.OrderPlaced{}.EventType(), v))
		}
	}
	if err := pub.Publish(context.Background(), recs); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		h.mu.Lock()
		defer h.mu.Unlock()
		n := 0
		for _, vs := range h.versions {
			n += len(vs)
		}
		if n != len(recs) {
			return fmt.Errorf("%d of %d handled", n, len(recs))
		}
		return nil
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.overlap) > 0 {
		t.Errorf("orders handled twice at once: %v", h.overlap)
	}
	if h.maxBusy < 2 {
		t.Errorf("at most %d handlers ran at once; want orders handled in parallel", h.maxBusy)
	}
	for o, vs := range h.versions {
		for i, v := range vs {
			if v != i+1 {
				t.Errorf("%s handled in the order %v", o, vs)
				break
			}
		}
	}
}

func TestSagaConsumerResubscribesAfterConnectionLoss(t *testing.T) {
	h := newSagaHandler(func(event.Envelope, int) error { return nil })
	amqpURL, pub := sagaConsumer(t, h)
	first := orderRecord(1, "o1", event.OrderPlaced{}.EventType(), 1)
	if err := pub.Publish(context.Background(), []event.Record{first}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() error {
		if h.attempts(first.Envelope.ID) != 1 {
			return errors.New("first event not handled")
		}
		return nil
	})
	killSagaConsumer(t, amqpURL)
	second := orderRecord(2, "o2", event.OrderPlaced{}.EventType(), 1)
	waitFor(t, 20*time.Second, func() error {
		// The publisher's connection was not closed; retry in case the
		// broker was mid-way.
		if err := pub.Publish(context.Background(), []event.Record{second}); err != nil {
			return err
		}
		return nil
	})
	waitFor(t, 20*time.Second, func() error {
		if h.attempts(second.Envelope.ID) == 0 {
			return errors.New("second event not handled after the reconnect")
		}
		return nil
	})
}

// killSagaConsumer closes the consumer's connection from the broker's side
// and waits until it is gone.
func killSagaConsumer(t *testing.T, amqpURL string) {
	t.Helper()
	u, _ := url.Parse(amqpURL)
	vhost := strings.TrimPrefix(u.Path, "/")
	base, _ := url.Parse(testenv.ManagementURL())
	user := base.User
	base.User = nil
	do := func(method, path string) (*http.Response, error) {
		req, err := http.NewRequest(method, strings.TrimRight(base.String(), "/")+path, nil)
		if err != nil {
			return nil, err
		}
		if user != nil {
			pw, _ := user.Password()
			req.SetBasicAuth(user.Username(), pw)
		}
		return http.DefaultClient.Do(req)
	}
	waitFor(t, 15*time.Second, func() error {
		res, err := do(http.MethodGet, "/api/vhosts/"+url.PathEscape(vhost)+"/connections")
		if err != nil {
			return err
		}
		defer res.Body.Close()
		var conns []struct {
			Name  string `json:"name"`
			Props struct {
				Name string `json:"connection_name"`
			} `json:"client_properties"`
		}
		if err := json.NewDecoder(res.Body).Decode(&conns); err != nil {
			return err
		}
		for _, c := range conns {
			if c.Props.Name == "saga-consumer" {
				res, err := do(http.MethodDelete, "/api/connections/"+url.PathEscape(c.Name))
				if err != nil {
					return err
				}
				res.Body.Close()
				if res.StatusCode >= 300 {
					return fmt.Errorf("close %s: %s", c.Name, res.Status)
				}
				return nil
			}
		}
		return errors.New("consumer connection not listed yet")
	})
}
