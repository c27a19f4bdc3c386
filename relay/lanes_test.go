package relay

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/event"
)

// laneSource is a memSource that keeps the lanes' cursors with its
// checkpoint.
type laneSource struct {
	*memSource
	lanes []event.Cursor
}

func (s *laneSource) LaneCheckpoint(context.Context, string) ([]event.Cursor, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.lanes), nil
}

func (s *laneSource) SaveLanes(ctx context.Context, name string, c event.Cursor, lanes []event.Cursor) error {
	if err := s.Save(ctx, name, c); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lanes = slices.Clone(lanes)
	return nil
}

// Every record carries its lane and the cursor of the record before it
// in that lane, also across a restart of the relay (from the lanes saved
// with the checkpoint); a source that cannot save lanes is refused.
func TestRelayStampsLanes(t *testing.T) {
	pub := &memPublisher{count: map[event.Cursor]int{}}
	src := &laneSource{memSource: &memSource{published: pub.published}}
	laneOf := func(e event.Envelope) int { return int(e.Position % 3) }
	cfg := Config{BatchSize: 4, PollInterval: time.Millisecond, MaxBackoff: 5 * time.Millisecond, BacklogInterval: 5 * time.Millisecond,
		Lanes: Lanes{Count: 3, Of: laneOf}}
	if _, err := New(src.memSource, pub, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry()); err == nil {
		t.Fatal("a source without lane checkpoints accepted")
	}
	runOnce := func(n int) {
		t.Helper()
		r, err := New(src, pub, cfg, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { _ = r.Run(ctx); close(done) }()
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			src.mu.Lock()
			c := src.checkpoint
			src.mu.Unlock()
			if c.Position == int64(n) || time.Now().After(deadline) {
				break
			}
		}
		cancel()
		<-done
	}
	src.append(10)
	runOnce(10)
	src.append(7) // a new relay resumes from the saved lanes
	runOnce(17)

	last := make([]event.Cursor, 3)
	seen := 0
	for _, b := range pub.batches {
		for _, r := range b {
			if r.Lanes != 3 || r.Lane != laneOf(r.Envelope) {
				t.Fatalf("%v: lane %d of %d", r.Cursor, r.Lane, r.Lanes)
			}
			if r.LanePrev != last[r.Lane] {
				t.Fatalf("%v in lane %d: prev %v, want %v", r.Cursor, r.Lane, r.LanePrev, last[r.Lane])
			}
			last[r.Lane] = r.Cursor
			seen++
		}
	}
	if seen != 17 {
		t.Fatalf("%d records published, want 17", seen)
	}
}
