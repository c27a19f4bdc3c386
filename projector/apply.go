package projector

import (
	"context"
	"fmt"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// apply applies one event to its own document and to the summaries it
// counts for. A gap before it is filled from the event store first (only
// when fill; events read from the event store have no gap before them).
func (b *batch) apply(ctx context.Context, e event.Envelope, pl event.Payload, fill bool) (query.Outcome, error) {
	ref, ok := ownRef(e)
	if !ok {
		return 0, poisonError{fmt.Errorf("stream %s: stream type %q has no read model", e.StreamID, e.StreamType)}
	}
	own, err := b.doc(ctx, ref)
	if err != nil {
		return 0, err
	}
	out := b.applyOwn(own, e, pl)
	if out == query.Gap {
		if !fill {
			return out, poisonError{fmt.Errorf("stream %s: version %d read from the event store does not follow version %d", e.StreamID, e.Version, own.version())}
		}
		if err := b.fill(ctx, own, e); err != nil {
			return 0, err
		}
		if out = b.applyOwn(own, e, pl); out == query.Gap {
			return out, poisonError{fmt.Errorf("stream %s: versions %d to %d are not in the event store", e.StreamID, own.version()+1, e.Version-1)}
		}
	}
	// An event counts for its summaries (a review for its product) when
	// it applied to its own document.
	if out == query.Applied {
		if err := b.count(ctx, e, pl); err != nil {
			return 0, err
		}
	}
	return out, nil
}

// count adds e to the summaries it counts for, once.
func (b *batch) count(ctx context.Context, e event.Envelope, pl event.Payload) error {
	for _, r := range summaryRefs(e, pl) {
		sd, err := b.doc(ctx, r)
		if err != nil {
			return err
		}
		if sd.try(e, func(d *doc) bool {
			if v, ok := b.fresh[e.StreamID]; ok && v >= e.Version {
				return false // another writer applied it, and counted it first
			}
			return d.kind.Summary.Count(d.val, e, pl)
		}) {
			sd.by(b.cur)
			sd.counts = append(sd.counts, e.StreamID)
		}
	}
	return nil
}

func (b *batch) applyOwn(d *doc, e event.Envelope, pl event.Payload) query.Outcome {
	var out query.Outcome
	if d.try(e, func(d *doc) bool {
		out = d.kind.Apply(d.val, e, pl)
		return out == query.Applied
	}) {
		d.by(b.cur)
	}
	return out
}

// fill applies the events of own's stream that come between own's version
// and e, read from the event store.
func (b *batch) fill(ctx context.Context, own *doc, e event.Envelope) error {
	hist, ok := b.history[e.StreamID]
	if !ok || (len(hist) > 0 && hist[len(hist)-1].Version < e.Version-1) {
		hctx, cancel := context.WithTimeout(ctx, b.p.cfg.RequestTimeout)
		var err error
		hist, err = b.p.cfg.History.Load(hctx, e.StreamID)
		cancel()
		if err != nil {
			return fmt.Errorf("fill gap before %s v%d: %w", e.StreamID, e.Version, err)
		}
		b.history[e.StreamID] = hist
	}
	for _, h := range hist {
		if h.Version <= own.version() {
			continue
		}
		if h.Version >= e.Version {
			break
		}
		hp, err := b.p.payload(h)
		if err != nil {
			return poisonError{fmt.Errorf("stream %s: version %d, needed before version %d, cannot be read: %w", e.StreamID, h.Version, e.Version, err)}
		}
		if _, err := b.apply(ctx, h, hp, false); err != nil {
			return err
		}
	}
	return nil
}
