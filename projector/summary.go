package projector

import (
	"context"

	"github.com/splitstream/splitstream/event"
)

// keptMarks is how many marks a summary keeps before the ones whose
// counted documents are written are cleared: recent marks stay, so that a
// second writer working from an older copy of a review (a rebuild
// catching up beside the live projector) finds them; at about 50 bytes a
// mark the document stays small.
const keptMarks = 64

// holdCountedOfRefused keeps back the counted documents (reviews) changed
// by events that became dead letters (their summary was refused): written
// now, they would say their summary counted them, which it did not.
func (b *batch) holdCountedOfRefused() {
	for _, d := range b.order {
		if !counted(d.kind) || !d.changed || d.refused != "" {
			continue
		}
		for _, idx := range d.items {
			if dl, dead := b.dead[idx]; dead {
				d.refused, d.changed, d.notify = dl.reason, false, false
				for _, other := range d.items {
					b.kill(other, dl.ref, dl.reason)
				}
				break
			}
		}
	}
}

// settleSummaries clears the marks of counted documents now written, and
// reads the latest reviews again from the index for products a removal
// left short (rare: one of the newest five removed), then writes those
// summaries.
func (b *batch) settleSummaries(ctx context.Context) error {
	var stale []*doc
	for _, d := range b.order {
		s := d.kind.Summary
		if s == nil || d.refused != "" {
			continue
		}
		if s.Stale(d.val) {
			stale = append(stale, d)
		}
		if len(s.Marks(d.val)) <= keptMarks {
			continue
		}
		d.try(event.Envelope{}, func(d *doc) bool {
			return s.Unmark(d.val, func(id string) int {
				r := b.docs[Ref{Kind: s.Of.Name, ID: id}]
				if r == nil || !r.found || r.changed || r.refused != "" {
					return -1
				}
				return r.version()
			})
		})
	}
	if len(stale) > 0 {
		ids := make([]string, len(stale))
		for i, d := range stale {
			ids[i] = d.ref.ID
		}
		// The store sums reviews for products (Store.ReviewStats), the one
		// summary there is.
		stats, err := b.p.reviewStats(ctx, ids)
		if err != nil {
			return err
		}
		for _, d := range stale {
			latest := stats[d.ref.ID].Latest
			d.try(event.Envelope{}, func(d *doc) bool { return d.kind.Summary.SetLatest(d.val, latest) })
		}
	}
	return b.write(ctx, nil, func(d *doc) bool { return d.kind.Summary != nil })
}
