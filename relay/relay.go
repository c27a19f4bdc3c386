// Package relay owns moving committed events from the event store to the
// broker: in relay order (writing transaction id, then position), with no
// event skipped and none published before the broker confirmed the one
// before it, by exactly one leader at a time, resuming from a checkpoint.
//
// It defines the two small interfaces it consumes, Source (postgres) and
// Publisher (rabbitmq); it imports no driver.
package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/event"
)

// Source is the event log, read in relay order.
type Source interface {
	// Lead blocks until this process is the only relay called name. The
	// returned context ends when that stops being true (for Postgres: the
	// connection holding the lock died) or when ctx ends; release gives the
	// leadership up. An error means the source could not be asked.
	Lead(ctx context.Context, name string) (leading context.Context, release func(), err error)
	// Checkpoint returns where the relay called name has published up to;
	// the zero cursor when it never has.
	Checkpoint(ctx context.Context, name string) (event.Cursor, error)
	// Next returns up to limit events after the cursor, in relay order, only
	// from the part of the log that can no longer change (no transaction can
	// still add an event before the last one returned). Record.Prev chains
	// from after. None is not an error.
	Next(ctx context.Context, after event.Cursor, limit int) ([]event.Record, error)
	// Save records that everything up to c is published. It never moves a
	// checkpoint backwards.
	Save(ctx context.Context, name string, c event.Cursor) error
	// Backlog counts the committed events after the cursor and returns the
	// time of the oldest of them (zero when there are none).
	Backlog(ctx context.Context, after event.Cursor) (count int64, oldest time.Time, err error)
	// Horizon says whether committed events after the cursor are held back
	// by a transaction still open (Next cannot return them until it ends),
	// and which.
	Horizon(ctx context.Context, after event.Cursor) (Horizon, error)
}

// Listener is what a Source may also be: one that hears when a transaction
// that appended events has committed, so the relay reads at once instead of
// at its next poll. Polling stays the safety net: a notice can be lost (the
// connection drops, a writer does not send one) and the horizon can move
// without any (a transaction that wrote no event ends), so a lost notice
// costs at most one poll interval.
type Listener interface {
	// Listen calls wake once it listens (notices sent before then are
	// lost, so the relay reads once more) and after each notice, until ctx
	// ends or the notices stop (the connection was lost); then it returns
	// why. wake never blocks.
	Listen(ctx context.Context, wake func()) error
}

// LaneCheckpoints is what a Source must also be when the relay routes to
// lanes: it keeps the last cursor published in each lane with the
// checkpoint, so that after a restart each lane's next record still names
// its lane predecessor.
type LaneCheckpoints interface {
	// LaneCheckpoint returns the last cursor published per lane (shorter
	// than the number of lanes, or empty, when never saved).
	LaneCheckpoint(ctx context.Context, name string) ([]event.Cursor, error)
	// SaveLanes is Save with the lanes' cursors.
	SaveLanes(ctx context.Context, name string, c event.Cursor, lanes []event.Cursor) error
}

// Lanes routes records to projector lanes: Count lanes (0: no lanes), Of
// says which lane a record's event goes to (query.LaneOfEnvelope).
type Lanes struct {
	Count int
	Of    func(event.Envelope) int
}

// Horizon is the state of the transaction horizon the relay reads below.
type Horizon struct {
	// Xmin is the oldest transaction still running; Next returns only
	// events of transactions before it.
	Xmin uint64
	// Held is true when committed events after the cursor wait behind Xmin.
	Held bool
	// Blocker describes the backend whose transaction is the horizon, when
	// one is found: "pid 1234 (database shop, user app, idle in
	// transaction, open 41s)".
	Blocker string
	// PID is the blocking backend's process id; 0 when none was found (a
	// prepared transaction, say).
	PID int
}

// Publisher hands events to the broker.
type Publisher interface {
	// Publish returns nil only when the broker has confirmed every record.
	// On an error any of them may or may not have been delivered.
	Publish(ctx context.Context, records []event.Record) error
}

// Config tunes a relay. The zero value of every field means its default.
type Config struct {
	// Name identifies the checkpoint and the leadership; "default" unless set.
	Name string
	// BatchSize is the most events read and published at once (500).
	BatchSize int
	// PollInterval is the wait after finding nothing new (25ms), cut short
	// by a commit notice when the Source is a Listener.
	PollInterval time.Duration
	// BatchWindow is the least time between the start of a read that found
	// some records, but less than a full batch, and the start of the next
	// read (10ms; negative for none). Under a steady stream of commits the
	// relay then publishes what came in a window at once instead of one or
	// two events per read, publish and save, and the broker, the projector
	// and Elasticsearch see batches of that size too. A backlog (full
	// batches) drains without a pause, and a commit after a read that found
	// nothing goes out at once.
	BatchWindow time.Duration
	// MaxBackoff caps the wait between retries after an error (5s).
	MaxBackoff time.Duration
	// PublishTimeout bounds one batch's publish and confirms (30s).
	PublishTimeout time.Duration
	// BacklogInterval is how often the backlog and horizon gauges are
	// refreshed (2s).
	BacklogInterval time.Duration
	// HorizonWarn is how long the transaction horizon may hold events back
	// before the relay's readiness check fails and names the blocking
	// backend (5s: a command transaction takes milliseconds, and the app's
	// own sessions are cut after 5s idle in a transaction).
	HorizonWarn time.Duration
	// Now is the clock, for the age of the backlog (time.Now).
	Now func() time.Time
	// Lanes stamps every record with its lane and the lane's previous
	// cursor; the Source must then be a LaneCheckpoints.
	Lanes Lanes
}

func (c Config) withDefaults() (Config, error) {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	if c.Name == "" {
		c.Name = "default"
	}
	if c.BatchSize == 0 {
		c.BatchSize = 500
	}
	def(&c.PollInterval, 25*time.Millisecond)
	def(&c.BatchWindow, 10*time.Millisecond)
	def(&c.MaxBackoff, 5*time.Second)
	def(&c.PublishTimeout, 30*time.Second)
	def(&c.BacklogInterval, 2*time.Second)
	def(&c.HorizonWarn, 5*time.Second)
	if c.Now == nil {
		c.Now = time.Now
	}
	var errs []error
	if c.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("relay: batch size %d is negative", c.BatchSize))
	}
	if c.Lanes.Count < 0 || c.Lanes.Count > 0 && c.Lanes.Of == nil {
		errs = append(errs, fmt.Errorf("relay: %d lanes with no lane function", c.Lanes.Count))
	}
	for name, d := range map[string]time.Duration{"poll interval": c.PollInterval, "max backoff": c.MaxBackoff,
		"publish timeout": c.PublishTimeout, "backlog interval": c.BacklogInterval, "horizon warning": c.HorizonWarn} {
		if d < 0 {
			errs = append(errs, fmt.Errorf("relay: %s %s is negative", name, d))
		}
	}
	return c, errors.Join(errs...)
}

// Relay publishes the event log to the broker. Several may run against one
// log: one leads, the others wait to take over.
type Relay struct {
	src  Source
	pub  Publisher
	cfg  Config
	log  *slog.Logger
	m    metrics
	wake chan struct{} // a commit notice not yet acted on (buffer of one)

	mu      sync.Mutex // guards the failure state below, for logging on change only
	failing string     // stage that is failing, "" when healthy
	since   time.Time
	errors  int

	hmu        sync.Mutex // guards the horizon state below
	horizon    Horizon    // as last seen
	heldSince  time.Time  // since when events are held behind horizon.Xmin; zero when not
	horizonErr error      // why the horizon could not be read, if it could not
}

// New returns a relay; it registers its metrics on reg.
func New(src Source, pub Publisher, cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Relay, error) {
	switch {
	case src == nil:
		return nil, errors.New("relay: nil source")
	case pub == nil:
		return nil, errors.New("relay: nil publisher")
	case log == nil:
		return nil, errors.New("relay: nil logger")
	case reg == nil:
		return nil, errors.New("relay: nil metrics registerer")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if _, ok := src.(LaneCheckpoints); cfg.Lanes.Count > 0 && !ok {
		return nil, errors.New("relay: lanes need a source that saves lane checkpoints")
	}
	m, err := newMetrics(reg, cfg.Name)
	if err != nil {
		return nil, err
	}
	return &Relay{src: src, pub: pub, cfg: cfg, log: log.With("relay", cfg.Name), m: m, wake: make(chan struct{}, 1)}, nil
}

// Run relays until ctx ends, and then returns ctx's error. Transient
// failures (Postgres or the broker away, leadership lost) are retried with
// backoff and logged once per change of state; they never end Run.
func (r *Relay) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r.watchBacklog(ctx)
	}()
	defer wg.Wait()

	b := r.backoff()
	for {
		leading, release, err := r.src.Lead(ctx, r.cfg.Name)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			r.fail("lead", err)
			if !r.sleep(ctx, b) {
				return ctx.Err()
			}
			continue
		}
		b.Reset()
		r.m.leader.Set(1)
		r.log.Info("relay leading")
		r.lead(leading)
		release()
		r.m.leader.Set(0)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.m.errors.WithLabelValues("leadership").Inc()
		r.log.Warn("relay lost leadership; trying to lead again", "err", context.Cause(leading))
	}
}

// resume reads the relay's checkpoint, retrying with b until it answers;
// false when ctx (the leadership) ends first.
func (r *Relay) resume(ctx context.Context, b *backoff.ExponentialBackOff) (event.Cursor, []event.Cursor, bool) {
	for {
		c, err := r.src.Checkpoint(ctx, r.cfg.Name)
		var lanes []event.Cursor
		if err == nil && r.cfg.Lanes.Count > 0 {
			lanes, err = r.src.(LaneCheckpoints).LaneCheckpoint(ctx, r.cfg.Name)
		}
		if err == nil {
			return c, r.laneCursors(lanes), true
		}
		if ctx.Err() != nil {
			return event.Cursor{}, nil, false
		}
		r.fail("checkpoint", err)
		if !r.sleep(ctx, b) {
			return event.Cursor{}, nil, false
		}
	}
}

// laneCursors is saved, padded to the number of lanes: a lane never
// published to starts at the zero cursor.
func (r *Relay) laneCursors(saved []event.Cursor) []event.Cursor {
	out := make([]event.Cursor, r.cfg.Lanes.Count)
	copy(out, saved)
	return out
}

// stamp gives each record its lane and its lane predecessor, starting from
// lanes (the last published cursor per lane), and returns the lanes'
// cursors after recs; lanes itself is not changed, so a batch that fails
// to publish leaves it as it was.
func (r *Relay) stamp(recs []event.Record, lanes []event.Cursor) []event.Cursor {
	if r.cfg.Lanes.Count == 0 {
		return lanes
	}
	next := slices.Clone(lanes)
	for i := range recs {
		l := r.cfg.Lanes.Of(recs[i].Envelope)
		recs[i].Lanes, recs[i].Lane, recs[i].LanePrev = r.cfg.Lanes.Count, l, next[l]
		next[l] = recs[i].Cursor
	}
	return next
}

// save records the checkpoint, with the lanes' cursors when there are lanes.
func (r *Relay) save(ctx context.Context, cur event.Cursor, lanes []event.Cursor) error {
	if r.cfg.Lanes.Count == 0 {
		return r.src.Save(ctx, r.cfg.Name, cur)
	}
	return r.src.(LaneCheckpoints).SaveLanes(ctx, r.cfg.Name, cur, lanes)
}

// startListening listens for commit notices while ctx lasts, when the
// source can (Listener); the function it returns waits for the listener
// to stop.
func (r *Relay) startListening(ctx context.Context) (wait func()) {
	l, ok := r.src.(Listener)
	if !ok {
		return func() {}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.listen(ctx, l)
	}()
	return func() { <-done }
}

// lead relays while ctx (the leadership) lasts.
func (r *Relay) lead(ctx context.Context) {
	b := r.backoff()
	cur, lanes, ok := r.resume(ctx, b)
	if !ok {
		return
	}
	r.log.Debug("relay resuming", "tx", cur.Tx, "position", cur.Position)
	defer r.startListening(ctx)()
	saved := cur
	rd := &reader{r: r}
	defer rd.drop()
	for ctx.Err() == nil {
		// A published batch is saved before the next is published: after a
		// crash at most one batch is published twice. If saving fails, the
		// batch is not published again; the save is retried.
		if saved != cur {
			if err := r.save(ctx, cur, lanes); err != nil {
				if ctx.Err() == nil {
					r.fail("save", err)
					r.sleep(ctx, b)
				}
				continue
			}
			saved = cur
		}
		recs, err := rd.next(ctx, cur)
		if err != nil {
			if ctx.Err() == nil {
				r.fail("read", err)
				r.sleep(ctx, b)
			}
			continue
		}
		if len(recs) == 0 {
			r.ok()
			b.Reset()
			r.idle(ctx)
			continue
		}
		rd.readAhead(ctx, recs[len(recs)-1].Cursor)
		after := r.stamp(recs, lanes)
		if err := r.publish(ctx, recs); err != nil {
			rd.drop() // it starts after a batch that was not published
			if ctx.Err() == nil {
				r.fail("publish", err)
				r.sleep(ctx, b)
			}
			continue
		}
		cur, lanes = recs[len(recs)-1].Cursor, after
		r.ok()
		b.Reset()
	}
}

// reader reads the log for lead. Each batch's successor is read while the
// batch is published: in a backlog the read then costs the drain nothing,
// and since reading has no effect, a batch read ahead of a failed publish
// is just dropped. A read after one that found part of a batch waits out
// BatchWindow.
type reader struct {
	r      *Relay
	ahead  <-chan batch // the read ahead, if one is on its way
	readAt time.Time    // when the last read began (or, read ahead, begins)
	found  int          // how many records it found
}

// next returns the batch after cur: the one read ahead if there is one,
// else (or when that came back empty, read before the last publish ended)
// a fresh read, once the window allows it, rather than after a poll
// interval.
func (rd *reader) next(ctx context.Context, cur event.Cursor) ([]event.Record, error) {
	if rd.ahead != nil {
		got := <-rd.ahead
		rd.ahead, rd.found = nil, len(got.recs)
		if got.err != nil || len(got.recs) > 0 {
			return got.recs, got.err
		}
	}
	if !rd.r.wait(ctx, rd.r.windowLeft(rd.readAt, rd.found, time.Now())) {
		return nil, ctx.Err()
	}
	rd.readAt = time.Now()
	recs, err := rd.r.src.Next(ctx, cur, rd.r.cfg.BatchSize)
	rd.found = len(recs)
	return recs, err
}

// readAhead starts reading the batch after the cursor in the background,
// once the window after the last read allows it.
func (rd *reader) readAhead(ctx context.Context, after event.Cursor) {
	delay := rd.r.windowLeft(rd.readAt, rd.found, time.Now())
	rd.readAt = time.Now().Add(delay)
	out := make(chan batch, 1)
	go func() {
		if !rd.r.wait(ctx, delay) {
			out <- batch{nil, ctx.Err()}
			return
		}
		recs, err := rd.r.src.Next(ctx, after, rd.r.cfg.BatchSize)
		out <- batch{recs, err}
	}()
	rd.ahead = out
}

// drop waits for the read ahead, if any, and forgets it.
func (rd *reader) drop() {
	if rd.ahead != nil {
		<-rd.ahead
		rd.ahead = nil
	}
}

// idle waits for a commit notice, or for the poll interval when none comes.
func (r *Relay) idle(ctx context.Context) {
	t := time.NewTimer(r.cfg.PollInterval)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-r.wake:
	}
}

// poke records a commit notice; one pending notice stands for any number.
func (r *Relay) poke() {
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// listen keeps l listening while ctx (the leadership) lasts, and listens
// again after each loss, with backoff. Meanwhile the relay polls, so an
// outage of the notices slows it to the poll interval and no more; it is
// logged once, and counted as errors at stage "listen".
func (r *Relay) listen(ctx context.Context, l Listener) {
	b := r.backoff()
	lost := false
	for {
		start := r.cfg.Now()
		err := l.Listen(ctx, r.poke)
		if ctx.Err() != nil {
			return
		}
		r.m.errors.WithLabelValues("listen").Inc()
		if r.cfg.Now().Sub(start) > time.Minute {
			// It listened a good while: a new loss, not the same outage.
			b.Reset()
			lost = false
		}
		if !lost {
			r.log.Warn("relay lost its commit notices; polling every interval until they are back", "interval", r.cfg.PollInterval, "err", err)
			lost = true
		}
		if !r.sleep(ctx, b) {
			return
		}
	}
}

// batch is the answer of one Source.Next.
type batch struct {
	recs []event.Record
	err  error
}

// windowLeft is how long the next read waits: what is left of BatchWindow
// since the last read began at readAt, if that read found some records
// but not a full batch. After a full batch (a backlog) or none at all (the
// next commit is the first after a quiet spell) it reads at once.
func (r *Relay) windowLeft(readAt time.Time, found int, now time.Time) time.Duration {
	if found == 0 || found >= r.cfg.BatchSize || r.cfg.BatchWindow <= 0 {
		return 0
	}
	return max(0, readAt.Add(r.cfg.BatchWindow).Sub(now))
}

func (r *Relay) publish(ctx context.Context, recs []event.Record) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.PublishTimeout)
	defer cancel()
	start := r.cfg.Now()
	if err := r.pub.Publish(ctx, recs); err != nil {
		return err
	}
	now := r.cfg.Now()
	r.m.publishSeconds.Observe(now.Sub(start).Seconds())
	r.m.batches.Inc()
	r.m.published.Add(float64(len(recs)))
	for _, rec := range recs {
		r.m.delaySeconds.Observe(now.Sub(rec.Envelope.OccurredAt).Seconds())
	}
	return nil
}

// watchBacklog refreshes the backlog gauges until ctx ends. Every relay
// does it, leader or not, from the saved checkpoint, so the gauges are
// right wherever they are scraped.
func (r *Relay) watchBacklog(ctx context.Context) {
	t := time.NewTicker(r.cfg.BacklogInterval)
	defer t.Stop()
	for {
		r.updateBacklog(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (r *Relay) updateBacklog(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.BacklogInterval)
	defer cancel()
	cur, err := r.src.Checkpoint(ctx, r.cfg.Name)
	if err != nil {
		if ctx.Err() == nil {
			r.m.errors.WithLabelValues("backlog").Inc()
		}
		return
	}
	count, oldest, err := r.src.Backlog(ctx, cur)
	if err != nil {
		if ctx.Err() == nil {
			r.m.errors.WithLabelValues("backlog").Inc()
		}
		return
	}
	r.m.backlog.Set(float64(count))
	age := 0.0
	if count > 0 && !oldest.IsZero() {
		age = max(r.cfg.Now().Sub(oldest).Seconds(), 0)
	}
	r.m.backlogAge.Set(age)
	r.updateHorizon(ctx, cur)
}

// updateHorizon reads the transaction horizon and keeps how long it has
// held events back: since the first look that found events waiting behind
// the same oldest transaction.
func (r *Relay) updateHorizon(ctx context.Context, cur event.Cursor) {
	h, err := r.src.Horizon(ctx, cur)
	now := r.cfg.Now()
	r.hmu.Lock()
	defer r.hmu.Unlock()
	r.horizonErr = err
	if err != nil {
		if ctx.Err() == nil {
			r.m.errors.WithLabelValues("horizon").Inc()
		}
		return
	}
	switch {
	case !h.Held:
		r.heldSince = time.Time{}
	case r.heldSince.IsZero() || h.Xmin != r.horizon.Xmin:
		r.heldSince = now
	}
	r.horizon = h
	held := 0.0
	if !r.heldSince.IsZero() {
		held = max(now.Sub(r.heldSince).Seconds(), 0)
	}
	r.m.horizonHeld.Set(held)
	r.m.horizonPID.Set(float64(h.PID))
}

// HorizonCheck fails, naming the blocking backend, while a transaction
// still open has held committed events back from the relay for longer
// than HorizonWarn: the relay cannot publish them until it ends.
func (r *Relay) HorizonCheck(context.Context) error {
	r.hmu.Lock()
	defer r.hmu.Unlock()
	if r.heldSince.IsZero() {
		return nil
	}
	held := r.cfg.Now().Sub(r.heldSince)
	if held <= r.cfg.HorizonWarn {
		return nil
	}
	blocker := r.horizon.Blocker
	if blocker == "" {
		blocker = "no backend found (a prepared transaction?)"
	}
	return fmt.Errorf("transaction horizon (xid %d) has held committed events back for %s; blocking backend: %s",
		r.horizon.Xmin, held.Round(100*time.Millisecond), blocker)
}

func (r *Relay) backoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = min(100*time.Millisecond, r.cfg.MaxBackoff)
	b.MaxInterval = r.cfg.MaxBackoff
	return b
}

// sleep waits for the next backoff interval, capped at MaxBackoff even
// after randomisation; false when ctx ended first.
func (r *Relay) sleep(ctx context.Context, b *backoff.ExponentialBackOff) bool {
	return r.wait(ctx, min(b.NextBackOff(), r.cfg.MaxBackoff))
}

// wait waits d, and says false if ctx ended first.
func (r *Relay) wait(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// fail counts an error and logs it when the relay was healthy, or failing
// at another stage: an outage is one line, not one per retry.
func (r *Relay) fail(stage string, err error) {
	r.m.errors.WithLabelValues(stage).Inc()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors++
	if r.failing == stage {
		return
	}
	if r.failing == "" {
		r.since = r.cfg.Now()
	}
	r.failing = stage
	r.log.Warn("relay stalled; retrying with backoff", "stage", stage, "err", err)
}

func (r *Relay) ok() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failing == "" {
		return
	}
	r.log.Info("relay recovered", "after", r.cfg.Now().Sub(r.since).Round(time.Millisecond), "errors", r.errors)
	r.failing, r.errors = "", 0
}

type metrics struct {
	published      prometheus.Counter
	batches        prometheus.Counter
	errors         *prometheus.CounterVec
	publishSeconds prometheus.Histogram
	delaySeconds   prometheus.Histogram
	backlog        prometheus.Gauge
	backlogAge     prometheus.Gauge
	leader         prometheus.Gauge
	horizonHeld    prometheus.Gauge
	horizonPID     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, name string) (metrics, error) {
	labels := prometheus.Labels{"relay": name}
	m := metrics{
		published: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "splitstream_relay_published_events_total", ConstLabels: labels,
			Help: "Events the broker confirmed.",
		}),
		batches: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "splitstream_relay_batches_total", ConstLabels: labels,
			Help: "Batches the broker confirmed.",
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "splitstream_relay_errors_total", ConstLabels: labels,
			Help: "Failures by stage (lead, checkpoint, read, publish, save, backlog, horizon, leadership, listen); each is retried.",
		}, []string{"stage"}),
		publishSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "splitstream_relay_publish_duration_seconds", ConstLabels: labels,
			Help:    "Time to publish one batch until the broker confirmed all of it.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		delaySeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "splitstream_relay_event_delay_seconds", ConstLabels: labels,
			Help:    "Time from an event's append to the broker's confirm of it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}),
		backlog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "splitstream_relay_backlog_events", ConstLabels: labels,
			Help: "Committed events not yet published (past the saved checkpoint).",
		}),
		backlogAge: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "splitstream_relay_backlog_oldest_age_seconds", ConstLabels: labels,
			Help: "Age of the oldest unpublished event; 0 when there is none.",
		}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "splitstream_relay_leader", ConstLabels: labels,
			Help: "1 while this process is the relay that publishes.",
		}),
		horizonHeld: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "splitstream_relay_horizon_held_seconds", ConstLabels: labels,
			Help: "How long committed events have waited behind a transaction still open (the pg_snapshot_xmin horizon); 0 when none wait.",
		}),
		horizonPID: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "splitstream_relay_horizon_blocker_pid", ConstLabels: labels,
			Help: "Process id of the Postgres backend whose transaction is the horizon; 0 when none is known.",
		}),
	}
	for _, c := range []prometheus.Collector{m.published, m.batches, m.errors, m.publishSeconds, m.delaySeconds, m.backlog, m.backlogAge, m.leader, m.horizonHeld, m.horizonPID} {
		if err := reg.Register(c); err != nil {
			return metrics{}, fmt.Errorf("relay metrics: %w", err)
		}
	}
	return m, nil
}
