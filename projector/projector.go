// Package projector owns turning events into read-model documents: it
// folds each batch of records, in relay order, into the product, review,
// order and event documents with the rules of package query, writes them
// with optimistic concurrency, keeps the applied watermark without holes,
// and announces every durable batch with a "projected" notice.
//
// It defines the small interfaces it consumes (Store, History,
// NoticePublisher) and imports no driver: elastic, postgres and rabbitmq
// implement them, and rabbitmq's consumer feeds it batches.
package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// CheckpointID is the id of the projector's document in the checkpoints model.
const CheckpointID = "projector"

// DefaultMaxStall is how long the projector may hold work without writing
// before Healthy says it is not.
const DefaultMaxStall = 30 * time.Second

// Config is what a projector needs. The zero value of every tuning field
// means its default.
type Config struct {
	Store   Store
	History History
	// Notices receives one notice per durable batch; nil publishes none.
	Notices NoticePublisher
	// EventLog reads the event log in relay order, to fill a hole in the
	// watermark that redelivery will not fill; nil never fills holes.
	EventLog Log
	// DeadLetters keeps the events whose documents the store refused for
	// good, and the events parked behind them; nil keeps them in memory
	// only (a rebuild, tests).
	DeadLetters DeadLetters
	// HoleTimeout is how long records may wait behind a hole before the
	// log is read (10s).
	HoleTimeout time.Duration
	// Registerer takes the projector's metrics; nil registers none.
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time

	// MaxAttempts is how many times a message that cannot be applied (an
	// unknown event type, a gap the event store cannot fill) is tried
	// before it is dead-lettered (3). Malformed messages go at once.
	MaxAttempts int
	// MaxConflicts bounds the reload-and-reapply rounds for one document in
	// one batch before the batch starts over (10).
	MaxConflicts int
	// MaxBackoff caps the wait between retries after a failure (5s).
	MaxBackoff time.Duration
	// RequestTimeout bounds one request to the store or the history (15s).
	RequestTimeout time.Duration
	// BreakerFailures is how many failed requests in a row open the circuit
	// breaker around the store (5); BreakerOpen is how long it then stays
	// open before one probe is let through (5s).
	BreakerFailures uint32
	BreakerOpen     time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Store == nil {
		return c, errors.New("projector: nil store")
	}
	if c.History == nil {
		return c, errors.New("projector: nil history")
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.DeadLetters == nil {
		c.DeadLetters = newMemDeadLetters()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HoleTimeout <= 0 {
		c.HoleTimeout = 10 * time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.MaxConflicts <= 0 {
		c.MaxConflicts = 10
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 15 * time.Second
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 5
	}
	if c.BreakerOpen <= 0 {
		c.BreakerOpen = 5 * time.Second
	}
	return c, nil
}

// Action is what the consumer does with a message after Handle.
type Action int

const (
	// Ack: the message's effect is durable (or it was a no-op).
	Ack Action = iota
	// Retry: hand the message back to the queue to be tried again.
	Retry
	// DeadLetter: the message can never apply; send it to the dead-letter
	// queue with Verdict.Reason, then ack it.
	DeadLetter
)

func (a Action) String() string {
	switch a {
	case Ack:
		return "ack"
	case Retry:
		return "retry"
	default:
		return "dead-letter"
	}
}

// Message is one delivery handed to Handle.
type Message struct {
	Record event.Record
	// Invalid is why the delivery could not be read as a record (bad JSON,
	// missing headers); such a message is dead-lettered at once.
	Invalid error
	// Chained says Record.Cursor and Record.Prev are the relay's, so the
	// watermark may pass the message even when it is dead-lettered. It is
	// true for every valid record.
	Chained bool
}

// Verdict is Handle's decision about one message.
type Verdict struct {
	Action Action
	Reason string // for Retry and DeadLetter
}

// Projector folds batches of records into the read models. Handle is
// called by one goroutine at a time; the other methods are safe anywhere.
type Projector struct {
	cfg     Config
	log     *slog.Logger
	m       *metrics
	breaker *gobreaker.CircuitBreaker[any]

	mu           sync.Mutex
	wm           *watermark
	attempts     map[string]int // failed attempts per event id
	lastWrite    time.Time
	pendingSince time.Time // zero when no batch is being handled
	pendingAge   time.Time // occurredAt of the oldest record being handled
	lastLag      float64
	seenPos      int64
	attached     bool // a consumer has reported its state at least once
	consuming    bool
	consumingAt  time.Time
	notice       *Notice   // last notice, kept when publishing it failed
	cpDirty      bool      // the watermark moved but the checkpoint write failed
	holeSince    time.Time // since when records wait behind a hole, without progress
	deadCount    int       // dead letters waiting, as last counted
	// streamOf is the stream type an event's payload belongs to
	// (event.StreamTypeOf); a test swaps it to feed a stream type the
	// projector has no read model for.
	streamOf func(event.Payload) string
}

// payload decodes e and checks that its payload belongs to the stream type
// its envelope names.
func (p *Projector) payload(e event.Envelope) (event.Payload, error) {
	pl, err := e.Payload()
	if err == nil && p.streamOf(pl) != e.StreamType {
		err = fmt.Errorf("%w: %s is a %s event, the envelope says %q", event.ErrMalformed, e.Type, p.streamOf(pl), e.StreamType)
	}
	return pl, err
}

// New returns a projector; Handle resumes from the stored checkpoint.
func New(cfg Config) (*Projector, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Projector{cfg: cfg, log: cfg.Log, attempts: map[string]int{}, consumingAt: cfg.Now(), streamOf: event.StreamTypeOf}
	p.breaker = gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:        "elasticsearch",
		MaxRequests: 1,
		Timeout:     cfg.BreakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= cfg.BreakerFailures },
		IsExcluded:  func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			p.log.Warn("elasticsearch circuit breaker", "from", from.String(), "to", to.String())
		},
	})
	reg := cfg.Registerer
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	if p.m, err = newMetrics(reg, p); err != nil {
		return nil, err
	}
	return p, nil
}

// Watermark returns the cursor up to which every record is applied.
func (p *Projector) Watermark() event.Cursor {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.wm == nil {
		return event.Cursor{}
	}
	return p.wm.at
}

// Consuming is told by the consumer whether it is subscribed, so that a
// projector whose consumer lost the broker does not look healthy.
func (p *Projector) Consuming(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.attached || p.consuming != on {
		p.consumingAt = p.cfg.Now()
	}
	p.attached, p.consuming = true, on
}

// Healthy returns nil unless the projector has held work without managing
// to write it for longer than maxStall (DefaultMaxStall when 0), or its
// consumer has been detached from the broker that long. For readiness.
func (p *Projector) Healthy(maxStall time.Duration) error {
	if maxStall <= 0 {
		maxStall = DefaultMaxStall
	}
	s := p.status()
	now := p.cfg.Now()
	if s.pending {
		since := s.pendingSince
		if s.lastWrite.After(since) {
			since = s.lastWrite
		}
		if d := now.Sub(since); d > maxStall {
			return fmt.Errorf("projector stalled: events waiting for %s without a successful write (breaker %s)",
				d.Round(time.Second), p.breaker.State())
		}
	}
	if s.attached && !s.consuming && now.Sub(s.since) > maxStall {
		return fmt.Errorf("projector not consuming from the broker for %s", now.Sub(s.since).Round(time.Second))
	}
	return nil
}

func (p *Projector) status() status {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := status{lastWrite: p.lastWrite, pending: !p.pendingSince.IsZero(), pendingSince: p.pendingSince,
		consuming: p.consuming, attached: p.attached, since: p.consumingAt, lagSeconds: p.lastLag}
	if p.wm != nil {
		s.watermark, s.held = p.wm.at, len(p.wm.held)
		if lag := p.seenPos - p.wm.at.Position; lag > 0 {
			s.lagPositions = lag
		}
	}
	if s.pending && !p.pendingAge.IsZero() {
		s.lagSeconds = p.cfg.Now().Sub(p.pendingAge).Seconds()
	}
	return s
}

func (p *Projector) breakerOpen() bool { return p.breaker.State() != gobreaker.StateClosed }

// Handle projects one batch of messages, in relay order, and returns a
// verdict per message. It returns only once every write the batch needs is
// durable, retrying failures with capped backoff (messages stay unacked
// meanwhile), or with an error when ctx ends first.
func (p *Projector) Handle(ctx context.Context, msgs []Message) ([]Verdict, error) {
	if len(msgs) == 0 {
		return nil, nil
	}
	start := p.cfg.Now()
	p.mu.Lock()
	p.pendingSince = start
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		p.pendingSince, p.pendingAge = time.Time{}, time.Time{}
		p.mu.Unlock()
	}()
	if err := p.resume(ctx); err != nil {
		return nil, err
	}
	verdicts := make([]Verdict, len(msgs))
	items := make([]item, 0, len(msgs))
	oldest := time.Time{}
	var seen int64
	for i, m := range msgs {
		e := m.Record.Envelope
		if m.Invalid != nil {
			verdicts[i] = p.dead(e.Type, m.Invalid.Error())
			continue
		}
		pl, err := p.payload(e)
		if err != nil {
			verdicts[i] = p.poison(e, err, errors.Is(err, event.ErrMalformed))
			continue
		}
		items = append(items, item{idx: i, rec: m.Record, pl: pl})
		if oldest.IsZero() || e.OccurredAt.Before(oldest) {
			oldest = e.OccurredAt
		}
		seen = max(seen, e.Position)
	}
	p.mu.Lock()
	p.pendingAge, p.seenPos = oldest, max(p.seenPos, seen)
	p.mu.Unlock()

	b, err := p.project(ctx, items, nil)
	if err != nil {
		return nil, err
	}
	for _, it := range b.items {
		if d, dead := b.dead[it.idx]; dead {
			p.forget(it.rec.Envelope.ID)
			verdicts[it.idx] = p.parkedVerdict(it.rec.Envelope, d)
			continue
		}
		if reason, bad := b.poisoned[it.idx]; bad {
			verdicts[it.idx] = p.poison(it.rec.Envelope, reason, false)
			continue
		}
		p.forget(it.rec.Envelope.ID)
		outcome := outcomeApplied
		if b.outcomes[it.idx] == outcomeDuplicate {
			outcome = outcomeDuplicate
		}
		p.m.events.WithLabelValues(it.rec.Envelope.Type, outcome).Inc()
	}

	var done []link
	for i, m := range msgs {
		if verdicts[i].Action != Retry && (m.Chained || m.Invalid == nil) {
			done = append(done, link{m.Record.Cursor, m.Record.Prev})
		}
	}
	p.commit(ctx, b, done)
	p.m.batchSecs.Observe(p.cfg.Now().Sub(start).Seconds())
	p.fillHole(ctx)
	return verdicts, nil
}

// link is a record's place in relay order.
type link struct{ cur, prev event.Cursor }

// commit records a durable batch: the watermark passes the records done,
// the checkpoint follows it, and a notice announces the batch.
func (p *Projector) commit(ctx context.Context, b *batch, done []link) {
	now := p.cfg.Now()
	p.mu.Lock()
	moved := false
	for _, l := range done {
		moved = p.wm.done(l.cur, l.prev) || moved
	}
	switch {
	case len(p.wm.held) == 0:
		p.holeSince = time.Time{}
	case moved || p.holeSince.IsZero():
		p.holeSince = now
	}
	p.lastWrite = now
	if newest := b.newest(); !newest.IsZero() {
		p.lastLag = now.Sub(newest).Seconds()
	}
	wm := p.wm.at
	if moved {
		p.cpDirty = true
	}
	p.mu.Unlock()

	p.saveCheckpoint(ctx)
	n := Notice{Changes: b.changes(), Watermark: wm, At: now}
	if len(n.Changes) > 0 || moved {
		p.publish(ctx, n)
	}
}

// fillHole reads the log from the watermark when records have waited
// behind a hole for longer than HoleTimeout, and applies what it finds
// (mostly duplicates): a predecessor that was acked before a restart lost
// its place in memory, or a message the broker never routed to the queue,
// would otherwise hold the watermark back for good. It stops before a
// record it cannot apply; that one is still in the queue, on its way to the
// dead-letter queue.
func (p *Projector) fillHole(ctx context.Context) {
	if p.cfg.EventLog == nil {
		return
	}
	for range 20 { // bounded work per call; the next call goes on
		p.mu.Lock()
		if p.wm == nil { // not resumed yet: no batch so far
			p.mu.Unlock()
			return
		}
		at, held, since := p.wm.at, len(p.wm.held), p.holeSince
		p.mu.Unlock()
		if held == 0 || since.IsZero() || p.cfg.Now().Sub(since) < p.cfg.HoleTimeout {
			return
		}
		lctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		recs, err := p.cfg.EventLog.Next(lctx, at, 500)
		cancel()
		if err != nil {
			p.log.Warn("read the log to fill a hole in the watermark", "after", at, "err", err)
			return
		}
		var items []item
		for i, r := range recs {
			pl, err := p.payload(r.Envelope)
			if err != nil {
				break
			}
			items = append(items, item{idx: i, rec: r, pl: pl})
		}
		if len(items) == 0 {
			return
		}
		p.log.Info("filling a hole in the watermark from the log", "after", at, "records", len(items), "held", held)
		b, err := p.project(ctx, items, nil)
		if err != nil {
			return
		}
		var done []link
		for _, it := range b.items {
			if _, bad := b.poisoned[it.idx]; bad {
				break
			}
			done = append(done, link{it.rec.Cursor, it.rec.Prev})
			if d, dead := b.dead[it.idx]; dead {
				p.parkedVerdict(it.rec.Envelope, d)
				continue
			}
			outcome := outcomeApplied
			if b.outcomes[it.idx] == outcomeDuplicate {
				outcome = outcomeDuplicate
			}
			p.m.events.WithLabelValues(it.rec.Envelope.Type, outcome).Inc()
		}
		p.m.holesFilled.Add(float64(len(done)))
		p.commit(ctx, b, done)
		if len(done) < len(recs) {
			return
		}
	}
}

// Idle is called by the consumer when no message has come for a while: it
// retries a checkpoint write or a notice that failed after the last batch,
// and fills a hole in the watermark that has lasted too long.
func (p *Projector) Idle(ctx context.Context) {
	p.mu.Lock()
	if p.wm != nil && len(p.wm.held) == 0 {
		// The queue had nothing for a while and nothing waits behind a
		// hole: everything published is applied.
		p.lastLag = 0
	}
	p.mu.Unlock()
	p.saveCheckpoint(ctx)
	p.fillHole(ctx)
	p.countDead(ctx)
	p.mu.Lock()
	n := p.notice
	p.mu.Unlock()
	if n != nil {
		p.publish(ctx, Notice{Watermark: n.Watermark, At: p.cfg.Now()})
	}
}

func (p *Projector) publish(ctx context.Context, n Notice) {
	if p.cfg.Notices == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	err := p.cfg.Notices.PublishNotice(ctx, n)
	p.mu.Lock()
	defer p.mu.Unlock()
	if err != nil {
		p.log.Warn("publish projected notice", "err", err, "changes", len(n.Changes))
		p.notice = &n
		return
	}
	p.notice = nil
}

// parkedVerdict counts an event parked in the dead-letter store: it is
// acked (the store has it durably) and the watermark passes it.
func (p *Projector) parkedVerdict(e event.Envelope, d deadItem) Verdict {
	p.m.events.WithLabelValues(typeLabel(e.Type), outcomeDead).Inc()
	p.m.dead.Inc()
	p.log.Warn("event parked in the dead-letter store", "event", e.ID, "type", e.Type, "stream", e.StreamID,
		"kind", d.ref.Kind, "id", d.ref.ID, "reason", d.reason)
	return Verdict{Action: Ack, Reason: "dead letter: " + d.reason}
}

// DeadLetterCount is how many dead letters wait in the store, as last
// counted (after each batch that parked some, and when idle).
func (p *Projector) DeadLetterCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.deadCount
}

// countDead counts the dead letters waiting; an operator's replay or drop
// in another process lowers it, so it is counted again when idle.
func (p *Projector) countDead(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	n, err := p.cfg.DeadLetters.Count(ctx)
	if err != nil {
		p.log.Warn("count dead letters", "err", err)
		return
	}
	p.mu.Lock()
	p.deadCount = n
	p.mu.Unlock()
}

// parked asks the dead-letter store which of refs are parked, leaving out
// the ones being replayed.
func (p *Projector) parked(ctx context.Context, refs []Ref, replaying map[Ref]bool) (map[Ref]bool, error) {
	if len(refs) == 0 {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	got, err := p.cfg.DeadLetters.Parked(ctx, refs)
	if err != nil {
		return nil, fmt.Errorf("read parked documents: %w", err)
	}
	for r := range replaying {
		delete(got, r)
	}
	return got, nil
}

// park stores dead letters durably; they are acked only after.
func (p *Projector) park(ctx context.Context, letters []Letter) error {
	pctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
	defer cancel()
	if err := p.cfg.DeadLetters.Park(pctx, letters); err != nil {
		return fmt.Errorf("park %d dead letters: %w", len(letters), err)
	}
	p.countDead(ctx)
	return nil
}

// reviewStats sums the reviews of products through the circuit breaker.
func (p *Projector) reviewStats(ctx context.Context, ids []string) (map[string]query.ReviewStats, error) {
	out, err := p.breaker.Execute(func() (any, error) {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		defer cancel()
		return p.cfg.Store.ReviewStats(ctx, ids)
	})
	if err != nil {
		return nil, fmt.Errorf("sum the reviews of %d products: %w", len(ids), err)
	}
	return out.(map[string]query.ReviewStats), nil
}

// dead dead-letters a message at once.
func (p *Projector) dead(eventType, reason string) Verdict {
	p.m.events.WithLabelValues(typeLabel(eventType), outcomeDead).Inc()
	p.m.dead.Inc()
	p.log.Warn("dead-lettering message", "type", eventType, "reason", reason)
	return Verdict{Action: DeadLetter, Reason: reason}
}

// poison counts a failed attempt at e and dead-letters it when it has had
// its attempts (or at once when it is malformed).
func (p *Projector) poison(e event.Envelope, err error, now bool) Verdict {
	reason := err.Error()
	p.mu.Lock()
	p.attempts[e.ID]++
	n := p.attempts[e.ID]
	if len(p.attempts) > 100_000 { // bounded memory; a lost count only means more attempts
		clear(p.attempts)
	}
	p.mu.Unlock()
	if now || n >= p.cfg.MaxAttempts {
		p.forget(e.ID)
		if !now {
			reason = fmt.Sprintf("%s (after %d attempts)", reason, n)
		}
		return p.dead(e.Type, reason)
	}
	p.m.events.WithLabelValues(typeLabel(e.Type), outcomeRetry).Inc()
	p.log.Warn("event cannot be applied yet; will retry", "event", e.ID, "stream", e.StreamID, "attempt", n, "err", err)
	return Verdict{Action: Retry, Reason: reason}
}

// typeLabel is t when this build knows the event type, else "unknown", so
// that made-up types cannot grow the metrics without bound.
func typeLabel(t string) string {
	if _, err := event.Decode(t, 1, []byte(`{}`)); errors.Is(err, event.ErrUnknownType) {
		return "unknown"
	}
	return t
}

func (p *Projector) forget(id string) {
	p.mu.Lock()
	delete(p.attempts, id)
	p.mu.Unlock()
}

// resume loads the watermark from the checkpoint, once.
func (p *Projector) resume(ctx context.Context) error {
	p.mu.Lock()
	done := p.wm != nil
	p.mu.Unlock()
	if done {
		return nil
	}
	bo := p.backoff()
	for {
		stored, err := p.get(ctx, []Ref{{Kind: KindCheckpoint, ID: CheckpointID}})
		if err == nil {
			var cp checkpoint
			if stored[0].Found {
				if err := json.Unmarshal(stored[0].Source, &cp); err != nil {
					return fmt.Errorf("projector checkpoint: %w", err)
				}
			}
			p.mu.Lock()
			p.wm = newWatermark(event.Cursor{Tx: cp.Tx, Position: cp.Position})
			p.mu.Unlock()
			p.log.Info("projector resumed", "tx", cp.Tx, "position", cp.Position)
			p.countDead(ctx)
			return nil
		}
		p.log.Warn("read projector checkpoint", "err", err)
		if err := sleep(ctx, bo); err != nil {
			return err
		}
	}
}

// checkpoint is the document in the checkpoints model.
type checkpoint struct {
	Tx        uint64    `json:"tx"`
	Position  int64     `json:"position"`
	UpdatedAt time.Time `json:"updatedAt"`
}

// saveCheckpoint writes the watermark when it moved; one try, since the
// checkpoint only shortens the replay after a restart.
func (p *Projector) saveCheckpoint(ctx context.Context) {
	p.mu.Lock()
	if !p.cpDirty || p.wm == nil {
		p.mu.Unlock()
		return
	}
	at := p.wm.at
	p.cpDirty = false
	p.mu.Unlock()
	doc, _ := json.Marshal(checkpoint{Tx: at.Tx, Position: at.Position, UpdatedAt: p.cfg.Now().UTC()})
	res, err := p.write(ctx, []Write{{Ref: Ref{Kind: KindCheckpoint, ID: CheckpointID}, Op: Overwrite, Doc: doc}})
	if err == nil && res[0].Err != nil {
		err = res[0].Err
	}
	if err != nil {
		p.log.Warn("write projector checkpoint", "err", err)
		p.mu.Lock()
		p.cpDirty = true
		p.mu.Unlock()
	}
}

// get and write call the store through the circuit breaker, each bounded
// by the request timeout.
func (p *Projector) get(ctx context.Context, refs []Ref) ([]Stored, error) {
	out, err := p.breaker.Execute(func() (any, error) {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		defer cancel()
		return p.cfg.Store.Get(ctx, refs)
	})
	if err != nil {
		return nil, fmt.Errorf("read %d documents: %w", len(refs), err)
	}
	stored := out.([]Stored)
	if len(stored) != len(refs) {
		return nil, fmt.Errorf("read %d documents: store returned %d", len(refs), len(stored))
	}
	return stored, nil
}

func (p *Projector) write(ctx context.Context, writes []Write) ([]WriteResult, error) {
	start := time.Now()
	out, err := p.breaker.Execute(func() (any, error) {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		defer cancel()
		return p.cfg.Store.Write(ctx, writes)
	})
	if err != nil {
		p.m.retries.WithLabelValues("unavailable").Add(float64(len(writes)))
		return nil, fmt.Errorf("write %d documents: %w", len(writes), err)
	}
	p.m.bulkItems.Observe(float64(len(writes)))
	p.m.bulkSeconds.Observe(time.Since(start).Seconds())
	res := out.([]WriteResult)
	if len(res) != len(writes) {
		return nil, fmt.Errorf("write %d documents: store answered for %d", len(writes), len(res))
	}
	return res, nil
}

func (p *Projector) backoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.Multiplier = 100*time.Millisecond, p.cfg.MaxBackoff, 2
	return b
}

func sleep(ctx context.Context, b backoff.BackOff) error {
	t := time.NewTimer(b.NextBackOff())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
