package relay_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/relay"
)

// env is one test's Postgres database, RabbitMQ vhost and command service.
type env struct {
	t    *testing.T
	pool *pgxpool.Pool
	amqp string
	svc  *command.Service
	log  *slog.Logger
	// notifier announces svc's commits, when notifying made it so.
	notifier *postgres.CommitNotifier
}

func setup(t *testing.T) *env {
	t.Helper()
	log := logger(t)
	_, pool := testenv.Postgres(t)
	amqpURL := testenv.RabbitMQ(t)
	svc, err := command.NewService(testenv.EventStore(t, pool))
	if err != nil {
		t.Fatal(err)
	}
	return &env{t: t, pool: pool, amqp: amqpURL, svc: svc, log: log}
}

// logger writes to the test's log until the test's cleanup ends, and then
// nowhere: a connection's reconnect loop may outlive the test by a moment.
func logger(t *testing.T) *slog.Logger {
	w := &testLog{t: t}
	t.Cleanup(func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.done = true
	})
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testLog struct {
	mu   sync.Mutex
	t    *testing.T
	done bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

// running is a relay started by a test.
type running struct {
	cancel context.CancelFunc
	done   chan error
	reg    *prometheus.Registry
	conn   *rabbitmq.Conn
	relay  *relay.Relay
}

// start runs a relay with its own broker connection and metrics until
// stop, or the end of the test. wrap, when given, wraps its publisher.
func (e *env) start(cfg relay.Config, wrap func(relay.Publisher, context.CancelFunc) relay.Publisher) *running {
	e.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	conn, err := rabbitmq.Dial(ctx, e.amqp, "relay-test", e.log)
	if err != nil {
		e.t.Fatal(err)
	}
	pub, err := rabbitmq.NewPublisher(conn)
	if err != nil {
		e.t.Fatal(err)
	}
	var p relay.Publisher = pub
	if wrap != nil {
		p = wrap(pub, cancel)
	}
	reg := prometheus.NewRegistry()
	r, err := relay.New(testenv.RelaySource(e.t, e.pool), p, cfg, e.log, reg)
	if err != nil {
		e.t.Fatal(err)
	}
	run := &running{cancel: cancel, done: make(chan error, 1), reg: reg, conn: conn, relay: r}
	go func() {
		err := r.Run(ctx)
		pub.Close()
		conn.Close()
		run.done <- err
	}()
	e.t.Cleanup(func() { run.stop(e.t) })
	return run
}

// stop cancels the relay and waits for it; a second stop is a no-op.
func (r *running) stop(t *testing.T) {
	r.cancel()
	err, ok := <-r.done
	if ok {
		close(r.done)
		if !errors.Is(err, context.Canceled) {
			t.Errorf("relay Run returned %v, want context.Canceled", err)
		}
	}
}

func (r *running) metric(t *testing.T, name string) float64 {
	t.Helper()
	families, err := r.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() == name {
			total := 0.0
			for _, m := range f.GetMetric() {
				total += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
			return total
		}
	}
	return 0
}

// consumer reads every message of the events exchange from a durable queue
// bound with "#", reconnecting when the broker goes away.
type consumer struct {
	mu  sync.Mutex
	got []amqp.Delivery
	ids map[string]int
}

func (e *env) consume() *consumer {
	e.t.Helper()
	conn, err := amqp.Dial(e.amqp)
	if err != nil {
		e.t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		e.t.Fatal(err)
	}
	if err := rabbitmq.DeclareEvents(ch); err != nil {
		e.t.Fatal(err)
	}
	const queue = "test.events"
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		e.t.Fatal(err)
	}
	if err := ch.QueueBind(queue, "#", rabbitmq.EventsExchange, false, nil); err != nil {
		e.t.Fatal(err)
	}
	_ = conn.Close()

	c := &consumer{ids: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	e.t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := c.session(ctx, e.amqp, queue); err != nil && ctx.Err() == nil {
				time.Sleep(200 * time.Millisecond)
			}
		}
	}()
	return c
}

// session consumes on one connection until it closes or ctx ends. Each
// message is acked only after it is recorded.
func (c *consumer) session(ctx context.Context, url, queue string) error {
	conn, err := amqp.Dial(url)
	if err != nil {
		return err
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	if err := ch.Qos(1000, 0, false); err != nil {
		return err
	}
	deliveries, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case d, ok := <-deliveries:
			if !ok {
				return errors.New("deliveries closed")
			}
			c.mu.Lock()
			c.got = append(c.got, d)
			c.ids[d.MessageId]++
			c.mu.Unlock()
			_ = d.Ack(false)
		}
	}
}

func (c *consumer) deliveries() []amqp.Delivery {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]amqp.Delivery(nil), c.got...)
}

// stored is an event as Postgres has it.
type stored struct {
	streamID string
	version  int
	cursor   event.Cursor
}

func (e *env) stored() map[string]stored {
	e.t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT event_id::text, stream_id, version, tx_id::text::bigint, position FROM events`)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]stored{}
	for rows.Next() {
		var (
			id string
			s  stored
			tx int64
		)
		if err := rows.Scan(&id, &s.streamID, &s.version, &tx, &s.cursor.Position); err != nil {
			e.t.Fatal(err)
		}
		s.cursor.Tx = uint64(tx)
		out[id] = s
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// waitAll waits until every stored event has been delivered, then checks
// what arrived: each message's properties and headers, per stream versions
// in order (a duplicate may come again later, a new version never skips
// one), nothing unknown. It returns the number of duplicates.
func (e *env) waitAll(c *consumer, timeout time.Duration) int {
	e.t.Helper()
	want := e.stored()
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		missing := 0
		for id := range want {
			if c.ids[id] == 0 {
				missing++
			}
		}
		c.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("%d of %d events never arrived", missing, len(want))
		}
		time.Sleep(20 * time.Millisecond)
	}

	got := c.deliveries()
	next := map[string]int{} // stream -> next new version expected
	seen := map[string]bool{}
	dups := 0
	for _, d := range got {
		rec, err := rabbitmq.DecodeRecord(d)
		if err != nil {
			e.t.Fatalf("decode %s: %v", d.MessageId, err)
		}
		env := rec.Envelope
		s, ok := want[env.ID]
		if !ok {
			e.t.Fatalf("message %s is no stored event", env.ID)
		}
		checkMessage(e.t, d, rec, s)
		if seen[env.ID] {
			dups++
			continue
		}
		seen[env.ID] = true
		if n := max(next[env.StreamID], 1); env.Version != n {
			e.t.Fatalf("stream %s: version %d arrived when %d was next", env.StreamID, env.Version, n)
		}
		next[env.StreamID] = env.Version + 1
	}
	e.t.Logf("%d events delivered, %d messages (%d duplicates)", len(want), len(got), dups)
	return dups
}

// checkMessage checks the wire contract of one delivery against the store.
func checkMessage(t *testing.T, d amqp.Delivery, rec event.Record, s stored) {
	t.Helper()
	env := rec.Envelope
	var errs []string
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Sprintf(format, args...))
		}
	}
	check(d.MessageId == env.ID, "message-id %q", d.MessageId)
	check(d.DeliveryMode == amqp.Persistent, "delivery mode %d", d.DeliveryMode)
	check(d.ContentType == "application/json", "content-type %q", d.ContentType)
	check(d.Exchange == rabbitmq.EventsExchange, "exchange %q", d.Exchange)
	check(d.RoutingKey == env.StreamType+"."+env.Type, "routing key %q", d.RoutingKey)
	check(d.CorrelationId == env.Metadata.CorrelationID && d.CorrelationId != "", "correlation id %q", d.CorrelationId)
	check(d.Headers[rabbitmq.HeaderStreamID] == s.streamID, "stream-id %v", d.Headers[rabbitmq.HeaderStreamID])
	check(d.Headers[rabbitmq.HeaderVersion] == int64(s.version), "version %v", d.Headers[rabbitmq.HeaderVersion])
	check(d.Headers[rabbitmq.HeaderPosition] == s.cursor.Position, "position %v", d.Headers[rabbitmq.HeaderPosition])
	check(d.Headers[rabbitmq.HeaderCausationID] == env.Metadata.CausationID && env.Metadata.CausationID != "",
		"causation-id %v", d.Headers[rabbitmq.HeaderCausationID])
	check(rec.Cursor == s.cursor, "cursor %v, stored %v", rec.Cursor, s.cursor)
	check(rec.Prev.Less(rec.Cursor), "prev %v not before %v", rec.Prev, rec.Cursor)
	check(env.StreamID == s.streamID && env.Version == s.version, "envelope %s v%d", env.StreamID, env.Version)
	if len(errs) > 0 {
		t.Fatalf("message %s: %s", env.ID, strings.Join(errs, "; "))
	}
}

// writer runs mutations through the command service: products created,
// renamed and restocked, reviews added, on a shared set of products so that
// several writers append to the same streams at once.
type writer struct {
	svc      *command.Service
	mu       sync.Mutex
	products []string
	tag      atomic.Int64
}

func (w *writer) one(ctx context.Context, rng *rand.Rand, tag string) error {
	w.mu.Lock()
	var id string
	if len(w.products) > 0 {
		id = w.products[rng.IntN(len(w.products))]
	}
	w.mu.Unlock()
	var err error
	switch op := rng.IntN(10); {
	case id == "" || op == 0:
		var res command.Result
		res, err = w.svc.CreateProduct(ctx, command.Meta{}, command.CreateProduct{
			Name: "Kettle " + tag, Category: "kitchen", PriceCents: 1999, Currency: "EUR", Stock: 5})
		if err == nil {
			w.mu.Lock()
			w.products = append(w.products, res.ID)
			w.mu.Unlock()
		}
	case op < 6:
		_, err = w.svc.ChangeProduct(ctx, id, command.Meta{}, command.RenameProduct{Name: "Kettle " + tag})
	case op < 8:
		_, err = w.svc.ChangeProduct(ctx, id, command.Meta{}, command.RestockProduct{Quantity: 1})
	default:
		_, err = w.svc.AddReview(ctx, command.Meta{}, command.AddReview{ProductID: id, Author: "Ada", Rating: 4})
	}
	if err != nil {
		return fmt.Errorf("mutation %s: %w", tag, err)
	}
	return nil
}

// run starts n goroutines doing each mutations; the returned function
// waits for them and fails the test on an error.
func (w *writer) run(t *testing.T, n, each int) (wait func()) {
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for g := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), uint64(time.Now().UnixNano())))
			for range each {
				// Unique, so that no rename repeats a name (a no-op).
				if err := w.one(ctx, rng, fmt.Sprint(w.tag.Add(1))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	return func() {
		t.Helper()
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
	}
}

// TestRelayDeliversEveryEventInStreamOrder: with writers appending to shared
// streams concurrently, every event reaches the exchange, per stream in
// version order, with the contract's properties and headers.
func TestRelayDeliversEveryEventInStreamOrder(t *testing.T) {
	e := setup(t)
	c := e.consume()
	r := e.start(relay.Config{}, nil)
	w := &writer{svc: e.svc}
	w.run(t, 8, 40)()
	e.waitAll(c, 30*time.Second)
	n := len(e.stored())
	deadline := time.Now().Add(5 * time.Second)
	for r.metric(t, "splitstream_relay_published_events_total") < float64(n) && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := r.metric(t, "splitstream_relay_published_events_total"); got < float64(n) {
		t.Errorf("published metric %v, want at least %d", got, n)
	}
	if got := r.metric(t, "splitstream_relay_leader"); got != 1 {
		t.Errorf("leader gauge %v, want 1", got)
	}
}

// TestRelayMessageContract checks one message field by field.
func TestRelayMessageContract(t *testing.T) {
	e := setup(t)
	c := e.consume()
	e.start(relay.Config{}, nil)
	res, err := e.svc.CreateProduct(context.Background(), command.Meta{CommandID: "cmd-1", CorrelationID: "corr-1", Actor: "ada"},
		command.CreateProduct{Name: "Kettle", Category: "kitchen", PriceCents: 1999, Currency: "EUR", Stock: 5})
	if err != nil {
		t.Fatal(err)
	}
	e.waitAll(c, 10*time.Second)
	d := c.deliveries()[0]
	evs, err := testenv.EventStore(e.t, e.pool).Load(context.Background(), res.ID)
	if err != nil || len(evs) != 1 {
		t.Fatalf("load: %v, %v", evs, err)
	}
	want := evs[0]
	token, _ := event.ParseToken(res.Token)
	for name, pair := range map[string][2]any{
		"message-id":     {d.MessageId, want.ID},
		"routing key":    {d.RoutingKey, "product.ProductCreated"},
		"content-type":   {d.ContentType, "application/json"},
		"delivery mode":  {d.DeliveryMode, amqp.Persistent},
		"correlation id": {d.CorrelationId, "corr-1"},
		"type":           {d.Type, "ProductCreated"},
		"stream-id":      {d.Headers["stream-id"], res.ID},
		"stream-type":    {d.Headers["stream-type"], "product"},
		"version":        {d.Headers["version"], int64(1)},
		"position":       {d.Headers["position"], want.Position},
		"tx":             {d.Headers["tx"], int64(token.Tx)},
		"causation-id":   {d.Headers["causation-id"], "cmd-1"},
		"schema-version": {d.Headers["schema-version"], int64(1)},
	} {
		if pair[0] != pair[1] {
			t.Errorf("%s = %#v, want %#v", name, pair[0], pair[1])
		}
	}
}

// crashing publishes half of one batch and then kills its relay, the way a
// process dies between the broker's confirms and the checkpoint.
type crashing struct {
	relay.Publisher
	kill    context.CancelFunc
	batches int
	crashed atomic.Bool
}

func (p *crashing) Publish(ctx context.Context, recs []event.Record) error {
	p.batches++
	if p.batches < 2 || len(recs) < 2 || p.crashed.Load() {
		return p.Publisher.Publish(ctx, recs)
	}
	if err := p.Publisher.Publish(ctx, recs[:len(recs)/2]); err != nil {
		return err
	}
	p.crashed.Store(true)
	p.kill()
	return errors.New("crashed mid-batch")
}

// TestRelayResumesAfterKill: a relay that dies half-way through a batch,
// and then relays killed at random moments while writers keep writing,
// lose nothing when started again. Duplicates are allowed.
func TestRelayResumesAfterKill(t *testing.T) {
	e := setup(t)
	c := e.consume()
	w := &writer{svc: e.svc}
	w.run(t, 4, 15)() // a backlog, so the first batches are full
	var crash *crashing
	r := e.start(relay.Config{BatchSize: 10}, func(p relay.Publisher, kill context.CancelFunc) relay.Publisher {
		crash = &crashing{Publisher: p, kill: kill}
		return crash
	})
	<-r.done // it kills itself
	close(r.done)
	if !crash.crashed.Load() {
		t.Fatal("the relay never crashed mid-batch")
	}

	wait := w.run(t, 4, 60)
	rng := rand.New(rand.NewPCG(7, uint64(time.Now().UnixNano())))
	for range 6 {
		r := e.start(relay.Config{BatchSize: 10}, nil)
		time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)
		r.stop(t)
	}
	wait()
	e.start(relay.Config{BatchSize: 10}, nil)
	if dups := e.waitAll(c, 30*time.Second); dups == 0 {
		t.Error("no duplicates: the half-published batch was not published again")
	}
}

// TestTwoRelaysAtOnce: two relays run against one log; only one leads, the
// other takes over when the first stops, and the stream stays complete and
// in order.
func TestTwoRelaysAtOnce(t *testing.T) {
	e := setup(t)
	c := e.consume()
	w := &writer{svc: e.svc}
	wait := w.run(t, 8, 60)
	a := e.start(relay.Config{BatchSize: 20}, nil)
	b := e.start(relay.Config{BatchSize: 20}, nil)

	leaders := func() (float64, float64) {
		return a.metric(t, "splitstream_relay_leader"), b.metric(t, "splitstream_relay_leader")
	}
	deadline := time.Now().Add(10 * time.Second)
	for la, lb := leaders(); la+lb != 1; la, lb = leaders() {
		if time.Now().After(deadline) {
			t.Fatalf("leader gauges %v and %v, want one leader", la, lb)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for range 20 { // while both run, never two leaders
		if la, lb := leaders(); la+lb > 1 {
			t.Fatalf("two leaders")
		}
		time.Sleep(10 * time.Millisecond)
	}
	first, second := a, b
	if la, _ := leaders(); la == 0 {
		first, second = b, a
	}
	first.stop(t)
	deadline = time.Now().Add(10 * time.Second)
	for second.metric(t, "splitstream_relay_leader") != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the standby relay did not take over")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wait()
	e.waitAll(c, 30*time.Second)
}

// TestRelayLeadsAgainWhenLockConnectionDies: killing the session that holds
// the relay's lock costs the relay its leadership; it leads again and keeps
// delivering.
func TestRelayLeadsAgainWhenLockConnectionDies(t *testing.T) {
	e := setup(t)
	c := e.consume()
	r := e.start(relay.Config{}, nil)
	w := &writer{svc: e.svc}
	w.run(t, 2, 10)()
	e.waitAll(c, 10*time.Second)
	var killed bool
	if err := e.pool.QueryRow(context.Background(), `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 2 AND granted
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the relay's lock session: %v, %v", killed, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.metric(t, "splitstream_relay_errors_total") == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the relay did not notice it lost its lock")
		}
		time.Sleep(10 * time.Millisecond)
	}
	w.run(t, 2, 10)()
	e.waitAll(c, 10*time.Second)
}

// A transaction left open holds every later event back from the relay (it
// reads below the horizon, never past it). The relay says so: the held
// gauge grows, and its readiness check names the blocking backend's pid;
// once the transaction ends, both clear and the event is published.
func TestHeldHorizonNamesTheBlockingBackend(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	// The blocker goes without the app's idle-in-transaction timeout, so
	// it outlives the waits below however slow the machine is.
	cc := e.pool.Config().ConnConfig.Copy()
	cc.RuntimeParams["idle_in_transaction_session_timeout"] = "0"
	blocker, err := pgx.ConnectConfig(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close(ctx)
	tx, err := blocker.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Taking a transaction id makes it the horizon.
	if _, err := tx.Exec(ctx, `SELECT pg_current_xact_id()`); err != nil {
		t.Fatal(err)
	}
	var pid int
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := e.svc.CreateProduct(ctx, command.Meta{}, command.CreateProduct{Name: "Kettle", Category: "kitchen",
		PriceCents: 100, Currency: "EUR", Stock: 1}); err != nil {
		t.Fatal(err)
	}
	c := e.consume()
	run := e.start(relay.Config{BacklogInterval: 250 * time.Millisecond, HorizonWarn: 300 * time.Millisecond}, nil)
	want := fmt.Sprintf("pid %d ", pid)
	wait(t, func() error {
		err := run.relay.HorizonCheck(ctx)
		if err == nil || !strings.Contains(err.Error(), want) {
			return fmt.Errorf("horizon check says %v, want it to name %s", err, want)
		}
		if got := run.metric(t, "splitstream_relay_horizon_blocker_pid"); got != float64(pid) {
			return fmt.Errorf("blocker pid gauge %v, want %d", got, pid)
		}
		if held := run.metric(t, "splitstream_relay_horizon_held_seconds"); held <= 0 {
			return fmt.Errorf("held gauge %v, want > 0", held)
		}
		return nil
	})
	t.Logf("held: %v", run.relay.HorizonCheck(ctx))
	if n := len(c.deliveries()); n != 0 {
		t.Fatalf("%d events published past the horizon", n)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	wait(t, func() error {
		if err := run.relay.HorizonCheck(ctx); err != nil {
			return err
		}
		if held := run.metric(t, "splitstream_relay_horizon_held_seconds"); held != 0 {
			return fmt.Errorf("held gauge %v after the blocker ended", held)
		}
		if n := len(c.deliveries()); n != 1 {
			return fmt.Errorf("%d events published, want 1", n)
		}
		return nil
	})
}

// wait retries check until it passes; the test's own timeout bounds it.
func wait(t *testing.T, check func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A message the broker returns (no queue takes its routing key) is not
// delivered: the relay does not move its checkpoint past it and publishes
// it again (here the retry's fresh channel declares the topology again,
// which restores the binding).
func TestReturnedMessageHoldsTheCheckpoint(t *testing.T) {
	e := setup(t)
	ctx := context.Background()
	src := testenv.RelaySource(e.t, e.pool)
	create := func() command.Result {
		t.Helper()
		res, err := e.svc.CreateProduct(ctx, command.Meta{}, command.CreateProduct{Name: "Kettle", Category: "kitchen",
			PriceCents: 100, Currency: "EUR", Stock: 1})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	checkpoint := func() event.Cursor {
		t.Helper()
		c, err := src.Checkpoint(ctx, "default")
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	first := create()
	rec := &recording{src: src}
	e.start(relay.Config{MaxBackoff: 50 * time.Millisecond}, func(p relay.Publisher, _ context.CancelFunc) relay.Publisher {
		rec.pub = p
		return rec
	})
	wait(t, func() error {
		if c := checkpoint(); c.Token() != first.Token {
			return fmt.Errorf("checkpoint %+v, want at the first event", c)
		}
		return nil
	})

	conn, err := amqp.Dial(e.amqp)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueUnbind(rabbitmq.ProjectorQueue, "#", rabbitmq.EventsExchange, nil); err != nil {
		t.Fatal(err)
	}
	second := create()
	wait(t, func() error {
		if c := checkpoint(); c.Token() != second.Token {
			return fmt.Errorf("checkpoint %+v, want at the second event", c)
		}
		return nil
	})
	results := rec.results()
	if len(results) < 3 || results[0] != nil || results[1] == nil || !strings.Contains(results[1].Error(), "returned") {
		t.Fatalf("publish results %v, want ok, then a returned message, then ok", results)
	}
	if got := rec.checkpointAfterReturn; got != fmt.Sprint(first.Token, nil) {
		t.Fatalf("checkpoint after the return was %s, want the first event's %s", got, first.Token)
	}
}

// recording passes batches to pub and keeps each result; after the first
// failure it notes where the relay's checkpoint stands.
type recording struct {
	pub                   relay.Publisher
	mu                    sync.Mutex
	errs                  []error
	checkpointAfterReturn string
	src                   *postgres.RelaySource
}

func (r *recording) Publish(ctx context.Context, recs []event.Record) error {
	err := r.pub.Publish(ctx, recs)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, err)
	if err != nil && r.checkpointAfterReturn == "" {
		// The relay waits for this call: nothing saves meanwhile.
		c, cerr := r.src.Checkpoint(ctx, "default")
		r.checkpointAfterReturn = fmt.Sprint(c.Token(), cerr)
	}
	return err
}

func (r *recording) results() []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.errs)
}
