// Package projector owns turning events into read-model documents: it
// folds each batch of records, in relay order, into the documents of the
// kinds package query declares (query.Kinds: what each kind's documents
// are, how they fold, which events find them), with no per-kind code of
// its own; writes them with optimistic concurrency, keeps the applied
// watermark without holes, announces every durable batch with a
// "projected" notice, and rebuilds read models from the log (Rebuild).
//
// It defines the small interfaces it consumes (Store, History, Log,
// DeadLetters, NoticePublisher, RebuildLog, Indices) and imports no
// driver: elastic, postgres and rabbitmq implement them, and rabbitmq's
// consumer feeds it batches.
package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/splitstream/splitstream/event"
)

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
	// Payload, when set, is Record's payload already decoded (a rebuild
	// decodes it to find the record's lane): Handle does not decode it
	// again.
	Payload event.Payload
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
	cpDirty      bool      // the watermark moved past the checkpoint written
	cpWritten    time.Time // when the checkpoint was last written
	// resumeHole says a lane projector resumed and has not yet seen its
	// watermark without a hole: a hole then is what its predecessor
	// applied and acked past the checkpoint it left, and is read from the
	// log at once instead of after HoleTimeout.
	resumeHole bool
	holeSince  time.Time // since when records wait behind a hole, without progress
	// catchingUp says the log past the watermark is to be read to its head
	// while idle: set when the projector resumed with no message to
	// handle (a lane claimed with its queue empty), whose checkpoint may
	// lag what its previous holder applied and acked.
	catchingUp bool
	deadCount  int // dead letters waiting, as last counted
	// streamOf is the stream type an event's payload belongs to
	// (event.StreamTypeOf); a test swaps it to feed a stream type the
	// projector has no read model for.
	streamOf func(event.Payload) string
	// lane is set on a lane's projector (ForLane), children on the
	// projector lanes were made from.
	lane     *laneState
	children lanesOf
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

// payloadOf is m's payload: the one it carries, else decoded from its
// envelope; either way checked against the envelope's stream type.
func (p *Projector) payloadOf(m Message) (event.Payload, error) {
	e := m.Record.Envelope
	if m.Payload == nil {
		return p.payload(e)
	}
	if st := p.streamOf(m.Payload); st != e.StreamType {
		return m.Payload, fmt.Errorf("%w: %s is a %s event, the envelope says %q", event.ErrMalformed, e.Type, st, e.StreamType)
	}
	return m.Payload, nil
}

// New returns a projector; Handle resumes from the stored checkpoint. It
// refuses a nil store, history, dead-letter store, registerer or logger.
func New(cfg Config) (*Projector, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	p := &Projector{cfg: cfg, log: cfg.Log, attempts: map[string]int{}, consumingAt: cfg.Now(), streamOf: event.StreamTypeOf}
	p.breaker = p.newBreaker()
	if p.m, err = newMetrics(cfg.Registerer, p); err != nil {
		return nil, err
	}
	return p, nil
}

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
	if err := p.deposed(); err != nil {
		return nil, err
	}
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
		pl, err := p.payloadOf(m)
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
			done = append(done, link{m.Record.Cursor, p.prevOf(m.Record)})
		}
	}
	if err := p.commit(ctx, b, done); err != nil {
		return nil, err
	}
	p.m.batchSecs.Observe(p.cfg.Now().Sub(start).Seconds())
	p.fillHole(ctx)
	return verdicts, nil
}

// link is a record's place in relay order.
type link struct{ cur, prev event.Cursor }

// commit records a durable batch: the watermark passes the records done,
// a notice announces the batch, and the checkpoint follows. Its one
// error is ErrDeposed: a lane projector that lost its lease.
func (p *Projector) commit(ctx context.Context, b *batch, done []link) error {
	now := p.cfg.Now()
	p.mu.Lock()
	moved := false
	for _, l := range done {
		moved = p.wm.done(l.cur, l.prev) || moved
	}
	switch {
	case len(p.wm.held) == 0:
		p.holeSince, p.resumeHole = time.Time{}, false
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
	due := p.lane == nil || p.cfg.EventLog == nil || now.Sub(p.cpWritten) >= p.cfg.CheckpointEvery
	p.mu.Unlock()

	// The notice goes first: what it announces is durable already, and
	// readers (consistentWith, subscriptions, the read cache) need not wait
	// for the checkpoint's write, which is the projector's own restart
	// point. A lane projector announces under the lease it checked before
	// the batch; its checkpoint write is fenced by the epoch.
	n := p.notify(Notice{Changes: b.changes(), Watermark: wm, At: now})
	if len(n.Changes) > 0 || moved {
		p.publish(ctx, n)
	}
	if due {
		return p.saveCheckpoint(ctx)
	}
	return nil
}

// notify names a lane projector's lane in n.
func (p *Projector) notify(n Notice) Notice {
	if p.lane != nil {
		n.Lanes, n.Lane = p.lane.lanes, p.lane.n
	}
	return n
}
