package relay

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/splitstream/splitstream/event"
)

// timedSource records when each Next began and how many records it found.
type timedSource struct {
	*memSource
	mu    sync.Mutex
	reads []timedRead
}

type timedRead struct {
	at    time.Time
	found int
}

func (s *timedSource) Next(ctx context.Context, after event.Cursor, limit int) ([]event.Record, error) {
	at := time.Now()
	recs, err := s.memSource.Next(ctx, after, limit)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reads = append(s.reads, timedRead{at: at, found: len(recs)})
	return recs, err
}

// newTimedFixture is a fixture whose relay reads through a timedSource.
// The backlog gauge's reads are kept out of it (an interval of an hour).
func newTimedFixture(t *testing.T, cfg Config) (*fixture, *timedSource) {
	t.Helper()
	var src *timedSource
	cfg.BacklogInterval = time.Hour
	f := newFixtureReading(t, cfg, func(m *memSource) Source {
		src = &timedSource{memSource: m}
		return src
	})
	return f, src
}

// TestRelayWindowsASteadyStream: under a stream of one commit a
// millisecond, a read that found some records but not a full batch is
// followed by the next read no sooner than BatchWindow after it began, so
// the stream goes out in batches of what came in a window; every event is
// still published once, in order.
func TestRelayWindowsASteadyStream(t *testing.T) {
	const window = 20 * time.Millisecond
	f, src := newTimedFixture(t, Config{BatchSize: 1000, BatchWindow: window})
	f.src.append(1)
	f.run(t)
	for range 150 {
		time.Sleep(time.Millisecond)
		f.src.append(1)
	}
	f.allPublishedOnce(t)
	src.mu.Lock()
	defer src.mu.Unlock()
	// Each read after a partial batch begins a window after the read
	// before it, so those reads fit in the span of all reads at most once
	// a window. A late timer only moves a read later; the one slack is
	// the first read's own start, which the bound's +2 covers. Reading
	// without the window, the relay reads again as soon as it has
	// published: about once per commit.
	windowed := 0
	for i := 1; i < len(src.reads); i++ {
		if n := src.reads[i-1].found; n > 0 && n < 1000 {
			windowed++
		}
	}
	if windowed == 0 {
		t.Fatalf("no read found part of a batch in %d reads", len(src.reads))
	}
	span := src.reads[len(src.reads)-1].at.Sub(src.reads[0].at)
	if most := int(span/window) + 2; windowed > most {
		t.Errorf("%d reads followed a partial batch within %v: at most %d with a window of %v", windowed, span, most, window)
	}
	f.pub.mu.Lock()
	defer f.pub.mu.Unlock()
	var prev event.Cursor
	for _, b := range f.pub.batches {
		for _, rec := range b {
			if rec.Prev != prev {
				t.Errorf("%v published after %v, its Prev is %v", rec.Cursor, prev, rec.Prev)
			}
			prev = rec.Cursor
		}
	}
}

// TestRelayDrainsABacklogPastTheWindow: full batches and a commit after a
// read that found nothing are read at once, even with a window of an hour.
func TestRelayDrainsABacklogPastTheWindow(t *testing.T) {
	f, _ := newTimedFixture(t, Config{BatchSize: 10, BatchWindow: time.Hour})
	f.src.append(100)
	f.run(t)
	f.allPublishedOnce(t)
	f.src.append(1) // read by the next poll: the read before found nothing
	f.allPublishedOnce(t)
}

func TestWindowLeft(t *testing.T) {
	r := &Relay{cfg: Config{BatchSize: 10, BatchWindow: 10 * time.Millisecond}}
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		found int
		after time.Duration
		want  time.Duration
	}{
		{found: 0, after: 0, want: 0},                                       // nothing found: at once
		{found: 10, after: time.Millisecond, want: 0},                       // a full batch: at once
		{found: 3, after: 4 * time.Millisecond, want: 6 * time.Millisecond}, // the rest of the window
		{found: 9, after: 0, want: 10 * time.Millisecond},                   // all of it
		{found: 1, after: 12 * time.Millisecond, want: 0},                   // window over
		{found: 1, after: -time.Millisecond, want: 11 * time.Millisecond},   // a clock behind the read
	} {
		if got := r.windowLeft(at, c.found, at.Add(c.after)); got != c.want {
			t.Errorf("windowLeft(found %d, %v after) = %v, want %v", c.found, c.after, got, c.want)
		}
	}
	r.cfg.BatchWindow = -1
	if got := r.windowLeft(at, 3, at); got != 0 {
		t.Errorf("no window: %v, want 0", got)
	}
}
