package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/bench"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/relay"
)

// relayBatch is the relay's default batch size; the ceiling publishes in
// batches of the same size, waiting for every confirm of one before the next.
const relayBatch = 500

// benchRelay measures, on a scratch database and two scratch vhosts of the
// same servers:
//   - relay: the real relay draining a backlog of N events (written by many
//     transactions, as a broker outage leaves them) into the broker, from
//     its first read to its checkpoint at the last event;
//   - ceiling: the same messages published plainly on a confirm-mode
//     channel in batches of the same size, into the same topology.
//
// The live relay of a running stack never sees the scratch database.
func benchRelay(ctx context.Context, a *app, env bench.Env, mgmt string, backlog int) ([]bench.Result, error) {
	n := backlog
	if env.Quick && n > 10_000 {
		n = 10_000
	}
	say := func(format string, args ...any) { fmt.Fprintf(env.Progress, "bench: relay: "+format+"\n", args...) }
	tag := strings.ToLower(uuid.NewString()[:8])

	// A scratch database holding the backlog.
	dbName := "splitstream_bench_" + tag
	if _, err := env.Pool.Exec(ctx, "CREATE DATABASE "+dbName); err != nil {
		return nil, fmt.Errorf("create scratch database: %w", err)
	}
	defer func() {
		_, _ = env.Pool.Exec(context.WithoutCancel(ctx), "DROP DATABASE IF EXISTS "+dbName+" WITH (FORCE)")
	}()
	dbURL, err := url.Parse(a.cfg.DatabaseURL)
	if err != nil {
		return nil, err
	}
	dbURL.Path = "/" + dbName
	pool, err := postgres.Open(ctx, dbURL.String(), 4)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool, a.log); err != nil {
		return nil, err
	}
	const perTx = 1000
	say("writing a backlog of %d events, %d per transaction", n, perTx)
	for i := 0; i < n; i += perTx {
		if _, err := pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, occurred_at)
			SELECT gen_random_uuid(), 'bench-' || $1::int || '-' || g, 'product', 1, 'ProductCreated', 1,
			  jsonb_build_object('name', 'Bench product ' || g, 'description', 'A benchmark product with a description of ordinary length.',
			    'category', 'bench', 'priceCents', 1999, 'currency', 'EUR', 'stock', 100),
			  jsonb_build_object('commandId', 'bench-' || $1::int || '-' || g, 'correlationId', 'bench-' || $1::int || '-' || g, 'actor', 'bench'),
			  now()
			FROM generate_series(1, $2::int) g`, i, min(perTx, n-i)); err != nil {
			return nil, fmt.Errorf("write backlog: %w", err)
		}
		if (i/perTx)%20 == 19 {
			say("written %d of %d", i+perTx, n)
		}
	}
	// As autovacuum would have by the time such a backlog is drained.
	if _, err := pool.Exec(ctx, "ANALYZE events"); err != nil {
		return nil, err
	}

	// The same messages, read once, for the ceiling.
	source := postgres.NewRelaySource(pool)
	var records []event.Record
	for cursor := (event.Cursor{}); ; {
		recs, err := source.Next(ctx, cursor, 5000)
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			break
		}
		records = append(records, recs...)
		cursor = recs[len(recs)-1].Cursor
	}
	if len(records) != n {
		return nil, fmt.Errorf("backlog: read %d of %d events back (is a transaction left open on the server?)", len(records), n)
	}
	msgs := make([]amqp.Publishing, n)
	for i, r := range records {
		if msgs[i], err = rabbitmq.EncodeRecord(r); err != nil {
			return nil, err
		}
	}

	scratch := func(what string) (*rabbitmq.Conn, func(), error) {
		vhost := "splitstream-bench-" + what + "-" + tag
		if err := rabbitmq.Management(ctx, mgmt, http.MethodPut, "/api/vhosts/"+vhost, ""); err != nil {
			return nil, nil, fmt.Errorf("create vhost (RabbitMQ management API at RABBITMQ_MANAGEMENT_URL): %w", err)
		}
		drop := func() {
			_ = rabbitmq.Management(context.WithoutCancel(ctx), mgmt, http.MethodDelete, "/api/vhosts/"+vhost, "")
		}
		u, _ := url.Parse(a.cfg.AMQPURL)
		if err := rabbitmq.Management(ctx, mgmt, http.MethodPut, "/api/permissions/"+vhost+"/"+u.User.Username(),
			`{"configure":".*","write":".*","read":".*"}`); err != nil {
			drop()
			return nil, nil, err
		}
		u.Path = "/" + vhost
		conn, err := rabbitmq.Dial(ctx, u.String(), "splitstream-bench-"+what, a.log)
		if err != nil {
			drop()
			return nil, nil, err
		}
		var once sync.Once // dropped early and deferred too
		return conn, func() { once.Do(func() { conn.Close(); drop() }) }, nil
	}

	// The ceiling: a confirm-mode channel into the relay's topology.
	rawConn, dropRaw, err := scratch("raw")
	if err != nil {
		return nil, err
	}
	defer dropRaw()
	ch, err := rawConn.Channel()
	if err != nil {
		return nil, err
	}
	if err := ch.Confirm(false); err != nil {
		return nil, err
	}
	if err := rabbitmq.DeclareTopology(ch); err != nil {
		return nil, err
	}
	say("ceiling: publishing the same %d messages in confirm mode, %d per batch", n, relayBatch)
	start := time.Now()
	lastSay := start
	for i := 0; i < n; i += relayBatch {
		end := min(i+relayBatch, n)
		confirms := make([]*amqp.DeferredConfirmation, 0, end-i)
		for j := i; j < end; j++ {
			dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, rabbitmq.EventsExchange, rabbitmq.RoutingKey(records[j].Envelope), false, false, msgs[j])
			if err != nil {
				return nil, fmt.Errorf("raw publish: %w", err)
			}
			confirms = append(confirms, dc)
		}
		for _, dc := range confirms {
			if ok, err := dc.WaitContext(ctx); err != nil || !ok {
				return nil, fmt.Errorf("raw publish: not confirmed (%v)", err)
			}
		}
		if time.Since(lastSay) > 2*time.Second {
			lastSay = time.Now()
			say("ceiling: %d of %d (%.0f messages/s)", end, n, float64(end)/time.Since(start).Seconds())
		}
	}
	rawTook := time.Since(start)
	_ = ch.Close()
	ceiling := float64(n) / rawTook.Seconds()
	say("ceiling: %d messages in %s: %.0f messages/s", n, rawTook.Round(time.Millisecond), ceiling)
	dropRaw() // frees the broker's disk and memory before the relay runs

	// The relay, from the start of the scratch log.
	relayConn, dropRelay, err := scratch("relay")
	if err != nil {
		return nil, err
	}
	defer dropRelay()
	pub, err := rabbitmq.NewPublisher(relayConn)
	if err != nil {
		return nil, err
	}
	defer pub.Close()
	const name = "bench"
	reg := prometheus.NewRegistry()
	r, err := relay.New(source, pub, relay.Config{Name: name, BatchSize: relayBatch}, a.log, reg)
	if err != nil {
		return nil, err
	}
	last := records[n-1].Cursor
	position := map[event.Cursor]int{}
	for i, rec := range records {
		position[rec.Cursor] = i + 1
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	var wg sync.WaitGroup
	defer wg.Wait()
	wg.Add(1)
	go func() { defer wg.Done(); _ = r.Run(rctx) }()
	say("relay: draining the backlog of %d events", n)
	start = time.Now()
	lastSay = start
	var (
		firstHalf time.Duration // when the checkpoint passed n/2
		cp        event.Cursor
	)
	for cp != last {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
		if cp, err = source.Checkpoint(ctx, name); err != nil {
			return nil, err
		}
		done := position[cp]
		if firstHalf == 0 && done >= n/2 {
			firstHalf = time.Since(start)
		}
		if time.Since(lastSay) > 2*time.Second {
			lastSay = time.Now()
			say("relay: %d of %d (%.0f events/s)", done, n, float64(done)/time.Since(start).Seconds())
		}
		if time.Since(start) > 30*time.Minute {
			return nil, fmt.Errorf("relay did not drain %d events in 30 minutes (checkpoint %v)", n, cp)
		}
	}
	took := time.Since(start)
	stop()
	rate := float64(n) / took.Seconds()
	firstRate := float64(n/2) / firstHalf.Seconds()
	secondRate := float64(n-n/2) / (took - firstHalf).Seconds()
	say("relay: %d events in %s: %.0f events/s (first half %.0f/s, second half %.0f/s); ceiling %.0f/s",
		n, took.Round(time.Millisecond), rate, firstRate, secondRate, ceiling)
	if publishing := publishTime(reg); publishing > 0 {
		say("relay: of that, %s in Publish (encoding and confirms), the rest reading and saving", publishing.Round(time.Millisecond))
	}
	return []bench.Result{
		bench.Rate(fmt.Sprintf("relay.drain.%dk", n/1000), rate, ceiling, "events/s", 0.8),
		// The first half of the drain has twice the backlog ahead of it: a
		// batch whose cost grows with the backlog shows up here below 1.
		bench.Rate(fmt.Sprintf("relay.drain.%dk.flatness", n/1000), firstRate, secondRate, "events/s", 0.8),
	}, nil
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
