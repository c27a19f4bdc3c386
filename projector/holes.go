package projector

import (
	"context"

	"github.com/splitstream/splitstream/event"
)

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
	var from event.Cursor // where a lane projector reads on past other lanes' records
	for range 20 {        // bounded work per call; the next call goes on
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
		if p.deposed() != nil {
			return
		}
		if from.Less(at) {
			from = at
		}
		lctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		raw, err := p.cfg.EventLog.Next(lctx, from, 500)
		cancel()
		if err != nil {
			p.log.Warn("read the log to fill a hole in the watermark", "after", from, "err", err)
			return
		}
		recs := p.laneRecords(raw, at)
		if len(recs) == 0 && len(raw) > 0 {
			from = raw[len(raw)-1].Cursor // only other lanes' records: read on
			continue
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
		if p.commit(ctx, b, done) != nil || len(done) < len(recs) {
			return
		}
		from = raw[len(raw)-1].Cursor
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
