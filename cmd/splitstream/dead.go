package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"text/tabwriter"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
)

// deadFlags: splitstream dead list|show|replay|drop [--kind K --id ID | --all].
//
// Dead letters are events the projector parked in Postgres (dead_letters)
// because Elasticsearch refused their document for good, or because their
// stream type has no read model, with every later event of the same
// document parked behind them in relay order. list shows the parked
// documents with their reasons; show one document's letters; replay
// applies them again, in order, after the cause is fixed (a mapping, a
// build that knows the stream type), removing those that apply; drop
// removes them unapplied.
func deadFlags(fs *flag.FlagSet) func(context.Context, *app) error {
	kind := fs.String("kind", "", "document kind (product, review, order, event, or an unknown stream type)")
	id := fs.String("id", "", "document id")
	all := fs.Bool("all", false, "replay or drop every parked document")
	limit := fs.Int("limit", 100, "list: at most this many documents")
	fs.Usage = func() {
		out := fs.Output()
		fmt.Fprint(out, `Usage: splitstream dead <list|show|replay|drop> [flags]

Dead letters: events parked in Postgres because Elasticsearch refused their
document for good (or their stream type has no read model), and the later
events of that document, parked behind them in order.

  list                          parked documents: letters and reasons
  show   --kind K --id ID       one document's letters, in relay order
  replay --kind K --id ID|--all apply the letters again after a fix; those
                                that apply are removed, the others stay
  drop   --kind K --id ID|--all remove the letters without applying them

Flags (also accepted after the action):
`)
		fs.PrintDefaults()
	}
	return func(ctx context.Context, a *app) error {
		if fs.NArg() == 0 {
			fs.Usage()
			return errors.New("an action is needed: list, show, replay or drop")
		}
		action := fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return err
		}
		if fs.NArg() > 0 {
			return fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
		}
		if *limit < 1 || *limit > 100_000 {
			return errors.New("--limit must be between 1 and 100000")
		}
		ref := projector.Ref{Kind: projector.Kind(*kind), ID: *id}
		one := *kind != "" && *id != ""
		switch action {
		case "list":
		case "show":
			if !one {
				return errors.New("show needs --kind and --id")
			}
		case "replay", "drop":
			if one == *all {
				return fmt.Errorf("%s needs either --kind and --id, or --all", action)
			}
		default:
			return fmt.Errorf("unknown action %q: want list, show, replay or drop", action)
		}
		pool, err := a.postgres(ctx)
		if err != nil {
			return err
		}
		store, err := postgres.NewDeadLetters(pool)
		if err != nil {
			return err
		}
		d := deadTool{store: store, out: a.out, log: a.log}
		switch action {
		case "list":
			return d.list(ctx, *limit)
		case "show":
			return d.show(ctx, ref)
		case "drop":
			return d.drop(ctx, ref, *all)
		}
		es, err := a.elasticsearch(ctx)
		if err != nil {
			return err
		}
		return d.replay(ctx, es, pool, a.cfg.IndexPrefix, ref, *all)
	}
}

type deadTool struct {
	store *postgres.DeadLetters
	out   io.Writer
	log   *slog.Logger
}

func (d deadTool) list(ctx context.Context, limit int) error {
	docs, err := d.store.Documents(ctx, limit)
	if err != nil {
		return err
	}
	if len(docs) == 0 {
		fmt.Fprintln(d.out, "no dead letters")
		return nil
	}
	w := tabwriter.NewWriter(d.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tID\tLETTERS\tFIRST PARKED\tREASONS")
	for _, doc := range docs {
		reasons := make([]string, 0, len(doc.Reasons))
		for r, n := range doc.Reasons {
			reasons = append(reasons, fmt.Sprintf("%d× %s", n, clip(r, 300)))
		}
		sort.Strings(reasons)
		fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%s\n", doc.Ref.Kind, clip(doc.Ref.ID, 80), doc.Letters,
			doc.First.UTC().Format("2006-01-02T15:04:05Z"), strings.Join(reasons, "; "))
	}
	return w.Flush()
}

func (d deadTool) show(ctx context.Context, ref projector.Ref) error {
	letters, err := d.store.Letters(ctx, ref)
	if err != nil {
		return err
	}
	if len(letters) == 0 {
		fmt.Fprintf(d.out, "%s %s has no dead letters\n", ref.Kind, ref.ID)
		return nil
	}
	for _, l := range letters {
		e := l.Record.Envelope
		fmt.Fprintf(d.out, "#%d  %s %s v%d  %s  cursor %d/%d  parked %s  replays %d\n    reason: %s\n    data: %s\n",
			l.ID, e.StreamType, e.StreamID, e.Version, e.Type, l.Record.Cursor.Tx, l.Record.Cursor.Position,
			l.ParkedAt.UTC().Format("2006-01-02T15:04:05Z"), l.Replayed, l.Reason, clip(string(e.Data), 500))
	}
	return nil
}

func (d deadTool) drop(ctx context.Context, ref projector.Ref, all bool) error {
	refs, err := d.refs(ctx, ref, all)
	if err != nil {
		return err
	}
	total := 0
	for _, r := range refs {
		n, err := d.dropOne(ctx, r)
		if err != nil {
			return err
		}
		total += n
	}
	fmt.Fprintf(d.out, "dropped %d dead letters of %d documents\n", total, len(refs))
	return nil
}

// dropOne removes one document's letters unapplied and returns how many.
func (d deadTool) dropOne(ctx context.Context, ref projector.Ref) (int, error) {
	letters, err := d.store.Letters(ctx, ref)
	if err != nil {
		return 0, err
	}
	ids := make([]int64, len(letters))
	for i, l := range letters {
		ids[i] = l.ID
	}
	return d.store.Remove(ctx, ids)
}

// refs is the one document asked for, or every parked document.
func (d deadTool) refs(ctx context.Context, ref projector.Ref, all bool) ([]projector.Ref, error) {
	if !all {
		return []projector.Ref{ref}, nil
	}
	docs, err := d.store.Documents(ctx, 1_000_000)
	if err != nil {
		return nil, err
	}
	refs := make([]projector.Ref, len(docs))
	for i, doc := range docs {
		refs[i] = doc.Ref
	}
	return refs, nil
}

// replayChunk bounds the letters applied in one batch.
const replayChunk = 500

func (d deadTool) replay(ctx context.Context, es *elasticsearch.Client, pool *pgxpool.Pool, prefix string, ref projector.Ref, all bool) error {
	p, err := d.replayer(es, pool, prefix)
	if err != nil {
		return err
	}
	refs, err := d.refs(ctx, ref, all)
	if err != nil {
		return err
	}
	var applied, still int
	for _, r := range refs {
		a, s, err := d.replayOne(ctx, p, r)
		if err != nil {
			return err
		}
		applied, still = applied+a, still+s
		if s > 0 {
			fmt.Fprintf(d.out, "%s %s: %d still dead (see splitstream dead show --kind %s --id %s)\n", r.Kind, r.ID, s, r.Kind, r.ID)
		}
	}
	fmt.Fprintf(d.out, "replayed %d documents: %d dead letters applied and removed, %d still dead\n", len(refs), applied, still)
	if still > 0 {
		return fmt.Errorf("%d dead letters still cannot apply", still)
	}
	return nil
}

// replayer is the projector that applies letters again: the live one's
// rules on the live indices, with no metrics of its own.
func (d deadTool) replayer(es *elasticsearch.Client, pool *pgxpool.Pool, prefix string) (*projector.Projector, error) {
	history, err := postgres.NewEventStore(pool)
	if err != nil {
		return nil, err
	}
	return projector.New(projector.Config{Store: elastic.NewDocStore(es, prefix), History: history,
		DeadLetters: d.store, Registerer: prometheus.NewRegistry(), Log: d.log})
}

// replayOne applies one document's letters in relay order, chunk by chunk,
// and goes on with letters the live projector parked meanwhile, until none
// is left or some stay dead. Letters that apply are removed; those that
// stay dead keep their new reason and keep the document parked (a letter
// that changed the document cannot apply while an earlier one that changed
// it stays dead: they share the document's one write). Bounded: at most 100
// rounds.
func (d deadTool) replayOne(ctx context.Context, p *projector.Projector, ref projector.Ref) (applied, still int, err error) {
	for range 100 {
		letters, err := d.store.Letters(ctx, ref)
		if err != nil || len(letters) == 0 {
			return applied, still, err
		}
		chunk := letters[:min(len(letters), replayChunk)]
		ls := make([]projector.Letter, len(chunk))
		for i, l := range chunk {
			ls[i] = l.Letter
		}
		reasons, err := p.Replay(ctx, ls)
		if err != nil {
			return applied, still, fmt.Errorf("replay %s %s: %w", ref.Kind, ref.ID, err)
		}
		var done []int64
		for i, reason := range reasons {
			if reason == "" {
				done = append(done, chunk[i].ID)
				continue
			}
			still++
			if err := d.store.Redead(ctx, chunk[i].ID, reason); err != nil {
				return applied, still, err
			}
		}
		n, err := d.store.Remove(ctx, done)
		if err != nil {
			return applied, still, err
		}
		applied += n
		if still > 0 {
			return applied, still, nil
		}
	}
	return applied, still, fmt.Errorf("replay %s %s: letters keep arriving after 100 rounds; run it again", ref.Kind, ref.ID)
}

// clip shortens s to at most n bytes for a one-line display.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
