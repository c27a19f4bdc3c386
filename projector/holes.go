package projector

import (
	"context"

	"github.com/splitstream/splitstream/event"
)

// fillHole reads the log from the watermark when records have waited
// behind a hole for longer than HoleTimeout (at once for a lane projector's
// first hole since it resumed: its predecessor's checkpoint lags what it
// acked by up to CheckpointEvery), and applies what it finds
// (mostly duplicates): a predecessor that was acked before a restart lost
// its place in memory, or a message the broker never routed to the queue,
// would otherwise hold the watermark back for good. It stops before a
// record it cannot apply; that one is still in the queue, on its way to the
// dead-letter queue.
func (p *Projector) fillHole(ctx context.Context) {
	if p.cfg.EventLog == nil {
		return
	}
	var from event.Cursor // where a lane projector reads on past other lanes' records
	for range 20 {        // bounded work per call; the next call goes on
		p.mu.Lock()
		if p.wm == nil { // not resumed yet: no batch so far
			p.mu.Unlock()
			return
		}
		at, held, since, catchingUp, urgent := p.wm.at, len(p.wm.held), p.holeSince, p.catchingUp, p.resumeHole
		p.mu.Unlock()
		if !catchingUp && (held == 0 || !urgent && (since.IsZero() || p.cfg.Now().Sub(since) < p.cfg.HoleTimeout)) {
			return
		}
		if p.deposed() != nil {
			return
		}
		if from.Less(at) {
			from = at
		}
		lctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		raw, err := p.cfg.EventLog.Next(lctx, from, holeReadLimit)
		cancel()
		if err != nil {
			p.log.Warn("read the log to fill a hole in the watermark", "after", from, "err", err)
			return
		}
		if len(raw) == 0 {
			p.caughtUp()
			return
		}
		recs := p.laneRecords(raw, at)
		if len(recs) == 0 {
			from = raw[len(raw)-1].Cursor // only other lanes' records: read on
			continue
		}
		done, ok := p.applyFromLog(ctx, recs, at, held, catchingUp)
		if !ok {
			return
		}
		if len(done) < len(recs) || len(raw) < holeReadLimit {
			// The head of the log, or a record that cannot be applied
			// (its message dead-letters it): a catch-up ends here, and
			// what comes later arrives through the queue.
			p.caughtUp()
			return
		}
		from = raw[len(raw)-1].Cursor
	}
}

// applyFromLog applies records read from the log (lane records chained
// from at), up to the first that cannot be decoded or applied, and commits
// them; ok is false when nothing was applied or the commit failed.
func (p *Projector) applyFromLog(ctx context.Context, recs []event.Record, at event.Cursor, held int, catchingUp bool) (done []link, ok bool) {
	var items []item
	for i, r := range recs {
		pl, err := p.payload(r.Envelope)
		if err != nil {
			break
		}
		items = append(items, item{idx: i, rec: r, pl: pl})
	}
	if len(items) == 0 {
		p.caughtUp()
		return nil, false
	}
	p.log.Info("filling a hole in the watermark from the log", "after", at, "records", len(items), "held", held, "catching_up", catchingUp)
	b, err := p.project(ctx, items, nil)
	if err != nil {
		return nil, false
	}
	for _, it := range b.items {
		if _, bad := b.poisoned[it.idx]; bad {
			break
		}
		done = append(done, link{it.rec.Cursor, p.prevOf(it.rec)})
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
	return done, p.commit(ctx, b, done) == nil
}

// holeReadLimit is how many records one read of the log for a hole or a
// catch-up takes.
const holeReadLimit = 500

// caughtUp ends a catch-up: the log was read to its head.
func (p *Projector) caughtUp() {
	p.mu.Lock()
	p.catchingUp = false
	p.mu.Unlock()
}

// Idle is called by the consumer when no message has come for a while: it
// writes the checkpoint the last batches moved past (a lane projector
// writes it at most every CheckpointEvery while busy), retries a notice
// that failed after the last batch, and fills a hole in the watermark that
// has lasted too long. A projector that has not resumed yet resumes now
// and reads the log from its
// checkpoint to the head: a lane's previous holder may have applied and
// acked records after the checkpoint it left (its checkpoint write failed,
// or they waited behind a hole), and with nothing in the queue no record
// would ever show this one that its watermark is behind.
func (p *Projector) Idle(ctx context.Context) {
	p.mu.Lock()
	resumed := p.wm != nil
	p.mu.Unlock()
	if !resumed && p.cfg.EventLog != nil {
		if err := p.resume(ctx); err != nil {
			return
		}
		p.mu.Lock()
		p.catchingUp = true
		p.mu.Unlock()
	}
	p.mu.Lock()
	if p.wm != nil && len(p.wm.held) == 0 {
		// The queue had nothing for a while and nothing waits behind a
		// hole: everything published is applied.
		p.lastLag = 0
	}
	p.mu.Unlock()
	if p.saveCheckpoint(ctx) != nil {
		return
	}
	p.fillHole(ctx)
	p.countDead(ctx)
	p.mu.Lock()
	n := p.notice
	p.mu.Unlock()
	if n != nil {
		p.publish(ctx, p.notify(Notice{Watermark: n.Watermark, At: p.cfg.Now()}))
	}
}
