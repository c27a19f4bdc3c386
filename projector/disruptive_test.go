//go:build disruptive

// Disruptive tests stop shared servers; make test runs them on their own,
// serially (-tags disruptive -p 1).

package projector_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/relay"
)

const services = "../scripts/services"

// TestDisruptiveElasticsearchOutage stops Elasticsearch for 30 s while commands keep
// coming through the real relay and broker: nothing is lost, nothing is
// dead-lettered, readiness turns red while the projector cannot write, and
// the lag drains once Elasticsearch is back.
func TestDisruptiveElasticsearchOutage(t *testing.T) {
	w := newWorld(t)
	rm := newReadModels(t)
	b := newBroker(t)
	p, reg := newProjector(t, w, rm, nil)
	startConsumer(t, b, p)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	defer startRelay(t, ctx, cancel, w, b)()

	// Commands at a steady pace until told to stop.
	c := newCommander(w.svc, 21)
	c.run(t, ctx, 20, 1)
	cmdCtx, stopCommands := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for cmdCtx.Err() == nil {
				if err := c.one(cmdCtx); err != nil && cmdCtx.Err() == nil {
					t.Error(err)
					return
				}
				time.Sleep(15 * time.Millisecond)
			}
		}()
	}
	defer func() { stopCommands(); wg.Wait() }()

	waitFor(t, "the projector to apply something", 30*time.Second, func() bool { return p.Watermark().Position > 0 })
	before := p.Watermark()

	esOutage(t, p, before)

	time.Sleep(2 * time.Second)
	stopCommands()
	wg.Wait()
	t.Logf("commands: ok %v, refused %v", c.ok, c.refused)

	recs := readLog(t, w.pool)
	last := recs[len(recs)-1].Cursor
	back := time.Now()
	waitFor(t, "the lag to drain", 3*time.Minute, func() bool { return p.Watermark() == last })
	t.Logf("drained %d events in total, caught up %s after Elasticsearch returned", len(recs), time.Since(back).Round(time.Millisecond))

	checkDrained(t, b, reg, p)
	verify(t, w.pool, rm)
}

// startRelay runs the real relay from the store to the broker; the returned
// func cancels ctx and waits for the relay to stop.
func startRelay(t *testing.T, ctx context.Context, cancel context.CancelFunc, w *world, b *broker) func() {
	pub, err := rabbitmq.NewPublisher(b.conn)
	if err != nil {
		t.Fatal(err)
	}
	r, err := relay.New(testenv.RelaySource(t, w.pool), pub, relay.Config{}, testenv.Logger(t), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	relayDone := make(chan error, 1)
	go func() { relayDone <- r.Run(ctx) }()
	return func() {
		cancel()
		if err := <-relayDone; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("relay: %v", err)
		}
	}
}

// esOutage stops Elasticsearch for 30 s and wants readiness to turn red
// meanwhile; then it starts it again.
func esOutage(t *testing.T, p *projector.Projector, before event.Cursor) {
	t.Cleanup(func() { testenv.Run(t, services, "up", "elasticsearch") }) // whatever happens
	testenv.Run(t, services, "down", "elasticsearch")
	down := time.Now()
	sawRed := false
	for time.Since(down) < 30*time.Second {
		if err := p.Healthy(10 * time.Second); err != nil && !sawRed {
			sawRed = true
			t.Logf("after %s without Elasticsearch: %v", time.Since(down).Round(time.Second), err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	if !sawRed {
		t.Error("the projector looked healthy for 30 s without Elasticsearch")
	}
	stalled := p.Watermark()
	testenv.Run(t, services, "up", "elasticsearch")
	t.Logf("Elasticsearch back after %s; watermark moved from %v to %v meanwhile", time.Since(down).Round(time.Second), before, stalled)
}

// checkDrained wants nothing dead-lettered, no lag and readiness green.
func checkDrained(t *testing.T, b *broker, reg *prometheus.Registry, p *projector.Projector) {
	if n := b.queueLen(t, rabbitmq.ProjectorDeadQueue); n != 0 {
		t.Errorf("%d messages dead-lettered", n)
	}
	if v := metric(t, reg, "splitstream_projector_dead_lettered_total"); v != 0 {
		t.Errorf("dead-lettered counter = %v", v)
	}
	if v := metric(t, reg, "splitstream_projector_lag_positions"); v != 0 {
		t.Errorf("lag in positions after draining = %v", v)
	}
	waitFor(t, "the lag in seconds to drop to 0", 10*time.Second, func() bool {
		return metric(t, reg, "splitstream_projector_lag_seconds") == 0
	})
	if err := p.Healthy(10 * time.Second); err != nil {
		t.Errorf("not healthy after draining: %v", err)
	}
}
