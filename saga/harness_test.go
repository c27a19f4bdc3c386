package saga_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/relay"
	"github.com/splitstream/splitstream/saga"
)

// stack is the write side as the saga sees it, on real servers: a fresh
// database and vhost, a command service, and a relay publishing every
// committed event to the vhost's events exchange.
type stack struct {
	t       *testing.T
	ctx     context.Context
	pool    *pgxpool.Pool
	events  *postgres.EventStore
	svc     *command.Service
	amqpURL string
	log     *slog.Logger
}

func newStack(t *testing.T, logLevel slog.Level) *stack {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	_, pool := testenv.Postgres(t)
	amqpURL := testenv.RabbitMQ(t)
	log := slog.New(slog.NewTextHandler(testLog{t}, &slog.HandlerOptions{Level: logLevel}))
	events := testenv.EventStore(t, pool)
	svc, err := command.NewService(events)
	if err != nil {
		t.Fatal(err)
	}
	s := &stack{t: t, ctx: ctx, pool: pool, events: events, svc: svc, amqpURL: amqpURL, log: log}

	conn, err := rabbitmq.Dial(ctx, amqpURL, "relay", log)
	if err != nil {
		t.Fatal(err)
	}
	// The queue exists before anything is published (the relay's publisher
	// declares it too): the exchange drops what no queue is bound for.
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := rabbitmq.DeclareSaga(ch); err != nil {
		t.Fatal(err)
	}
	_ = ch.Close()
	pub, err := rabbitmq.NewPublisher(conn)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(testenv.RelaySource(t, pool), pub, relay.Config{PollInterval: 5 * time.Millisecond}, log, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = r.Run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		pub.Close()
		conn.Close()
	})
	return s
}

// sagaOpts says which parts of the saga role to run.
type sagaOpts struct {
	commands  saga.Commands // the command service when nil
	deadline  time.Duration // 30s when zero
	consumer  bool
	deadlines bool
}

// runningSaga is one start of the saga role, as a process would run it.
type runningSaga struct {
	saga   *saga.Saga
	reg    *prometheus.Registry
	cancel context.CancelFunc
	wg     sync.WaitGroup
	conn   *rabbitmq.Conn
	once   sync.Once
}

// startSaga starts the saga role (its own connection, registry and
// goroutines); stop, or the end of the test, stops it.
func (s *stack) startSaga(o sagaOpts) *runningSaga {
	s.t.Helper()
	reg := prometheus.NewRegistry()
	var commands saga.Commands = s.svc
	if o.commands != nil {
		commands = o.commands
	}
	sg, err := saga.New(saga.Config{
		Commands:   commands,
		Streams:    s.events,
		Store:      testenv.SagaStore(s.t, s.pool),
		Deadline:   o.deadline,
		Tick:       50 * time.Millisecond,
		Log:        s.log.With("role", "saga"),
		Registerer: reg,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(s.ctx)
	rs := &runningSaga{saga: sg, reg: reg, cancel: cancel}
	if o.consumer {
		conn, err := rabbitmq.Dial(ctx, s.amqpURL, "saga", s.log)
		if err != nil {
			s.t.Fatal(err)
		}
		rs.conn = conn
		c, err := rabbitmq.NewSagaConsumer(conn, sg, rabbitmq.SagaConsumerConfig{Log: s.log, MinBackoff: 20 * time.Millisecond})
		if err != nil {
			s.t.Fatal(err)
		}
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			_ = c.Run(ctx)
		}()
	}
	if o.deadlines {
		rs.wg.Add(1)
		go func() {
			defer rs.wg.Done()
			_ = sg.RunDeadlines(ctx)
		}()
	}
	s.t.Cleanup(rs.stop)
	return rs
}

// stop ends the role as a killed process would: work in flight is cut
// short, unacked messages go back to the queue.
func (rs *runningSaga) stop() {
	rs.once.Do(func() {
		rs.cancel()
		rs.wg.Wait()
		if rs.conn != nil {
			rs.conn.Close()
		}
	})
}

func (s *stack) createProduct(name string, stock int) string {
	s.t.Helper()
	res, err := s.svc.CreateProduct(s.ctx, command.Meta{}, command.CreateProduct{
		Name: name, Category: "test", PriceCents: 500, Currency: "EUR", Stock: stock,
	})
	if err != nil {
		s.t.Fatalf("create %s: %v", name, err)
	}
	return res.ID
}

type line struct {
	product  string
	quantity int
}

func (s *stack) placeOrder(lines ...line) (string, error) {
	ls := make([]event.OrderLine, len(lines))
	for i, l := range lines {
		ls[i] = event.OrderLine{ProductID: l.product, Quantity: l.quantity}
	}
	res, err := s.svc.PlaceOrder(s.ctx, command.Meta{}, command.PlaceOrder{CustomerID: "customer-1", Lines: ls})
	if err != nil {
		return "", fmt.Errorf("place order: %w", err)
	}
	return res.ID, nil
}

func (s *stack) mustPlace(lines ...line) string {
	s.t.Helper()
	id, err := s.placeOrder(lines...)
	if err != nil {
		s.t.Fatal(err)
	}
	return id
}

func (s *stack) cancelOrder(id string) error {
	_, err := s.svc.ChangeOrder(s.ctx, id, command.Meta{}, command.CancelOrder{Reason: "changed my mind"})
	return err
}

func (s *stack) history(id string) []event.Payload {
	s.t.Helper()
	h, err := s.events.Load(s.ctx, id)
	if err != nil {
		s.t.Fatalf("load %s: %v", id, err)
	}
	ps := make([]event.Payload, len(h))
	for i, e := range h {
		if ps[i], err = e.Payload(); err != nil {
			s.t.Fatalf("decode %s v%d: %v", id, e.Version, err)
		}
	}
	return ps
}

func (s *stack) order(id string) command.Order { return command.FoldOrder(id, s.history(id)) }

func (s *stack) product(id string) command.Product { return command.FoldProduct(id, s.history(id)) }

// waitDone waits until every order has left PENDING.
func (s *stack) waitDone(timeout time.Duration, ids ...string) map[string]command.Order {
	s.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		out := make(map[string]command.Order, len(ids))
		pending := 0
		for _, id := range ids {
			o := s.order(id)
			out[id] = o
			if o.Status == command.StatusPending {
				pending++
			}
		}
		if pending == 0 {
			return out
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%d of %d orders still PENDING after %s", pending, len(ids), timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// eventually retries check until it returns nil, and fails the test with
// its last error after timeout.
func eventually(t *testing.T, timeout time.Duration, check func() error) {
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

// released says whether a product holds nothing for the order and has the
// stock it should.
func (s *stack) released(productID string, wantStock int) error {
	p := s.product(productID)
	if len(p.Reserved) != 0 {
		return fmt.Errorf("product %s still holds %v", p.Name, p.Reserved)
	}
	if p.Stock != wantStock {
		return fmt.Errorf("product %s has stock %d, want %d", p.Name, p.Stock, wantStock)
	}
	return nil
}

// metric reads a counter (with its one label value, if any) from reg.
func metric(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label == "" || (len(m.GetLabel()) == 1 && m.GetLabel()[0].GetValue() == label) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return 0
}

// testLog sends log lines to the test's log.
type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
