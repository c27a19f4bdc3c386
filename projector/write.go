package projector

import (
	"context"
	"errors"
	"fmt"

	"github.com/splitstream/splitstream/query"
)

// pending is a set of writes on their way, with what each one is for.
type pending struct {
	writes  []Write
	targets []*doc // nil for event documents
	evIdx   []int  // item idx of each event document, -1 for documents
}

// newPending has room for n writes.
func newPending(n int) pending {
	return pending{writes: make([]Write, 0, n), targets: make([]*doc, 0, n), evIdx: make([]int, 0, n)}
}

func (w *pending) add(x Write, d *doc, idx int) {
	w.writes, w.targets, w.evIdx = append(w.writes, x), append(w.targets, d), append(w.evIdx, idx)
}

// write sends every changed document which selects and the event
// documents of items in one bulk request, then retries only what did not
// go through: a document whose guard failed is read again and its
// operations applied again; an item the store refused for now is sent
// again after a pause; a document (or event document) the store refused
// for good is left out and the events that changed it become dead letters.
func (b *batch) write(ctx context.Context, items []item, which func(*doc) bool) error {
	todo, err := b.collect(items, which)
	if err != nil {
		return err
	}
	bo := b.p.backoff()
	for len(todo.writes) > 0 {
		res, err := b.p.write(ctx, todo.writes)
		if err != nil {
			return err
		}
		if err := retired(res); err != nil {
			return err
		}
		again, conflicted, unready := b.settle(todo, res)
		if err := b.reapply(ctx, conflicted, &again); err != nil {
			return err
		}
		todo = again
		if unready && len(todo.writes) > 0 {
			if err := sleep(ctx, bo); err != nil {
				return err
			}
		}
	}
	return nil
}

// collect lists the writes of the changed documents which selects and of
// the event documents of items that are neither poisoned nor dead.
func (b *batch) collect(items []item, which func(*doc) bool) (pending, error) {
	selected := func(d *doc) bool { return d.changed && d.refused == "" && which(d) }
	n := len(items)
	for _, d := range b.order {
		if selected(d) {
			n++
		}
	}
	todo := newPending(n)
	for _, d := range b.order {
		if !selected(d) {
			continue
		}
		w, err := d.write()
		if err != nil {
			return todo, err
		}
		todo.add(w, d, -1)
	}
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		id := it.rec.Envelope.ID
		_, bad := b.poisoned[it.idx]
		_, dead := b.dead[it.idx]
		if bad || dead || seen[id] {
			continue
		}
		seen[id] = true
		src, err := query.EventDoc(it.rec, it.pl).AppendJSON(make([]byte, 0, eventDocSize+len(it.rec.Envelope.Data)))
		if err != nil {
			return todo, fmt.Errorf("encode event %s: %w", id, err)
		}
		todo.add(Write{Ref: Ref{Kind: query.Events.Name, ID: id}, Op: Create, Doc: src}, nil, it.idx)
	}
	return todo, nil
}

// eventDocSize is about how long an event document is besides its data.
const eventDocSize = 384

// settle takes the store's answers: accepted documents are clean, refused
// ones are dead-lettered; it returns what to send again as is, the
// documents whose guard failed, and whether the store was not ready.
func (b *batch) settle(todo pending, res []WriteResult) (again pending, conflicted []*doc, unready bool) {
	for i, r := range res {
		d := todo.targets[i]
		switch {
		case r.Err == nil:
			if d != nil {
				// What changed it so far is durable: a later conflict
				// replays, and a later refusal dead-letters, only what
				// follows.
				d.found, d.seq, d.term, d.changed, d.items, d.ops, d.counts = true, r.SeqNo, r.PrimaryTerm, false, nil, nil, nil
			}
		case errors.Is(r.Err, ErrConflict):
			if d != nil { // an event document that exists was written before
				conflicted = append(conflicted, d)
			}
		case r.Retryable:
			unready = true
			b.p.m.retries.WithLabelValues("unavailable").Inc()
			again.add(todo.writes[i], d, todo.evIdx[i])
		default:
			b.refuse(todo.writes[i].Ref, d, todo.evIdx[i], r.Err)
		}
	}
	return again, conflicted, unready
}

// reapply reads the conflicted documents again, applies this batch's
// operations to the fresh copies and adds what still changes to again.
func (b *batch) reapply(ctx context.Context, conflicted []*doc, again *pending) error {
	if len(conflicted) == 0 {
		return nil
	}
	b.p.m.retries.WithLabelValues("conflict").Add(float64(len(conflicted)))
	refs := make([]Ref, len(conflicted))
	for i, d := range conflicted {
		refs[i] = d.ref
	}
	stored, err := b.get(ctx, refs)
	if err != nil {
		return err
	}
	if err := b.refreshCounted(ctx, conflicted); err != nil {
		return err
	}
	for i, d := range conflicted {
		if d.conflicts++; d.conflicts > b.p.cfg.MaxConflicts {
			return fmt.Errorf("%s %s: still conflicting after %d reloads", d.ref.Kind, d.ref.ID, b.p.cfg.MaxConflicts)
		}
		if err := d.replay(stored[i]); err != nil {
			return err
		}
		if d.changed {
			w, err := d.write()
			if err != nil {
				return err
			}
			again.add(w, d, -1)
		}
	}
	return nil
}

// refreshCounted reads again, after the conflicting summaries themselves,
// the documents their replayed operations count, so that a count another
// writer made meanwhile (its review written since) is not made twice.
func (b *batch) refreshCounted(ctx context.Context, conflicted []*doc) error {
	var refs []Ref
	for _, d := range conflicted {
		for _, id := range d.counts {
			refs = append(refs, Ref{Kind: d.kind.Summary.Of.Name, ID: id})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	stored, err := b.get(ctx, refs)
	if err != nil {
		return err
	}
	if b.fresh == nil {
		b.fresh = map[string]int{}
	}
	for _, s := range stored {
		d, err := newDoc(s.Ref)
		if err != nil {
			return err
		}
		if err := d.reset(s); err != nil {
			return err
		}
		b.fresh[s.Ref.ID] = d.version()
	}
	return nil
}

// refuse handles a write the store refused for good (a 4xx other than a
// conflict or overload: a mapping that rejects a field, a document too
// large): the document is not written in this batch, and every event that
// changed it becomes a dead letter parked under it, so that later events
// of the document follow them instead of being applied past a hole.
func (b *batch) refuse(ref Ref, d *doc, evItem int, err error) {
	reason := fmt.Sprintf("elasticsearch refused %s %s: %v", ref.Kind, ref.ID, err)
	b.p.log.Error("elasticsearch refused a document for good; dead-lettering the events that made it", "kind", ref.Kind, "id", ref.ID, "err", err)
	if d == nil {
		b.kill(evItem, ref, reason)
		return
	}
	d.refused, d.changed, d.notify = reason, false, false
	for _, idx := range d.items {
		b.kill(idx, ref, reason)
	}
}
