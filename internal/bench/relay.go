package bench

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/relay"
)

// relayBatch is the relay's default batch size; the ceiling publishes in
// batches of the same size, waiting for every confirm of one before the next.
const relayBatch = 500

// Relay measures, on a scratch database and two scratch vhosts of the
// same servers:
//   - relay: the real relay draining a backlog of N events (written by many
//     transactions, as a broker outage leaves them) into the broker, from
//     its first read to its checkpoint at the last event;
//   - ceiling: the same messages published plainly on a confirm-mode
//     channel in batches of the same size, into the same topology.
//
// The live relay of a running stack never sees the scratch database.
func Relay(ctx context.Context, st Stack, env Env, mgmt string, backlog int) ([]Result, error) {
	n := backlog
	if env.Quick && n > 10_000 {
		n = 10_000
	}
	b := relayBench{st: st, mgmt: mgmt, tag: strings.ToLower(uuid.NewString()[:8]),
		say: func(format string, args ...any) { fmt.Fprintf(env.Progress, "bench: relay: "+format+"\n", args...) }}
	pool, dropDB, err := b.backlog(ctx, n)
	if err != nil {
		return nil, err
	}
	defer dropDB()
	source, err := postgres.NewRelaySource(pool)
	if err != nil {
		return nil, err
	}
	records, msgs, err := b.readBack(ctx, source, n)
	if err != nil {
		return nil, err
	}
	ceiling, err := b.ceiling(ctx, records, msgs)
	if err != nil {
		return nil, err
	}
	rate, firstRate, secondRate, err := b.drain(ctx, source, records, ceiling)
	if err != nil {
		return nil, err
	}
	return []Result{
		Rate(fmt.Sprintf("relay.drain.%dk", n/1000), rate, ceiling, "events/s", 0.8),
		// The first half of the drain has twice the backlog ahead of it: a
		// batch whose cost grows with the backlog shows up here below 1.
		Rate(fmt.Sprintf("relay.drain.%dk.flatness", n/1000), firstRate, secondRate, "events/s", 0.8),
	}, nil
}

// relayBench holds what the steps of the relay suite share.
type relayBench struct {
	st   Stack
	mgmt string // RabbitMQ management API, for the scratch vhosts
	tag  string // names this run's scratch database and vhosts
	say  func(format string, args ...any)
}

// backlog makes a scratch database holding n events and returns its pool
// and the function that drops it.
func (b relayBench) backlog(ctx context.Context, n int) (*pgxpool.Pool, func(), error) {
	dbURL, dropDB, err := scratchDatabase(ctx, b.st.DatabaseURL, "splitstream_bench_"+b.tag)
	if err != nil {
		return nil, nil, err
	}
	pool, err := postgres.Open(ctx, dbURL, 4)
	if err != nil {
		dropDB()
		return nil, nil, err
	}
	drop := func() { pool.Close(); dropDB() }
	if err := b.writeBacklog(ctx, pool, n); err != nil {
		drop()
		return nil, nil, err
	}
	return pool, drop, nil
}

func (b relayBench) writeBacklog(ctx context.Context, pool *pgxpool.Pool, n int) error {
	if err := postgres.Migrate(ctx, pool, b.st.Log); err != nil {
		return err
	}
	const perTx = 1000
	b.say("writing a backlog of %d events, %d per transaction", n, perTx)
	for i := 0; i < n; i += perTx {
		if _, err := pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, occurred_at)
			SELECT gen_random_uuid(), 'bench-' || $1::int || '-' || g, 'product', 1, 'ProductCreated', 1,
			  jsonb_build_object('name', 'Bench product ' || g, 'description', 'A benchmark product with a description of ordinary length.',
			    'category', 'bench', 'priceCents', 1999, 'currency', 'EUR', 'stock', 100),
			  jsonb_build_object('commandId', 'bench-' || $1::int || '-' || g, 'correlationId', 'bench-' || $1::int || '-' || g, 'actor', 'bench'),
			  now()
			FROM generate_series(1, $2::int) g`, i, min(perTx, n-i)); err != nil {
			return fmt.Errorf("write backlog: %w", err)
		}
		if (i/perTx)%20 == 19 {
			b.say("written %d of %d", i+perTx, n)
		}
	}
	// As autovacuum would have by the time such a backlog is drained.
	_, err := pool.Exec(ctx, "ANALYZE events")
	return err
}

// readBack reads the backlog once, and encodes it, for the ceiling.
func (b relayBench) readBack(ctx context.Context, source *postgres.RelaySource, n int) ([]event.Record, []amqp.Publishing, error) {
	var records []event.Record
	for cursor := (event.Cursor{}); ; {
		recs, err := source.Next(ctx, cursor, 5000)
		if err != nil {
			return nil, nil, err
		}
		if len(recs) == 0 {
			break
		}
		records = append(records, recs...)
		cursor = recs[len(recs)-1].Cursor
	}
	if len(records) != n {
		return nil, nil, fmt.Errorf("backlog: read %d of %d events back (is a transaction left open on the server?)", len(records), n)
	}
	msgs := make([]amqp.Publishing, n)
	for i, r := range records {
		var err error
		if msgs[i], err = rabbitmq.EncodeRecord(r); err != nil {
			return nil, nil, err
		}
	}
	return records, msgs, nil
}

// scratch makes a vhost of its own and connects to it; the function it
// returns closes the connection and drops the vhost, once.
func (b relayBench) scratch(ctx context.Context, what string) (*rabbitmq.Conn, func(), error) {
	return scratchVhost(ctx, b.st, b.mgmt, "splitstream-bench-"+what+"-"+b.tag, "splitstream-bench-"+what)
}

// scratchVhost makes vhost through the RabbitMQ management API at mgmt,
// lets the stack's AMQP user use it and connects to it as client; the
// function it returns closes the connection and drops the vhost, once
// (callers drop early and defer it too).
func scratchVhost(ctx context.Context, st Stack, mgmt, vhost, client string) (*rabbitmq.Conn, func(), error) {
	if err := rabbitmq.Management(ctx, mgmt, http.MethodPut, "/api/vhosts/"+vhost, ""); err != nil {
		return nil, nil, fmt.Errorf("create vhost (RabbitMQ management API at RABBITMQ_MANAGEMENT_URL): %w", err)
	}
	drop := func() {
		_ = rabbitmq.Management(context.WithoutCancel(ctx), mgmt, http.MethodDelete, "/api/vhosts/"+vhost, "")
	}
	u, err := url.Parse(st.AMQPURL)
	if err != nil {
		drop()
		return nil, nil, err
	}
	if err := rabbitmq.Management(ctx, mgmt, http.MethodPut, "/api/permissions/"+vhost+"/"+u.User.Username(),
		`{"configure":".*","write":".*","read":".*"}`); err != nil {
		drop()
		return nil, nil, err
	}
	conn, err := rabbitmq.Dial(ctx, onVhost(u, vhost), client, st.Log)
	if err != nil {
		drop()
		return nil, nil, err
	}
	var once sync.Once
	return conn, func() { once.Do(func() { conn.Close(); drop() }) }, nil
}

// onVhost is the broker URL u with its vhost set to vhost.
func onVhost(u *url.URL, vhost string) string {
	v := *u
	v.Path = "/" + vhost
	return v.String()
}

// ceiling publishes msgs on a confirm-mode channel into the relay's
// topology, in the relay's batch size, and returns messages per second.
func (b relayBench) ceiling(ctx context.Context, records []event.Record, msgs []amqp.Publishing) (float64, error) {
	n := len(msgs)
	conn, dropRaw, err := b.scratch(ctx, "raw")
	if err != nil {
		return 0, err
	}
	defer dropRaw() // frees the broker's disk and memory before the relay runs
	ch, err := conn.Channel()
	if err != nil {
		return 0, err
	}
	defer ch.Close()
	if err := ch.Confirm(false); err != nil {
		return 0, err
	}
	if err := rabbitmq.DeclareTopology(ch); err != nil {
		return 0, err
	}
	b.say("ceiling: publishing the same %d messages in confirm mode, %d per batch", n, relayBatch)
	start := time.Now()
	lastSay := start
	for i := 0; i < n; i += relayBatch {
		end := min(i+relayBatch, n)
		confirms := make([]*amqp.DeferredConfirmation, 0, end-i)
		for j := i; j < end; j++ {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, rabbitmq.EventsExchange, rabbitmq.RoutingKey(records[j].Envelope), false, false, msgs[j])
			if err != nil {
				return 0, fmt.Errorf("raw publish: %w", err)
			}
			confirms = append(confirms, dc)
		}
		for _, dc := range confirms {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return 0, fmt.Errorf("raw publish: not confirmed (%v)", err)
			}
		}
		if time.Since(lastSay) > 2*time.Second {
			lastSay = time.Now()
			b.say("ceiling: %d of %d (%.0f messages/s)", end, n, float64(end)/time.Since(start).Seconds())
		}
	}
	took := time.Since(start)
	ceiling := float64(n) / took.Seconds()
	b.say("ceiling: %d messages in %s: %.0f messages/s", n, took.Round(time.Millisecond), ceiling)
	return ceiling, nil
}

// drain runs the real relay from the start of the scratch log until its
// checkpoint reaches the last record, and returns its rate overall and over
// each half of the backlog.
func (b relayBench) drain(ctx context.Context, source *postgres.RelaySource, records []event.Record, ceiling float64) (rate, firstRate, secondRate float64, err error) {
	n := len(records)
	conn, dropRelay, err := b.scratch(ctx, "relay")
	if err != nil {
		return 0, 0, 0, err
	}
	defer dropRelay()
	pub, err := rabbitmq.NewPublisher(conn)
	if err != nil {
		return 0, 0, 0, err
	}
	defer pub.Close()
	const name = "bench"
	reg := prometheus.NewRegistry()
	r, err := relay.New(source, pub, relay.Config{Name: name, BatchSize: relayBatch}, b.st.Log, reg)
	if err != nil {
		return 0, 0, 0, err
	}
	position := make(map[event.Cursor]int, n)
	for i, rec := range records {
		position[rec.Cursor] = i + 1
	}
	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	wg.Add(1)
	go func() { defer wg.Done(); _ = r.Run(rctx) }()
	b.say("relay: draining the backlog of %d events", n)
	start := time.Now()
	lastSay := start
	var firstHalf time.Duration // when the checkpoint passed n/2
	for cp, last := (event.Cursor{}), records[n-1].Cursor; cp != last; {
		select {
		case <-ctx.Done():
			return 0, 0, 0, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if cp, err = source.Checkpoint(ctx, name); err != nil {
			return 0, 0, 0, err
		}
		done := position[cp]
		if firstHalf == 0 && done >= n/2 {
			firstHalf = time.Since(start)
		}
		if time.Since(lastSay) > 2*time.Second {
			lastSay = time.Now()
			b.say("relay: %d of %d (%.0f events/s)", done, n, float64(done)/time.Since(start).Seconds())
		}
		if time.Since(start) > 30*time.Minute {
			return 0, 0, 0, fmt.Errorf("relay did not drain %d events in 30 minutes (checkpoint %v)", n, cp)
		}
	}
	took := time.Since(start)
	rate = float64(n) / took.Seconds()
	firstRate = float64(n/2) / firstHalf.Seconds()
	secondRate = float64(n-n/2) / (took - firstHalf).Seconds()
	b.say("relay: %d events in %s: %.0f events/s (first half %.0f/s, second half %.0f/s); ceiling %.0f/s",
		n, took.Round(time.Millisecond), rate, firstRate, secondRate, ceiling)
	if publishing := publishTime(reg); publishing > 0 {
		b.say("relay: of that, %s in Publish (encoding and confirms), the rest reading and saving", publishing.Round(time.Millisecond))
	}
	return rate, firstRate, secondRate, nil
}

// publishTime is the time the relay spent in Publish, from its metrics.
func publishTime(g prometheus.Gatherer) time.Duration {
	families, err := g.Gather()
	if err != nil {
		return 0
	}
	for _, f := range families {
		if f.GetName() == "splitstream_relay_publish_duration_seconds" {
			for _, m := range f.GetMetric() {
				return time.Duration(m.GetHistogram().GetSampleSum() * float64(time.Second))
			}
		}
	}
	return 0
}
