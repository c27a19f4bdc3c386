package projector

import (
	"fmt"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/splitstream/splitstream/event"
)

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
	for _, c := range p.children.list() {
		if err := c.Healthy(maxStall); err != nil {
			return fmt.Errorf("lane %d: %w", c.lane.n, err)
		}
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

// progress is the status the metrics report: a projector's own or, for
// the parent of lane projectors, theirs together (the worst lag of any
// lane, the records held back in all of them, the latest write, the
// furthest lane watermark), so that the lag and stall alerts see lanes.
func (p *Projector) progress() status {
	s := p.status()
	for _, c := range p.children.list() {
		cs := c.status()
		s.lagSeconds = max(s.lagSeconds, cs.lagSeconds)
		s.lagPositions = max(s.lagPositions, cs.lagPositions)
		s.held += cs.held
		if cs.lastWrite.After(s.lastWrite) {
			s.lastWrite = cs.lastWrite
		}
		if s.watermark.Less(cs.watermark) {
			s.watermark = cs.watermark
		}
	}
	return s
}

func (p *Projector) breakerOpen() bool { return p.breaker.State() != gobreaker.StateClosed }
