package projector

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// laneQueue is how many batches the reader may queue for one lane ahead
// of its writer. A lane's batch is its share of one read of Batch
// records, so with the read being dispatched a rebuild holds at most
// (lanes × laneQueue + 1) × Batch records (a lane may hold a whole read).
const laneQueue = 2

// firstRead bounds the first read of a replay.
const firstRead = 1000

// LaneProgress is one lane's share of a rebuild, for progress reports.
type LaneProgress struct {
	Lane   int
	Events int64   // events the lane's writer has applied
	Rate   float64 // events per second since the last report
	At     int64   // relay position of the lane's last applied event
}

// laneWriter is one lane's projector: it folds and writes the lane's
// events, in relay order, apart from the other lanes'. A lane holds whole
// document families (query.LaneOfEvent), so no document is written by two
// writers.
type laneWriter struct {
	lane int
	p    *Projector
	memo *memoStore // the lane's documents while it fills the fresh indices
	// prev is the cursor of the last record sent to the lane: the reader
	// chains each record to it, so the lane's watermark has no holes.
	prev   event.Cursor
	events atomic.Int64
	at     atomic.Int64
}

// newLanes makes one writer per lane on store, each with its metrics
// labelled by its lane.
func (r *rebuildRun) newLanes(store Store) error {
	r.lanes = make([]*laneWriter, r.Lanes)
	for l := range r.lanes {
		reg := prometheus.WrapRegistererWith(prometheus.Labels{"lane": strconv.Itoa(l)}, r.Registerer)
		memo := newMemoStore(store, r.target, r.Memory/int64(len(r.lanes)))
		p, err := New(Config{Store: memo, History: r.History, DeadLetters: NewMemoryDeadLetters(),
			Registerer: reg, Log: r.Logger.With("lane", l)})
		if err != nil {
			return fmt.Errorf("lane %d: %w", l, err)
		}
		r.lanes[l] = &laneWriter{lane: l, p: p, memo: memo}
	}
	return nil
}

// forget stops every lane's memo (the writers are idle between replays).
func (r *rebuildRun) forget() {
	for _, w := range r.lanes {
		if w.memo.active() {
			r.Logger.Debug("rebuild: lane's documents dropped from memory", "lane", w.lane, "bytes", w.memo.used)
		}
		w.memo.stop()
	}
}

// replay applies the log from the cursor to its head: one reader reads it
// once and hands each record to its lane's queue; each lane's writer
// applies its batches. The first failure stops every lane and is returned.
func (r *rebuildRun) replay(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	queues := make([]chan []Message, len(r.lanes))
	for l, w := range r.lanes {
		queues[l] = make(chan []Message, laneQueue)
		g.Go(func() error { return r.write(gctx, w, queues[l]) })
	}
	g.Go(func() error { return r.read(gctx, queues) })
	stopReport := r.reportLanes(ctx)
	err := g.Wait()
	stopReport()
	if err != nil {
		return err
	}
	return ctx.Err()
}

// read reads the log from the cursor to its head and dispatches its
// records to the lanes' queues, each read's share per lane at a time, and
// closes the queues at the end (or at the first failure).
func (r *rebuildRun) read(ctx context.Context, queues []chan []Message) error {
	defer func() {
		for _, q := range queues {
			close(q)
		}
	}()
	pending := make([][]Message, len(queues))
	send := func(l int) error {
		select {
		case queues[l] <- pending[l]:
			pending[l] = nil
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// The first read is short, so the writers start early.
	limit := min(r.Batch, firstRead)
	for {
		recs, err := r.Log.Next(ctx, r.cursor, limit)
		limit = r.Batch
		if err != nil {
			return fmt.Errorf("read events after %v: %w", r.cursor, err)
		}
		if len(recs) == 0 {
			break
		}
		for _, rec := range recs {
			l, pl := r.laneOf(rec)
			rec.Prev, r.lanes[l].prev = r.lanes[l].prev, rec.Cursor
			pending[l] = append(pending[l], Message{Record: rec, Chained: true, Payload: pl})
		}
		r.cursor = recs[len(recs)-1].Cursor
		// Every lane gets its share of each read at once (about
		// Batch/lanes records), so the writers start with the first
		// read and none waits for its own Batch to fill.
		for l := range pending {
			if len(pending[l]) > 0 {
				if err := send(l); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// laneOf is a record's lane and its decoded payload, which the lane's
// writer uses as is; a record whose payload cannot be read goes to its
// stream's lane with none, and its writer dead-letters it.
func (r *rebuildRun) laneOf(rec event.Record) (int, event.Payload) {
	pl, err := rec.Envelope.Payload()
	if err != nil {
		pl = nil
	}
	return query.LaneOfEvent(rec.Envelope, pl, len(r.lanes)), pl
}

// write applies a lane's batches until its queue closes.
func (r *rebuildRun) write(ctx context.Context, w *laneWriter, queue <-chan []Message) error {
	for msgs := range queue {
		if err := r.handle(ctx, w.p, msgs); err != nil {
			return fmt.Errorf("lane %d: %w", w.lane, err)
		}
		w.events.Add(int64(len(msgs)))
		w.at.Store(msgs[len(msgs)-1].Record.Cursor.Position)
		done := r.done.Add(int64(len(msgs)))
		if r.Progress != nil {
			r.Progress(done, max(r.total, done))
		}
	}
	return nil
}

// laneReportEvery is how often a rebuild reports its lanes' progress.
const laneReportEvery = 5 * time.Second

// reportLanes tells LaneProgress, when set, every laneReportEvery and
// once more when stopped, what each lane has done.
func (r *rebuildRun) reportLanes(ctx context.Context) (stop func()) {
	if r.LaneProgress == nil {
		return func() {}
	}
	first, last := make([]int64, len(r.lanes)), make([]int64, len(r.lanes))
	for l, w := range r.lanes {
		first[l] = w.events.Load()
		last[l] = first[l]
	}
	start := time.Now()
	lastAt := start
	// report's rate is since the last report; the final one's is over the
	// whole pass (the interval since the last tick may be very short).
	report := func(final bool) {
		now := time.Now()
		out := make([]LaneProgress, len(r.lanes))
		for l, w := range r.lanes {
			n, from, since := w.events.Load(), last[l], lastAt
			if final {
				from, since = first[l], start
			}
			out[l] = LaneProgress{Lane: l, Events: n, Rate: float64(n-from) / max(now.Sub(since).Seconds(), 1e-9), At: w.at.Load()}
			last[l] = n
		}
		lastAt = now
		r.LaneProgress(out)
	}
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		t := time.NewTicker(laneReportEvery)
		defer t.Stop()
		for {
			select {
			case <-t.C:
				report(false)
			case <-done:
				report(true)
				return
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() { close(done); <-finished }
}
