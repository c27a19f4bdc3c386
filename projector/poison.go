package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/splitstream/splitstream/event"
)

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
