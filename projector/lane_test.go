package projector

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// laneMsgs stamps records as the relay does for one lane of lanes.
func laneMsgs(recs []event.Record, lane, lanes int) []Message {
	var out []Message
	prev := event.Cursor{}
	for _, r := range recs {
		if query.LaneOfEnvelope(r.Envelope, lanes) != lane {
			continue
		}
		r.Lanes, r.Lane, r.LanePrev = lanes, lane, prev
		prev = r.Cursor
		out = append(out, Message{Record: r, Chained: true})
	}
	return out
}

// A lane's projector chains its watermark by lane predecessor and writes
// lane-<n> with its epoch; a newer holder's epoch deposes it (its batch is
// refused, the checkpoint stays the newer one's), and so does a lease that
// is no longer safe.
func TestLaneProjectorIsFencedByEpoch(t *testing.T) {
	f := newFixture(t, nil)
	var recs []event.Record
	for _, id := range []string{"p1", "p2", "p3", "p4", "p5", "p6"} {
		recs = append(recs, f.log.add(t, id, created(id)))
	}
	const lanes = 2
	lane := query.LaneOfEnvelope(recs[0].Envelope, lanes)
	msgs := laneMsgs(recs, lane, lanes)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	old, err := f.p.ForLane(lane, lanes, 1, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := old.Handle(ctx, msgs[:1]); err != nil {
		t.Fatal(err)
	}
	if old.Watermark() != msgs[0].Record.Cursor {
		t.Fatalf("lane watermark %v, want %v", old.Watermark(), msgs[0].Record.Cursor)
	}
	var safe atomic.Bool
	safe.Store(true)
	next, err := f.p.ForLane(lane, lanes, 2, safe.Load)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := next.Handle(ctx, msgs[1:2]); err != nil {
		t.Fatal(err)
	}
	var cp query.Checkpoint
	f.store.decode(t, Ref{query.Checkpoints.Name, query.LaneCheckpointID(lane)}, &cp)
	if cp.Epoch != 2 || cp.Position != msgs[1].Record.Cursor.Position {
		t.Fatalf("checkpoint %+v, want epoch 2 at %v", cp, msgs[1].Record.Cursor)
	}
	if _, err := old.Handle(ctx, msgs[1:]); !errors.Is(err, ErrDeposed) {
		t.Fatalf("deposed holder's batch: %v, want ErrDeposed", err)
	}
	f.store.decode(t, Ref{query.Checkpoints.Name, query.LaneCheckpointID(lane)}, &cp)
	if cp.Epoch != 2 {
		t.Fatalf("the deposed holder wrote the checkpoint: %+v", cp)
	}
	safe.Store(false)
	if _, err := next.Handle(ctx, msgs[2:]); !errors.Is(err, ErrDeposed) {
		t.Fatalf("batch under an unsafe lease: %v, want ErrDeposed", err)
	}
}

// A lane's projector fills a hole from the log with its own lane's
// records only, chained by itself.
func TestLaneProjectorFillsItsHole(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	f := newFixture(t, func(c *Config) {
		c.HoleTimeout = time.Second
		c.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	var recs []event.Record
	for i := range 20 {
		recs = append(recs, f.log.add(t, "p"+string(rune('a'+i)), created("x")))
	}
	f.p.cfg.EventLog = memLog{f.log}
	const lanes = 3
	lane := query.LaneOfEnvelope(recs[0].Envelope, lanes)
	msgs := laneMsgs(recs, lane, lanes)
	if len(msgs) < 3 {
		t.Skipf("only %d records in lane %d", len(msgs), lane)
	}
	c, err := f.p.ForLane(lane, lanes, 1, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	last := msgs[len(msgs)-1]
	if _, err := c.Handle(ctx, []Message{last}); err != nil { // its predecessors never came
		t.Fatal(err)
	}
	clock.Add(int64(2 * time.Second))
	c.Idle(ctx)
	if c.Watermark() != last.Record.Cursor {
		t.Fatalf("lane watermark %v after filling, want %v", c.Watermark(), last.Record.Cursor)
	}
}

// lagFixture is a lane whose holder (epoch 1) applied and acked every
// record of msgs[:acked] and then died with its checkpoint at msgs[0]: it
// writes the checkpoint at most every CheckpointEvery while batches keep
// coming, and the clock stands still.
func lagFixture(t *testing.T, acked int) (*fixture, []Message, int, *Projector) {
	t.Helper()
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	f := newFixture(t, func(c *Config) { c.Now = func() time.Time { return now } })
	var recs []event.Record
	for i := range 20 {
		recs = append(recs, f.log.add(t, "p"+string(rune('a'+i)), created("x")))
	}
	f.p.cfg.EventLog = memLog{f.log}
	const lanes = 3
	lane := query.LaneOfEnvelope(recs[0].Envelope, lanes)
	msgs := laneMsgs(recs, lane, lanes)
	if len(msgs) < 4 || acked > len(msgs) {
		t.Fatalf("only %d records in lane %d", len(msgs), lane)
	}
	if acked < 0 {
		acked = len(msgs)
	}
	ctx := context.Background()
	old, err := f.p.ForLane(lane, lanes, 1, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	for _, batch := range [][]Message{msgs[:1], msgs[1:acked]} {
		if _, err := old.Handle(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	if old.Watermark() != msgs[acked-1].Record.Cursor {
		t.Fatalf("old holder's watermark %v, want %v", old.Watermark(), msgs[acked-1].Record.Cursor)
	}
	var cp query.Checkpoint
	f.store.decode(t, Ref{query.Checkpoints.Name, query.LaneCheckpointID(lane)}, &cp)
	if cp.Epoch != 1 || cp.Position != msgs[0].Record.Cursor.Position {
		t.Fatalf("old holder's checkpoint %+v, want epoch 1 at %v (written once per CheckpointEvery)", cp, msgs[0].Record.Cursor)
	}
	return f, msgs, lane, old
}

// A lane claimed while its queue is empty catches up from the log: its
// previous holder applied and acked records its checkpoint does not cover,
// and no message will come to show the new holder that its watermark is
// behind.
func TestLaneClaimedIdleCatchesUpFromTheLog(t *testing.T) {
	f, msgs, lane, _ := lagFixture(t, -1)
	ctx := context.Background()
	next, err := f.p.ForLane(lane, 3, 2, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	next.Idle(ctx)
	last := msgs[len(msgs)-1].Record.Cursor
	if next.Watermark() != last {
		t.Fatalf("idle new holder's watermark %v, want %v", next.Watermark(), last)
	}
	var cp query.Checkpoint
	f.store.decode(t, Ref{query.Checkpoints.Name, query.LaneCheckpointID(lane)}, &cp)
	if cp.Epoch != 2 || cp.Position != last.Position {
		t.Fatalf("checkpoint %+v, want epoch 2 at %v", cp, last)
	}
}

// A lane's next holder whose first batch starts past its checkpoint reads
// the records between from the log at once, not after HoleTimeout: the
// hole is what its predecessor acked past the checkpoint it left.
func TestLaneSuccessorReadsWhatTheCheckpointLagsAtOnce(t *testing.T) {
	f, msgs, lane, _ := lagFixture(t, 3)
	next, err := f.p.ForLane(lane, 3, 2, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := next.Handle(context.Background(), msgs[3:]); err != nil { // what the queue still holds
		t.Fatal(err)
	}
	last := msgs[len(msgs)-1].Record.Cursor
	if next.Watermark() != last {
		t.Fatalf("new holder's watermark %v after its first batch, want %v", next.Watermark(), last)
	}
	for _, m := range msgs {
		if p := f.store.product(t, m.Record.Envelope.StreamID); p.Version != 1 {
			t.Fatalf("product %s: %+v, want version 1", m.Record.Envelope.StreamID, p)
		}
	}
}

// A lane projector that stops writes the checkpoint its last batches
// moved past, so its lane's next holder starts there.
func TestLaneFlushWritesTheLaggingCheckpoint(t *testing.T) {
	f, msgs, lane, held := lagFixture(t, 3)
	ctx := context.Background()
	if _, err := held.Handle(ctx, msgs[3:]); err != nil {
		t.Fatal(err)
	}
	var cp query.Checkpoint
	f.store.decode(t, Ref{query.Checkpoints.Name, query.LaneCheckpointID(lane)}, &cp)
	if cp.Position != msgs[0].Record.Cursor.Position {
		t.Fatalf("checkpoint before Flush %+v, want it still at %v", cp, msgs[0].Record.Cursor)
	}
	if err := held.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	f.store.decode(t, Ref{query.Checkpoints.Name, query.LaneCheckpointID(lane)}, &cp)
	if last := msgs[len(msgs)-1].Record.Cursor; cp.Position != last.Position {
		t.Fatalf("checkpoint after Flush %+v, want %v", cp, last)
	}
}

// The parent of lane projectors reports their progress in its metrics
// (the lag and stall alerts read them): records held back in a lane and
// the lane's last write show on the parent's gauges.
func TestLaneProgressShowsOnTheParentsMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	f := newFixture(t, func(c *Config) { c.Registerer = reg })
	var recs []event.Record
	for i := range 12 {
		recs = append(recs, f.log.add(t, "p"+string(rune('a'+i)), created("x")))
	}
	const lanes = 2
	lane := query.LaneOfEnvelope(recs[0].Envelope, lanes)
	msgs := laneMsgs(recs, lane, lanes)
	if len(msgs) < 3 {
		t.Fatalf("only %d records in lane %d", len(msgs), lane)
	}
	c, err := f.p.ForLane(lane, lanes, 1, func() bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Handle(context.Background(), msgs[1:]); err != nil { // the first is missing: the rest wait behind it
		t.Fatal(err)
	}
	gauge := func(name string) float64 {
		mfs, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == name {
				return mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		t.Fatalf("no metric %s", name)
		return 0
	}
	if held := gauge("splitstream_projector_held_records"); held != float64(len(msgs)-1) {
		t.Errorf("parent's held records %v, want %d", held, len(msgs)-1)
	}
	if w := gauge("splitstream_projector_last_write_timestamp_seconds"); w == 0 {
		t.Error("parent's last write is 0 after the lane wrote")
	}
	if lag := gauge("splitstream_projector_lag_positions"); lag <= 0 {
		t.Errorf("parent's lag in positions %v, want > 0 while the lane's records wait", lag)
	}
}

// A batch's notice goes out before its checkpoint is written, with and
// without lanes: readers waiting for the batch do not wait for the write
// of the projector's restart point.
func TestNoticeGoesOutBeforeTheCheckpointWrite(t *testing.T) {
	for _, lanes := range []int{0, 2} {
		f := newFixture(t, nil)
		rec := f.log.add(t, "p1", created("p1"))
		var before []int // notices out when each checkpoint write began
		f.store.failWrite = func(_ int, ws []Write) ([]*WriteResult, error) {
			if len(ws) == 1 && ws[0].Ref.Kind == query.Checkpoints.Name {
				f.notices.mu.Lock()
				before = append(before, len(f.notices.got))
				f.notices.mu.Unlock()
			}
			return nil, nil
		}
		h, msgs := f.p, []Message{{Record: rec, Chained: true}}
		if lanes > 0 {
			lane := query.LaneOfEnvelope(rec.Envelope, lanes)
			msgs = laneMsgs([]event.Record{rec}, lane, lanes)
			var err error
			if h, err = f.p.ForLane(lane, lanes, 1, func() bool { return true }); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := h.Handle(context.Background(), msgs); err != nil {
			t.Fatal(err)
		}
		// A lane's first write of its checkpoint is the claim, on resuming.
		if len(before) == 0 || before[len(before)-1] != 1 {
			t.Fatalf("%d lanes: notices out at each checkpoint write %v, want the batch's one after its notice", lanes, before)
		}
	}
}
