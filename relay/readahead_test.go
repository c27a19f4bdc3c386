package relay

import (
	"context"
	"errors"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/event"
)

// watchedSource tells, for every Next, the cursor it reads after.
type watchedSource struct {
	*memSource
	reads chan event.Cursor
}

func (s watchedSource) Next(ctx context.Context, after event.Cursor, limit int) ([]event.Record, error) {
	select {
	case s.reads <- after:
	default:
	}
	return s.memSource.Next(ctx, after, limit)
}

// waitingPublisher holds every Publish until the source was asked for the
// batch after it, so it proves the relay reads the next batch while one is
// being published; its first publish fails once.
type waitingPublisher struct {
	*memPublisher
	reads  chan event.Cursor
	failed bool
	t      *testing.T
}

func (p *waitingPublisher) Publish(ctx context.Context, recs []event.Record) error {
	last := recs[len(recs)-1].Cursor
	// A bound for a relay that never reads ahead, not a speed goal.
	deadline := time.After(10 * time.Second)
	for {
		select {
		case after := <-p.reads:
			if after != last {
				continue
			}
		case <-deadline:
			p.t.Errorf("no read after %v while it was being published", last)
			return errors.New("no read ahead")
		case <-ctx.Done():
			return ctx.Err()
		}
		break
	}
	if !p.failed {
		p.failed = true
		return errors.New("broker away")
	}
	return p.memPublisher.Publish(ctx, recs)
}

// TestRelayReadsAheadWhilePublishing: each batch's successor is read while
// it is published, and a publish that fails drops what was read ahead of it:
// every event still goes out exactly once, in order, and the checkpoint
// covers only what was published.
func TestRelayReadsAheadWhilePublishing(t *testing.T) {
	reads := make(chan event.Cursor, 64)
	mem := &memPublisher{count: map[event.Cursor]int{}}
	pub := &waitingPublisher{memPublisher: mem, reads: reads, t: t}
	src := watchedSource{memSource: &memSource{published: mem.published}, reads: reads}
	src.append(10)
	cfg := Config{BatchSize: 3, PollInterval: time.Millisecond, MaxBackoff: 5 * time.Millisecond, BacklogInterval: time.Hour}
	r, err := New(src, pub, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{src: src.memSource, pub: mem, r: r}
	f.run(t)
	f.allPublishedOnce(t)
	mem.mu.Lock()
	defer mem.mu.Unlock()
	var prev event.Cursor
	for _, b := range mem.batches {
		for _, rec := range b {
			if rec.Prev != prev {
				t.Errorf("%v published after %v, its Prev is %v", rec.Cursor, prev, rec.Prev)
			}
			prev = rec.Cursor
		}
	}
}
