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
	"github.com/prometheus/client_golang/prometheus"
	"github.com/schollz/progressbar/v3"

	"github.com/splitstream/splitstream/elastic"
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
			log: a.log, progress: a.errOut(), batch: *batch, retireAfter: retireAfter}
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

// rebuilder wires projector.Rebuild to Postgres, Elasticsearch and a
// progress bar.
type rebuilder struct {
	pool     *pgxpool.Pool
	es       *elasticsearch.Client
	indices  *elastic.Indices
	log      *slog.Logger
	progress io.Writer
	batch    int
	report   *console.Progress // nil: no console (see console.go)
	// retireAfter is how long the old indices outlive the swap
	// (projector.Rebuild.RetireAfter); tests leave it 0.
	retireAfter time.Duration
}

// retireAfter outlasts a live projector batch between its reads and its
// first write: two of its request timeouts (projector.Config).
const retireAfter = 30 * time.Second

type rebuildStats struct {
	events  int64
	took    time.Duration // everything, index creation included
	replay  time.Duration // reading, folding and writing the events
	indices []string
}

// rate is the replay's events per second.
func (s rebuildStats) rate() float64 { return float64(s.events) / max(s.replay.Seconds(), 1e-9) }

// run rebuilds the read models named (elastic.Models) with
// projector.Rebuild; its projector has a metrics registry of its own.
func (r rebuilder) run(ctx context.Context, models []string, keepOld bool) (rebuildStats, error) {
	kinds := make([]*query.Kind, len(models))
	for i, m := range models {
		k, ok := query.KindIndexed(m)
		if !ok {
			return rebuildStats{}, fmt.Errorf("no read model %q", m)
		}
		kinds[i] = k
	}
	r.report.Start(models, 0)
	bar := progressbar.NewOptions64(1, progressbar.OptionSetWriter(r.progress), progressbar.OptionSetDescription("rebuild"),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("events"),
		progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(r.progress) }))
	source, err := postgres.NewRelaySource(r.pool)
	if err != nil {
		return rebuildStats{}, err
	}
	history, err := postgres.NewEventStore(r.pool)
	if err != nil {
		return rebuildStats{}, err
	}
	stats, err := projector.Rebuild{
		Log: source, History: history, Indices: r.indices,
		Registerer: prometheus.NewRegistry(), Logger: r.log, Batch: r.batch,
		Progress: func(done, total int64) {
			bar.ChangeMax64(total)
			_ = bar.Set64(done)
			r.report.Set(done, total)
		},
		Phase:       r.report.Phase,
		RetireAfter: r.retireAfter,
	}.Run(ctx, kinds, keepOld)
	if err != nil {
		return rebuildStats{}, err
	}
	_ = bar.Finish()
	return rebuildStats{events: stats.Events, took: stats.Took, replay: stats.Replay, indices: stats.Indices}, nil
}
