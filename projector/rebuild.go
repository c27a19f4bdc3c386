package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// RebuildLog is the event log a rebuild replays, in relay order
// (postgres.RelaySource).
type RebuildLog interface {
	Log
	// Count is how many events the log holds, for progress.
	Count(ctx context.Context) (int64, error)
}

// Indices manages the versioned indices behind the read models' aliases
// (elastic.Indices): a rebuild fills fresh ones beside the live ones and
// swaps the aliases at the end. A model is a kind's Index.
type Indices interface {
	// Ensure creates every read model's first index where it is missing.
	Ensure(ctx context.Context) error
	// Create makes a fresh, empty index for model and returns its name.
	Create(ctx context.Context, model string) (string, error)
	// SwapAll makes each new index (by model) searchable, points every
	// model's alias at its new index in one atomic action, then makes the
	// indices they pointed at before read-only (a live batch writing to
	// them gets ErrRetired), and returns those. An error with indices
	// returned came after the swap.
	SwapAll(ctx context.Context, indices map[string]string) ([]string, error)
	// Refresh makes every write to model searchable now.
	Refresh(ctx context.Context, model string) error
	Delete(ctx context.Context, indices ...string) error
	// StoreOn is a store on the given index of each kind.
	StoreOn(indices map[Kind]string) Store
	// Live is the store on the read models' aliases.
	Live() Store
}

// Rebuild replays the event log through the projector's own rules into
// fresh indices and swaps them in.
type Rebuild struct {
	Log     RebuildLog
	History History
	Indices Indices
	// Registerer takes the rebuild's projector's metrics: a registry of its
	// own when a live projector runs in the same process.
	Registerer prometheus.Registerer
	Logger     *slog.Logger
	// Batch is how many events one bulk batch applies (1 to 10,000).
	Batch int
	// Progress, when set, is told how many events are done, of how many.
	Progress func(done, total int64)
	// Phase, when set, is told when the rebuild moves past replaying:
	// "swapping", "catching up", then "retiring the old indices".
	Phase func(phase string)
	// RetireAfter is how long after the swap the old indices are deleted
	// (unless kept): longer than a live projector batch takes from its
	// reads to its first write (its request timeout and a history read).
	RetireAfter time.Duration
}

// RebuildStats says what a rebuild did.
type RebuildStats struct {
	Events  int64
	Took    time.Duration // everything, index creation included
	Replay  time.Duration // reading, folding and writing the events
	Indices []string      // the indices the aliases now point at
}

// Rate is the replay's events per second.
func (s RebuildStats) Rate() float64 { return float64(s.Events) / max(s.Replay.Seconds(), 1e-9) }

// rebuildRun is one rebuild's state.
type rebuildRun struct {
	Rebuild
	p       *Projector
	target  map[Kind]string // the fresh index of each rebuilt kind, and of the checkpoint
	created []string
	total   int64
	done    int64
	cursor  event.Cursor
	// swappedAt is when the aliases moved: the old indices are deleted no
	// sooner than RetireAfter later.
	swappedAt time.Time
}

// Run rebuilds kinds (each Rebuilt): it replays the event log, in relay
// order, into new indices; when it reaches the head of the log it swaps the
// aliases, then replays what arrived meanwhile (the live projector and the
// rebuild write the same documents idempotently, so the order of the two
// does not matter). Queries read the old indices until the swap and the
// new ones after it: they never fail for the rebuild.
func (r Rebuild) Run(ctx context.Context, kinds []*query.Kind, keepOld bool) (RebuildStats, error) {
	if r.Log == nil || r.History == nil || r.Indices == nil || r.Registerer == nil || r.Logger == nil {
		return RebuildStats{}, errors.New("projector: rebuild needs a log, a history, indices, a registerer and a logger")
	}
	if r.Batch < 1 || r.Batch > 10_000 {
		return RebuildStats{}, fmt.Errorf("projector: rebuild batch %d, want 1 to 10000", r.Batch)
	}
	for _, k := range kinds {
		if !k.Rebuilt {
			return RebuildStats{}, fmt.Errorf("projector: %s documents are not rebuilt", k.Name)
		}
	}
	start := time.Now()
	run := &rebuildRun{Rebuild: r}
	if err := run.prepare(ctx, kinds); err != nil {
		run.cleanup(ctx)
		return RebuildStats{}, err
	}
	replayStart := time.Now()
	if err := run.replay(ctx); err != nil {
		run.cleanup(ctx)
		return RebuildStats{}, err
	}
	run.phase("swapping")
	swapped, old, err := run.swap(ctx, kinds)
	if err != nil {
		return RebuildStats{}, err
	}
	// What the live projector wrote to the old indices between our last
	// read and the swap is in the log: replay it into the new ones.
	run.phase("catching up")
	if err := run.replay(ctx); err != nil {
		return RebuildStats{}, fmt.Errorf("catch up after the swap: %w", err)
	}
	run.finish(ctx, kinds, old, keepOld)
	return RebuildStats{Events: run.done, Took: time.Since(start), Replay: time.Since(replayStart), Indices: swapped}, nil
}

func (r *rebuildRun) phase(p string) {
	if r.Phase != nil {
		r.Phase(p)
	}
}

// prepare creates a fresh index per kind and one for the rebuild's own
// checkpoint (never the live one), and the projector writing into them.
func (r *rebuildRun) prepare(ctx context.Context, kinds []*query.Kind) error {
	if err := r.Indices.Ensure(ctx); err != nil {
		return err
	}
	r.target = map[Kind]string{}
	for _, k := range append(slices.Clone(kinds), query.Checkpoints) {
		index, err := r.Indices.Create(ctx, k.Index)
		if err != nil {
			return err
		}
		r.created = append(r.created, index)
		r.target[k.Name] = index
	}
	store := splitStore{target: r.Indices.StoreOn(r.target), live: r.Indices.Live(), rebuilt: r.target}
	var err error
	r.p, err = New(Config{Store: store, History: r.History, DeadLetters: NewMemoryDeadLetters(),
		Registerer: r.Registerer, Log: r.Logger})
	if err != nil {
		return err
	}
	if r.total, err = r.Log.Count(ctx); err != nil {
		return fmt.Errorf("count events: %w", err)
	}
	return nil
}

// cleanup deletes the indices a failed rebuild created.
func (r *rebuildRun) cleanup(ctx context.Context) {
	if len(r.created) > 0 {
		_ = r.Indices.Delete(context.WithoutCancel(ctx), r.created...)
	}
}

// replay applies the log from the cursor to its head. It reads ahead of
// the projector by two batches, so the log and the store work at the
// same time.
func (r *rebuildRun) replay(ctx context.Context) error {
	type read struct {
		recs []event.Record
		err  error
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	batches := make(chan read, 2)
	go func(after event.Cursor) {
		defer close(batches)
		for {
			recs, err := r.Log.Next(rctx, after, r.Batch)
			select {
			case batches <- read{recs, err}:
			case <-rctx.Done():
				return
			}
			if err != nil || len(recs) == 0 {
				return
			}
			after = recs[len(recs)-1].Cursor
		}
	}(r.cursor)
	for b := range batches {
		if b.err != nil {
			return fmt.Errorf("read events: %w", b.err)
		}
		if len(b.recs) == 0 {
			return nil
		}
		msgs := make([]Message, len(b.recs))
		for i, rec := range b.recs {
			msgs[i] = Message{Record: rec, Chained: true}
		}
		if err := r.handle(ctx, msgs); err != nil {
			return err
		}
		r.cursor = b.recs[len(b.recs)-1].Cursor
		r.done += int64(len(b.recs))
		if r.Progress != nil {
			r.Progress(r.done, max(r.total, r.done))
		}
	}
	return ctx.Err()
}

// handle applies one batch, retrying what the projector asks to retry; a
// record it dead-letters is logged and skipped, as the live projector would.
func (r *rebuildRun) handle(ctx context.Context, msgs []Message) error {
	for attempt := 0; len(msgs) > 0; attempt++ {
		verdicts, err := r.p.Handle(ctx, msgs)
		if err != nil {
			return fmt.Errorf("project: %w", err)
		}
		var retry []Message
		for i, v := range verdicts {
			switch v.Action {
			case Retry:
				retry = append(retry, msgs[i])
			case DeadLetter:
				r.Logger.Warn("rebuild: event cannot be applied; skipped", "event", msgs[i].Record.Envelope.ID, "reason", v.Reason)
			}
		}
		if len(retry) > 0 && attempt >= 20 {
			return fmt.Errorf("project: %d events still failing after %d attempts: %s", len(retry), attempt, verdicts[0].Reason)
		}
		if len(retry) > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond):
			}
		}
		msgs = retry
	}
	return nil
}

// swap points every kind's alias at its new index, all in one step.
func (r *rebuildRun) swap(ctx context.Context, kinds []*query.Kind) (swapped, old []string, err error) {
	to := map[string]string{}
	for _, k := range kinds {
		to[k.Index] = r.target[k.Name]
		swapped = append(swapped, r.target[k.Name])
	}
	old, err = r.Indices.SwapAll(ctx, to)
	switch {
	case err != nil && old == nil:
		return nil, nil, fmt.Errorf("swap (the new indices are kept: %s): %w", strings.Join(r.created, ", "), err)
	case err != nil:
		// Swapped, but a live batch that read the old indices may still
		// write to them; the catch-up goes on, which is what matters now.
		r.Logger.Warn("rebuild: swapped, but the old indices are not read-only", "err", err)
	}
	r.swappedAt = time.Now()
	return swapped, old, nil
}

// finish makes what the catch-up wrote searchable (Swap refreshed each new
// index before pointing its alias at it; what the live projector added to
// the old one meanwhile is now caught up too, so make it searchable rather
// than after a refresh interval), then deletes the rebuild's checkpoint
// and, unless keepOld, the old indices.
func (r *rebuildRun) finish(ctx context.Context, kinds []*query.Kind, old []string, keepOld bool) {
	for _, k := range kinds {
		if err := r.Indices.Refresh(ctx, k.Index); err != nil {
			r.Logger.Warn("rebuild: refresh after catching up failed; visible at the next refresh interval", "model", k.Index, "err", err)
		}
	}
	_ = r.Indices.Delete(context.WithoutCancel(ctx), r.target[query.Checkpoints.Name])
	if !keepOld && len(old) > 0 {
		// A live batch that read the old indices before the swap fails its
		// writes there and reads again; deleting them under it would let its
		// first write create an index of that name. Give such a batch
		// RetireAfter to get there.
		if wait := time.Until(r.swappedAt.Add(r.RetireAfter)); wait > 0 {
			r.phase("retiring the old indices")
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
		}
		if err := r.Indices.Delete(ctx, old...); err != nil {
			r.Logger.Warn("rebuild: old indices not deleted", "indices", old, "err", err)
		}
	}
}

// splitStore sends the rebuilt kinds to the new indices; the other kinds
// are read from the live aliases (a review counts for its product) and
// their writes are dropped, so a partial rebuild never touches live models.
type splitStore struct {
	target  Store
	live    Store
	rebuilt map[Kind]string
}

func (s splitStore) Get(ctx context.Context, refs []Ref) ([]Stored, error) {
	out := make([]Stored, len(refs))
	var mine, theirs []int
	for i, r := range refs {
		if _, ok := s.rebuilt[r.Kind]; ok {
			mine = append(mine, i)
		} else {
			theirs = append(theirs, i)
		}
	}
	for _, part := range []struct {
		idx   []int
		store Store
	}{{mine, s.target}, {theirs, s.live}} {
		if len(part.idx) == 0 {
			continue
		}
		sub := make([]Ref, len(part.idx))
		for j, i := range part.idx {
			sub[j] = refs[i]
		}
		got, err := part.store.Get(ctx, sub)
		if err != nil {
			return nil, err
		}
		for j, i := range part.idx {
			out[i] = got[j]
		}
	}
	return out, nil
}

func (s splitStore) Write(ctx context.Context, writes []Write) ([]WriteResult, error) {
	out := make([]WriteResult, len(writes))
	var mine []Write
	var at []int
	for i, w := range writes {
		if _, ok := s.rebuilt[w.Ref.Kind]; ok {
			mine = append(mine, w)
			at = append(at, i)
		} else {
			out[i] = WriteResult{SeqNo: w.SeqNo, PrimaryTerm: w.PrimaryTerm}
		}
	}
	if len(mine) > 0 {
		got, err := s.target.Write(ctx, mine)
		if err != nil {
			return nil, err
		}
		for j, i := range at {
			out[i] = got[j]
		}
	}
	return out, nil
}

// ReviewStats sums reviews where the rebuild writes them when reviews are
// rebuilt, else in the live index.
func (s splitStore) ReviewStats(ctx context.Context, productIDs []string) (map[string]query.ReviewStats, error) {
	if _, ok := s.rebuilt[query.Reviews.Name]; ok {
		return s.target.ReviewStats(ctx, productIDs)
	}
	return s.live.ReviewStats(ctx, productIDs)
}
