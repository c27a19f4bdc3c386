package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/schollz/progressbar/v3"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/ops/console"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// rebuildFlags: splitstream rebuild [--model products|reviews|orders|events|all] [--keep-old].
func rebuildFlags(fs *flag.FlagSet) func(context.Context, *app) error {
	model := fs.String("model", "all", "read model to rebuild: "+strings.Join(elastic.Models, ", ")+" or all")
	keepOld := fs.Bool("keep-old", false, "keep the old indices after the swap")
	batch := fs.Int("batch", 5000, "events per bulk batch")
	adminAddr := fs.String("admin-addr", "", "while the rebuild runs, serve the admin console (its progress), /readyz and /metrics here (e.g. 127.0.0.1:8071); empty: none")
	return func(ctx context.Context, a *app) error {
		models := elastic.Models
		if *model != "all" {
			if !slices.Contains(elastic.Models, *model) {
				return fmt.Errorf("--model %q: want one of %s or all", *model, strings.Join(elastic.Models, ", "))
			}
			models = []string{*model}
		}
		if *batch < 1 || *batch > 10_000 {
			return errors.New("--batch must be between 1 and 10000")
		}
		pool, err := a.postgres(ctx)
		if err != nil {
			return err
		}
		es, err := a.elasticsearch(ctx)
		if err != nil {
			return err
		}
		r := rebuilder{pool: pool, es: es, indices: elastic.NewIndices(es, a.cfg.IndexPrefix, a.cfg.RefreshInterval),
			log: a.log, progress: a.errOut(), batch: *batch}
		if *adminAddr != "" {
			stop, err := a.rebuildConsole(ctx, *adminAddr, pool, es, &r)
			if err != nil {
				return err
			}
			defer stop()
		}
		stats, err := r.run(ctx, models, *keepOld)
		r.report.Finish(err)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.out, "rebuilt %s from %d events in %s (%.0f events/s); aliases swapped to %s\n",
			strings.Join(models, ", "), stats.events, stats.took.Round(time.Millisecond), stats.rate(), strings.Join(stats.indices, ", "))
		return nil
	}
}

type rebuilder struct {
	pool     *pgxpool.Pool
	es       *elasticsearch.Client
	indices  *elastic.Indices
	log      *slog.Logger
	progress io.Writer
	batch    int
	report   *console.Progress // nil: no console (see console.go)
}

type rebuildStats struct {
	events  int64
	took    time.Duration // everything, index creation included
	replay  time.Duration // reading, folding and writing the events
	indices []string
}

// rate is the replay's events per second.
func (s rebuildStats) rate() float64 { return float64(s.events) / max(s.replay.Seconds(), 1e-9) }

var kindOfModel = map[string]projector.Kind{
	elastic.Products: projector.KindProduct,
	elastic.Reviews:  projector.KindReview,
	elastic.Orders:   projector.KindOrder,
	elastic.Events:   projector.KindEvent,
}

// run replays the event store, in relay order, through the projector's own
// rules into new indices; when it reaches the head of the log it swaps the
// aliases in one atomic action, then replays what arrived meanwhile (the
// live projector and the rebuild write the same documents idempotently, so
// the order of the two does not matter). Queries read the old indices until
// the swap and the new ones after it: they never fail for the rebuild.
func (r rebuilder) run(ctx context.Context, models []string, keepOld bool) (rebuildStats, error) {
	start := time.Now()
	if err := r.indices.Ensure(ctx); err != nil {
		return rebuildStats{}, err
	}
	target := map[projector.Kind]string{}
	var created []string
	cleanup := func() {
		if len(created) > 0 {
			_ = r.indices.Delete(context.WithoutCancel(ctx), created...)
		}
	}
	for _, m := range append(slices.Clone(models), elastic.Checkpoints) {
		index, err := r.indices.Create(ctx, m)
		if err != nil {
			cleanup()
			return rebuildStats{}, err
		}
		created = append(created, index)
		if m == elastic.Checkpoints {
			target[projector.KindCheckpoint] = index // the rebuild's own progress, never the live one
		} else {
			target[kindOfModel[m]] = index
		}
	}
	live := elastic.NewDocStore(r.es, r.indices.Prefix())
	store := rebuildStore{target: elastic.NewDocStoreOn(r.es, target), live: live, rebuilt: target}
	source := postgres.NewRelaySource(r.pool)
	p, err := projector.New(projector.Config{Store: store, History: postgres.NewEventStore(r.pool), Log: r.log})
	if err != nil {
		cleanup()
		return rebuildStats{}, err
	}
	var total int64
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&total); err != nil {
		cleanup()
		return rebuildStats{}, fmt.Errorf("count events: %w", err)
	}
	r.report.Start(models, total)
	bar := progressbar.NewOptions64(max(total, 1), progressbar.OptionSetWriter(r.progress), progressbar.OptionSetDescription("rebuild"),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"),
		progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(r.progress) }))
	var (
		cursor      event.Cursor
		done        int64
		replayStart = time.Now()
	)
	// replay reads ahead of the projector by two batches, so Postgres and
	// Elasticsearch work at the same time.
	replay := func() error {
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
				recs, err := source.Next(rctx, after, r.batch)
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
		}(cursor)
		for b := range batches {
			if b.err != nil {
				return fmt.Errorf("read events: %w", b.err)
			}
			if len(b.recs) == 0 {
				return nil
			}
			msgs := make([]projector.Message, len(b.recs))
			for i, rec := range b.recs {
				msgs[i] = projector.Message{Record: rec, Chained: true}
			}
			if err := r.handle(ctx, p, msgs); err != nil {
				return err
			}
			cursor = b.recs[len(b.recs)-1].Cursor
			done += int64(len(b.recs))
			if done > total {
				bar.ChangeMax64(done)
			}
			_ = bar.Set64(done)
			r.report.Set(done)
		}
		return ctx.Err()
	}
	if err := replay(); err != nil {
		cleanup()
		return rebuildStats{}, err
	}
	var swapped, old []string
	r.report.Phase("swapping")
	for _, m := range models {
		before, err := r.indices.Swap(ctx, m, target[kindOfModel[m]])
		if err != nil {
			return rebuildStats{}, fmt.Errorf("swap %s (the new indices are kept: %s): %w", m, strings.Join(created, ", "), err)
		}
		swapped = append(swapped, target[kindOfModel[m]])
		old = append(old, before...)
	}
	// What the live projector wrote to the old indices between our last
	// read and the swap is in the log: replay it into the new ones.
	r.report.Phase("catching up")
	if err := replay(); err != nil {
		return rebuildStats{}, fmt.Errorf("catch up after the swap: %w", err)
	}
	// Swap refreshed each new index before pointing its alias at it; what
	// the live projector added to the old one meanwhile is now caught up,
	// so make it searchable too rather than after a refresh interval.
	for _, m := range models {
		if err := r.indices.Refresh(ctx, m); err != nil {
			r.log.Warn("rebuild: refresh after catching up failed; visible at the next refresh interval", "model", m, "err", err)
		}
	}
	_ = bar.Finish()
	replayed := time.Since(replayStart)
	_ = r.indices.Delete(context.WithoutCancel(ctx), target[projector.KindCheckpoint])
	if !keepOld && len(old) > 0 {
		if err := r.indices.Delete(ctx, old...); err != nil {
			r.log.Warn("rebuild: old indices not deleted", "indices", old, "err", err)
		}
	}
	return rebuildStats{events: done, took: time.Since(start), replay: replayed, indices: swapped}, nil
}

// handle applies one batch, retrying what the projector asks to retry; a
// record it dead-letters is logged and skipped, as the live projector would.
func (r rebuilder) handle(ctx context.Context, p *projector.Projector, msgs []projector.Message) error {
	for attempt := 0; len(msgs) > 0; attempt++ {
		verdicts, err := p.Handle(ctx, msgs)
		if err != nil {
			return fmt.Errorf("project: %w", err)
		}
		var retry []projector.Message
		for i, v := range verdicts {
			switch v.Action {
			case projector.Retry:
				retry = append(retry, msgs[i])
			case projector.DeadLetter:
				r.log.Warn("rebuild: event cannot be applied; skipped", "event", msgs[i].Record.Envelope.ID, "reason", v.Reason)
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

// rebuildStore sends the rebuilt kinds to the new indices; the other kinds
// are read from the live aliases (a review needs its product's name) and
// their writes are dropped, so a partial rebuild never touches live models.
type rebuildStore struct {
	target  *elastic.DocStore
	live    *elastic.DocStore
	rebuilt map[projector.Kind]string
}

func (s rebuildStore) Get(ctx context.Context, refs []projector.Ref) ([]projector.Stored, error) {
	out := make([]projector.Stored, len(refs))
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
		store *elastic.DocStore
	}{{mine, s.target}, {theirs, s.live}} {
		if len(part.idx) == 0 {
			continue
		}
		sub := make([]projector.Ref, len(part.idx))
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

func (s rebuildStore) Write(ctx context.Context, writes []projector.Write) ([]projector.WriteResult, error) {
	out := make([]projector.WriteResult, len(writes))
	var mine []projector.Write
	var at []int
	for i, w := range writes {
		if _, ok := s.rebuilt[w.Ref.Kind]; ok {
			mine = append(mine, w)
			at = append(at, i)
		} else {
			out[i] = projector.WriteResult{SeqNo: w.SeqNo, PrimaryTerm: w.PrimaryTerm}
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
func (s rebuildStore) ReviewStats(ctx context.Context, productIDs []string) (map[string]query.ReviewStats, error) {
	if _, ok := s.rebuilt[projector.KindReview]; ok {
		return s.target.ReviewStats(ctx, productIDs)
	}
	return s.live.ReviewStats(ctx, productIDs)
}
