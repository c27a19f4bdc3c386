package query

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/splitstream/splitstream/event"
)

// Tracker knows how far the projector has applied the event log in relay
// order, with no holes: from the projector's notices as they arrive, and
// from its checkpoint document when notices are late or were missed.
type Tracker struct {
	poll     func(ctx context.Context) (event.Cursor, error)
	interval time.Duration

	mu      sync.Mutex
	mark    event.Cursor
	at      time.Time // when mark last advanced
	changed chan struct{}
}

// NewTracker starts at the zero cursor; poll reads the projector's
// checkpoint, every interval while someone waits.
// It refuses a nil poll and an interval below zero or zero.
func NewTracker(poll func(ctx context.Context) (event.Cursor, error), interval time.Duration) (*Tracker, error) {
	if poll == nil {
		return nil, errors.New("query: nil checkpoint poll for the tracker")
	}
	if interval <= 0 {
		return nil, errors.New("query: tracker poll interval must be positive")
	}
	return &Tracker{poll: poll, interval: interval, changed: make(chan struct{})}, nil
}

// Advance moves the mark forward to c; an older c is ignored.
func (t *Tracker) Advance(c event.Cursor) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !t.mark.Less(c) {
		return
	}
	t.mark, t.at = c, time.Now()
	close(t.changed)
	t.changed = make(chan struct{})
}

// Mark returns the applied cursor and when it last advanced.
func (t *Tracker) Mark() (event.Cursor, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.mark, t.at
}

// WaitFor returns when everything up to c has been applied, or ctx ends.
func (t *Tracker) WaitFor(ctx context.Context, c event.Cursor) error {
	polled := false
	for {
		t.mu.Lock()
		done, changed := !t.mark.Less(c), t.changed
		t.mu.Unlock()
		if done {
			return nil
		}
		if !polled && t.poll != nil {
			// The first wait also asks the checkpoint: this instance may
			// have started after the notice that covered c.
			polled = true
			if m, err := t.poll(ctx); err == nil {
				t.Advance(m)
				continue
			}
		}
		timer := time.NewTimer(t.interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-changed:
			timer.Stop()
		case <-timer.C:
			if t.poll != nil {
				if m, err := t.poll(ctx); err == nil {
					t.Advance(m)
				}
			}
		}
	}
}
