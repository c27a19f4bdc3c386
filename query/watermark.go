package query

import (
	"context"
	"errors"
	"fmt"
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

	// ahead, when set, is told before a checkpoint poll moves the mark:
	// the notices of the writes in between have not been handled yet.
	ahead func()

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
				t.polled(m)
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
					t.polled(m)
				}
			}
		}
	}
}

// polled advances the mark to a cursor read from the checkpoint, telling
// ahead first when that moves it.
func (t *Tracker) polled(m event.Cursor) {
	if t.ahead != nil {
		t.mu.Lock()
		moves := t.mark.Less(m)
		t.mu.Unlock()
		if moves {
			t.ahead()
		}
	}
	t.Advance(m)
}

// MaxLanes bounds the lanes a token may name here (a lane is a byte in
// the token; 255 is the whole log).
const MaxLanes = 255

// Marks are the watermarks a read may wait for: the whole log's (a
// projector without lanes) and each lane's, a Tracker each, made on first
// use and polled from that lane's checkpoint (query.LaneCheckpointID).
type Marks struct {
	poll     func(ctx context.Context, lane int) (event.Cursor, error)
	interval time.Duration
	ahead    func()

	mu    sync.Mutex
	marks map[int]*Tracker // by lane; event.WholeLog for the whole log
}

// NewMarks returns marks whose trackers poll the checkpoint of a lane (or
// of the whole log, for event.WholeLog) with poll, every interval while
// someone waits. ahead, when not nil, is called before a poll moves a
// watermark past what the notices said (the read cache empties itself).
func NewMarks(poll func(ctx context.Context, lane int) (event.Cursor, error), interval time.Duration, ahead func()) (*Marks, error) {
	if poll == nil {
		return nil, errors.New("query: nil lane checkpoint poll for the marks")
	}
	if interval <= 0 {
		return nil, errors.New("query: marks poll interval must be positive")
	}
	return &Marks{poll: poll, interval: interval, ahead: ahead, marks: map[int]*Tracker{}}, nil
}

// Tracker returns lane's tracker (event.WholeLog: the whole log's); nil
// for a lane beyond MaxLanes.
func (m *Marks) Tracker(lane int) *Tracker {
	if lane != event.WholeLog && (lane < 0 || lane >= MaxLanes) {
		return nil
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.marks[lane]
	if !ok {
		// Both were checked by NewMarks, so the tracker is always made.
		t = &Tracker{poll: func(ctx context.Context) (event.Cursor, error) { return m.poll(ctx, lane) },
			interval: m.interval, ahead: m.ahead, changed: make(chan struct{})}
		m.marks[lane] = t
	}
	return t
}

// Advance moves lane's watermark forward to c.
func (m *Marks) Advance(lane int, c event.Cursor) {
	if t := m.Tracker(lane); t != nil {
		t.Advance(c)
	}
}

// WaitFor returns once every point is applied, or ctx ends.
func (m *Marks) WaitFor(ctx context.Context, points []event.ReadPoint) error {
	for _, p := range points {
		t := m.Tracker(p.Lane)
		if t == nil {
			return fmt.Errorf("lane %d: no such lane", p.Lane)
		}
		if err := t.WaitFor(ctx, p.Cursor); err != nil {
			return err
		}
	}
	return nil
}

// Newest returns the furthest position any watermark has reached and when
// it last advanced, for the freshness extension.
func (m *Marks) Newest() (event.Cursor, time.Time) {
	m.mu.Lock()
	ts := make([]*Tracker, 0, len(m.marks))
	for _, t := range m.marks {
		ts = append(ts, t)
	}
	m.mu.Unlock()
	var mark event.Cursor
	var at time.Time
	for _, t := range ts {
		c, a := t.Mark()
		if mark.Less(c) {
			mark = c
		}
		if a.After(at) {
			at = a
		}
	}
	return mark, at
}
