package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/splitstream/splitstream/event"
)

// memSource is an in-memory Source whose calls can be made to fail.
type memSource struct {
	mu         sync.Mutex
	log        []event.Record // in relay order
	checkpoint event.Cursor
	nextFails  int // Next fails this many more times
	saveFails  int
	leads      int
	lease      context.CancelCauseFunc
	backlogN   int64
	backlogAt  time.Time
	published  func(event.Cursor) bool // for Save to check it only covers published events
	saveErrors []string
}

func (s *memSource) append(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range n {
		c := event.Cursor{Tx: uint64(len(s.log) + 1), Position: int64(len(s.log) + 1)}
		s.log = append(s.log, event.Record{Cursor: c, Envelope: event.Envelope{ID: fmt.Sprint("e", c.Position), Position: c.Position}})
	}
}

func (s *memSource) Lead(ctx context.Context, name string) (context.Context, func(), error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leads++
	leading, cancel := context.WithCancelCause(ctx)
	s.lease = cancel
	return leading, func() { cancel(errors.New("released")) }, nil
}

// loseLease ends the current leadership as a dead lock connection would.
func (s *memSource) loseLease() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lease(errors.New("connection lost"))
}

func (s *memSource) Checkpoint(ctx context.Context, name string) (event.Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.checkpoint, nil
}

func (s *memSource) Next(ctx context.Context, after event.Cursor, limit int) ([]event.Record, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.nextFails > 0 {
		s.nextFails--
		return nil, errors.New("postgres away")
	}
	var out []event.Record
	prev := after
	for _, r := range s.log {
		if after.Less(r.Cursor) && len(out) < limit {
			r.Prev = prev
			out = append(out, r)
			prev = r.Cursor
		}
	}
	return out, nil
}

func (s *memSource) Save(ctx context.Context, name string, c event.Cursor) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.saveFails > 0 {
		s.saveFails--
		return errors.New("postgres away")
	}
	for _, r := range s.log {
		if !c.Less(r.Cursor) && !s.published(r.Cursor) {
			s.saveErrors = append(s.saveErrors, fmt.Sprintf("checkpoint %v saved before %v was published", c, r.Cursor))
		}
	}
	if s.checkpoint.Less(c) {
		s.checkpoint = c
	}
	return nil
}

// Horizon: an in-memory log has no open transactions.
func (s *memSource) Horizon(context.Context, event.Cursor) (Horizon, error) {
	return Horizon{}, nil
}

func (s *memSource) Backlog(ctx context.Context, after event.Cursor) (int64, time.Time, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.backlogN, s.backlogAt, nil
}

// memPublisher records what it was asked to publish, and can fail.
type memPublisher struct {
	mu      sync.Mutex
	fails   int
	calls   int
	batches [][]event.Record
	count   map[event.Cursor]int
}

func (p *memPublisher) Publish(ctx context.Context, recs []event.Record) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls++
	if p.fails > 0 {
		p.fails--
		return errors.New("broker away")
	}
	p.batches = append(p.batches, recs)
	for _, r := range recs {
		p.count[r.Cursor]++
	}
	return nil
}

func (p *memPublisher) published(c event.Cursor) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.count[c] > 0
}

type fixture struct {
	src *memSource
	pub *memPublisher
	r   *Relay
	reg *prometheus.Registry
}

func newFixture(t *testing.T, cfg Config) *fixture {
	t.Helper()
	return newFixtureReading(t, cfg, nil)
}

// newFixtureReading is newFixture with the relay reading the log through
// the Source that through returns for the fixture's memSource, when
// through is set. A BacklogInterval set in cfg is kept
// (else 5ms).
func newFixtureReading(t *testing.T, cfg Config, through func(*memSource) Source) *fixture {
	t.Helper()
	pub := &memPublisher{count: map[event.Cursor]int{}}
	src := &memSource{published: pub.published}
	var read Source = src
	if through != nil {
		read = through(src)
	}
	reg := prometheus.NewRegistry()
	cfg.PollInterval, cfg.MaxBackoff = time.Millisecond, 5*time.Millisecond
	if cfg.BacklogInterval == 0 {
		cfg.BacklogInterval = 5 * time.Millisecond
	}
	r, err := New(read, pub, cfg, slog.New(slog.DiscardHandler), reg)
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{src: src, pub: pub, r: r, reg: reg}
}

// run starts the relay and stops it when the test ends.
func (f *fixture) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.r.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	})
}

// value reads a counter or gauge.
func value(t *testing.T, m prometheus.Metric) float64 {
	t.Helper()
	var out dto.Metric
	if err := m.Write(&out); err != nil {
		t.Fatal(err)
	}
	if out.Counter != nil {
		return out.Counter.GetValue()
	}
	return out.Gauge.GetValue()
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// allPublishedOnce waits until the checkpoint covers the whole log, and
// checks that every event was published exactly once.
func (f *fixture) allPublishedOnce(t *testing.T) {
	t.Helper()
	f.src.mu.Lock()
	last := f.src.log[len(f.src.log)-1].Cursor
	f.src.mu.Unlock()
	eventually(t, "the checkpoint to reach the end of the log", func() bool {
		f.src.mu.Lock()
		defer f.src.mu.Unlock()
		return f.src.checkpoint == last
	})
	// Locks in Save's order: source, then publisher.
	f.src.mu.Lock()
	defer f.src.mu.Unlock()
	f.pub.mu.Lock()
	defer f.pub.mu.Unlock()
	for _, r := range f.src.log {
		if n := f.pub.count[r.Cursor]; n != 1 {
			t.Errorf("%v published %d times", r.Cursor, n)
		}
	}
	for _, e := range f.src.saveErrors {
		t.Error(e)
	}
}

func TestNewRefusesMissingDependencies(t *testing.T) {
	src, pub, log, reg := &memSource{}, &memPublisher{}, slog.New(slog.DiscardHandler), prometheus.NewRegistry()
	for name, args := range map[string]struct {
		src Source
		pub Publisher
		log *slog.Logger
		reg prometheus.Registerer
	}{
		"source": {nil, pub, log, reg}, "publisher": {src, nil, log, reg},
		"logger": {src, pub, nil, reg}, "registerer": {src, pub, log, nil},
	} {
		if _, err := New(args.src, args.pub, Config{}, args.log, args.reg); err == nil {
			t.Errorf("New accepted a nil %s", name)
		}
	}
	if _, err := New(src, pub, Config{BatchSize: -1}, log, reg); err == nil {
		t.Error("New accepted a negative batch size")
	}
	if _, err := New(src, pub, Config{}, log, reg); err != nil {
		t.Fatal(err)
	}
	if _, err := New(src, pub, Config{}, log, reg); err == nil {
		t.Error("two relays of one name registered the same metrics")
	}
}

func TestRelayPublishesInBatchesAndSaves(t *testing.T) {
	f := newFixture(t, Config{BatchSize: 4})
	f.src.append(10)
	f.run(t)
	f.allPublishedOnce(t)
	f.pub.mu.Lock()
	defer f.pub.mu.Unlock()
	if len(f.pub.batches) != 3 || len(f.pub.batches[0]) != 4 || len(f.pub.batches[2]) != 2 {
		t.Errorf("batches of %d, want 4+4+2", len(f.pub.batches))
	}
	if got := value(t, f.r.m.published); got != 10 {
		t.Errorf("published metric %v, want 10", got)
	}
	if got := value(t, f.r.m.batches); got != 3 {
		t.Errorf("batches metric %v, want 3", got)
	}
}

// TestRelayPollsWhileEmpty: nothing to do is not an error, and events that
// come later are found.
func TestRelayPollsWhileEmpty(t *testing.T) {
	f := newFixture(t, Config{})
	f.run(t)
	time.Sleep(30 * time.Millisecond)
	f.src.append(3)
	f.allPublishedOnce(t)
	families, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, fam := range families {
		if fam.GetName() == "splitstream_relay_errors_total" {
			t.Errorf("errors after empty polls: %v", fam)
		}
	}
}

// TestRelayPublishFailureKeepsCheckpoint: a failed publish does not move
// the checkpoint; the same batch is retried until the broker takes it.
func TestRelayPublishFailureKeepsCheckpoint(t *testing.T) {
	f := newFixture(t, Config{})
	f.src.append(5)
	f.pub.fails = 3
	f.run(t)
	f.allPublishedOnce(t)
	if got := value(t, f.r.m.errors.WithLabelValues("publish")); got != 3 {
		t.Errorf("publish errors %v, want 3", got)
	}
}

// TestRelayReadFailureRetries: Postgres away for a while is waited out.
func TestRelayReadFailureRetries(t *testing.T) {
	f := newFixture(t, Config{})
	f.src.append(5)
	f.src.nextFails = 4
	f.run(t)
	f.allPublishedOnce(t)
}

// TestRelaySaveFailureDoesNotRepublish: a confirmed batch is not published
// again because its checkpoint could not be saved; the save is retried.
func TestRelaySaveFailureDoesNotRepublish(t *testing.T) {
	f := newFixture(t, Config{BatchSize: 2})
	f.src.append(5)
	f.src.saveFails = 3
	f.run(t)
	f.allPublishedOnce(t)
}

// TestRelayLeadsAgainAfterLosingLeadership: a lost lease ends the leading
// loop; the relay leads again and resumes from the saved checkpoint.
func TestRelayLeadsAgainAfterLosingLeadership(t *testing.T) {
	f := newFixture(t, Config{})
	f.src.append(3)
	f.run(t)
	f.allPublishedOnce(t)
	f.src.loseLease()
	eventually(t, "a second lead", func() bool {
		f.src.mu.Lock()
		defer f.src.mu.Unlock()
		return f.src.leads == 2
	})
	f.src.append(3)
	f.allPublishedOnce(t)
	if got := value(t, f.r.m.leader); got != 1 {
		t.Errorf("leader gauge %v, want 1", got)
	}
}

func TestRelayBacklogGauges(t *testing.T) {
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	f := newFixture(t, Config{Now: func() time.Time { return now }})
	f.src.backlogN, f.src.backlogAt = 7, now.Add(-3*time.Second)
	f.run(t)
	eventually(t, "the backlog gauges", func() bool {
		return value(t, f.r.m.backlog) == 7 && value(t, f.r.m.backlogAge) == 3
	})
	f.src.mu.Lock()
	f.src.backlogN, f.src.backlogAt = 0, time.Time{}
	f.src.mu.Unlock()
	eventually(t, "the backlog gauges to fall to zero", func() bool {
		return value(t, f.r.m.backlog) == 0 && value(t, f.r.m.backlogAge) == 0
	})
}
