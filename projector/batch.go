package projector

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// item is one decoded record of a batch; idx is its message's index.
type item struct {
	idx int
	rec event.Record
	pl  event.Payload
}

// poisonError marks a record that cannot be applied (as opposed to a store
// or history that cannot be reached).
type poisonError struct{ err error }

func (e poisonError) Error() string { return e.err.Error() }
func (e poisonError) Unwrap() error { return e.err }

// project applies items and writes the result, starting over from fresh
// reads after any failure of the store or the history, with capped backoff,
// until it succeeds or ctx ends. Starting over is safe because every fold
// rule is idempotent: what an earlier attempt did write reads back as a
// duplicate.
//
// replaying names parked documents whose dead letters items are: they are
// applied as if those documents were not parked, and nothing is parked
// (Replay reports instead). nil for live work.
func (p *Projector) project(ctx context.Context, items []item, replaying map[Ref]bool) (*batch, error) {
	bo := p.backoff()
	for attempt := 1; ; attempt++ {
		b := &batch{p: p, items: items, docs: map[Ref]*doc{}, history: map[string][]event.Envelope{},
			poisoned: map[int]error{}, outcomes: map[int]string{}, dead: map[int]deadItem{},
			replaying: replaying, cur: -1}
		err := b.run(ctx)
		if err == nil {
			return b, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		p.log.Warn("projecting batch failed; retrying", "attempt", attempt, "events", len(items), "err", err)
		if err := sleep(ctx, bo); err != nil {
			return nil, err
		}
	}
}

// batch is the working set of one attempt at a batch: every document it
// touches, loaded once, with the operations applied to it.
type batch struct {
	p         *Projector
	items     []item
	docs      map[Ref]*doc
	order     []*doc // first-touched order, for deterministic writes
	history   map[string][]event.Envelope
	poisoned  map[int]error  // item idx -> why it cannot apply
	outcomes  map[int]string // item idx -> applied or duplicate
	dead      map[int]deadItem
	replaying map[Ref]bool
	cur       int // idx of the item being applied, -1 outside
	// fresh holds counted documents' versions (reviews') read again after
	// a summary's write conflicted, for its replayed counts.
	fresh map[string]int
	// gen is the index each kind was read from (get).
	gen map[Kind]seenIndex
}

// deadItem is why an item is a dead letter, and the document it is
// parked under.
type deadItem struct {
	ref    Ref
	reason string
}

// kill makes item idx a dead letter, unless it already is one (the first
// reason is the one that counts).
func (b *batch) kill(idx int, ref Ref, reason string) {
	if _, ok := b.dead[idx]; !ok {
		b.dead[idx] = deadItem{ref: ref, reason: reason}
	}
}

// refsOf lists the documents an item's event may change: its own, the
// summaries it counts for (the product a review is about), and its event
// document.
func refsOf(it item, own Ref) []Ref {
	refs := []Ref{own, {Kind: query.Events.Name, ID: it.rec.Envelope.ID}}
	return append(refs, summaryRefs(it.rec.Envelope, it.pl)...)
}

// run applies the batch: events of unknown stream types and events that
// touch a parked document become dead letters untouched; the others are
// folded into their documents (a review event also counts for its
// product), which are written, summaries before what they count; and what
// the store refused for good is parked with its events.
func (b *batch) run(ctx context.Context) error {
	kept, err := b.admit(ctx)
	if err != nil {
		return err
	}
	if err := b.loadFor(ctx, kept); err != nil {
		return err
	}
	for _, it := range kept {
		b.cur = it.idx
		out, err := b.apply(ctx, it.rec.Envelope, it.pl, true)
		var pe poisonError
		switch {
		case errors.As(err, &pe):
			b.poisoned[it.idx] = pe.err
		case err != nil:
			return err
		case out == query.Applied:
			b.outcomes[it.idx] = outcomeApplied
		default:
			b.outcomes[it.idx] = outcomeDuplicate
		}
	}
	b.cur = -1
	// Summaries (and everything not counted) first, then the counted
	// documents: a review document holds its version only once its product
	// counted it, so a review event that is a duplicate for its review is
	// one for its product too, and a retry after a crash between the two
	// writes finds the product's mark.
	if err := b.write(ctx, kept, func(d *doc) bool { return !counted(d.kind) }); err != nil {
		return err
	}
	b.holdCountedOfRefused()
	if err := b.write(ctx, nil, func(d *doc) bool { return counted(d.kind) }); err != nil {
		return err
	}
	if err := b.settleSummaries(ctx); err != nil {
		return err
	}
	return b.park(ctx)
}

// admit returns the items to apply: an event of a stream type no kind
// declares, or one that touches a parked document, becomes a dead letter
// with the reason instead.
func (b *batch) admit(ctx context.Context) ([]item, error) {
	// Sized for the whole batch: an item is a few hundred bytes, and a
	// batch of a backlog is a thousand of them.
	live := make([]item, 0, len(b.items))
	check := make([]Ref, 0, len(b.items))
	for _, it := range b.items {
		e := it.rec.Envelope
		own, ok := ownRef(e)
		if !ok {
			kind := Kind(e.StreamType)
			if kind == "" {
				kind = "unknown"
			}
			b.kill(it.idx, Ref{Kind: kind, ID: e.StreamID}, fmt.Sprintf("stream type %q has no read model: %s %s v%d is never written as a document", e.StreamType, e.Type, e.StreamID, e.Version))
			continue
		}
		check = append(check, refsOf(it, own)...)
		live = append(live, it)
	}
	parked, err := b.p.parked(ctx, check, b.replaying)
	if err != nil {
		return nil, err
	}
	kept := live[:0] // filtered in place: nothing else holds live
	for _, it := range live {
		own, _ := ownRef(it.rec.Envelope)
		if r, ok := firstParked(refsOf(it, own), parked); ok {
			b.kill(it.idx, r, fmt.Sprintf("%s %s has earlier dead letters: parked behind them, in order", r.Kind, r.ID))
			continue
		}
		kept = append(kept, it)
	}
	return kept, nil
}

// loadFor reads the documents the items change. Summaries are read before
// the documents they count: a review read later than its product can only
// be newer, and a review that holds an event means its product counted it
// (products are written first), so an event is never counted twice by two
// writers (a rebuild catching up beside the live projector, a replay).
//
// A document that its stream's first event creates is not read, but taken
// for absent, unless its kind is counted (a review is read, after its
// product, whatever its version): its write is a create, so if it exists
// after all (the event is a redelivery) the create fails and the document
// is read and its operations applied again, as after any lost guard. One
// document of each such kind is still read, so the batch knows the index
// it writes them to, as if it had read them all.
func (b *batch) loadFor(ctx context.Context, kept []item) error {
	var summaries, others, absent []Ref
	fresh := map[Ref]bool{}
	pin := map[Kind]Ref{} // the document of each kind read to know its index
	for _, it := range kept {
		own, _ := ownRef(it.rec.Envelope)
		k, _ := query.KindNamed(own.Kind)
		p, pinned := pin[own.Kind]
		switch {
		case it.rec.Envelope.Version == 1 && !counted(k) && pinned && p != own:
			if !fresh[own] {
				fresh[own] = true
				absent = append(absent, own)
			}
		case k.Summary != nil:
			summaries = append(summaries, own)
		default:
			others = append(others, own)
		}
		if !pinned {
			pin[own.Kind] = own
		}
		summaries = append(summaries, summaryRefs(it.rec.Envelope, it.pl)...)
	}
	isFresh := func(r Ref) bool { return fresh[r] }
	summaries, others = slices.DeleteFunc(summaries, isFresh), slices.DeleteFunc(others, isFresh)
	if err := b.load(ctx, summaries); err != nil {
		return err
	}
	if err := b.load(ctx, others); err != nil {
		return err
	}
	if err := b.assumeAbsent(absent); err != nil {
		return err
	}
	// Marks left by an attempt that wrote a summary and not what it
	// counted: read those documents, to clear the marks they now satisfy.
	var marked []Ref
	for _, d := range b.order {
		if s := d.kind.Summary; s != nil {
			if ids := s.Marks(d.val); len(ids) > keptMarks {
				for _, id := range ids {
					marked = append(marked, Ref{Kind: s.Of.Name, ID: id})
				}
			}
		}
	}
	slices.SortFunc(marked, func(a, c Ref) int { return strings.Compare(a.ID, c.ID) })
	return b.load(ctx, marked)
}

// assumeAbsent adds the documents of refs to the working set as not
// found, in the index their kind was read from in this batch.
func (b *batch) assumeAbsent(refs []Ref) error {
	for _, r := range refs {
		if _, ok := b.docs[r]; ok {
			continue
		}
		d, err := newDoc(r)
		if err != nil {
			return err
		}
		if err := d.reset(Stored{Ref: r, Index: b.gen[r.Kind].index}); err != nil {
			return err
		}
		b.docs[r] = d
		b.order = append(b.order, d)
	}
	return nil
}

func firstParked(refs []Ref, parked map[Ref]bool) (Ref, bool) {
	for _, r := range refs {
		if parked[r] {
			return r, true
		}
	}
	return Ref{}, false
}

// park stores the batch's dead letters, in relay order, before anything is
// acked. A replay parks nothing: it reports.
func (b *batch) park(ctx context.Context) error {
	if b.replaying != nil || len(b.dead) == 0 {
		return nil
	}
	var letters []Letter
	now := b.p.cfg.Now().UTC()
	for _, it := range b.items {
		if d, ok := b.dead[it.idx]; ok {
			letters = append(letters, Letter{Ref: d.ref, Record: it.rec, Reason: d.reason, ParkedAt: now})
		}
	}
	slices.SortStableFunc(letters, func(a, c Letter) int {
		switch {
		case a.Record.Cursor.Less(c.Record.Cursor):
			return -1
		case c.Record.Cursor.Less(a.Record.Cursor):
			return 1
		}
		return 0
	})
	return b.p.park(ctx, letters)
}

// load reads the documents not yet in the working set.
func (b *batch) load(ctx context.Context, refs []Ref) error {
	var missing []Ref
	seen := map[Ref]bool{}
	for _, r := range refs {
		if _, ok := b.docs[r]; ok || seen[r] {
			continue
		}
		seen[r] = true
		missing = append(missing, r)
	}
	if len(missing) == 0 {
		return nil
	}
	stored, err := b.get(ctx, missing)
	if err != nil {
		return err
	}
	for i, s := range stored {
		d, err := newDoc(missing[i])
		if err != nil {
			return err
		}
		if err := d.reset(s); err != nil {
			return err
		}
		b.docs[d.ref] = d
		b.order = append(b.order, d)
	}
	return nil
}

func (b *batch) doc(ctx context.Context, r Ref) (*doc, error) {
	if d, ok := b.docs[r]; ok {
		return d, nil
	}
	if err := b.load(ctx, []Ref{r}); err != nil {
		return nil, err
	}
	return b.docs[r], nil
}

// changes lists the documents this batch changed, for the notice.
func (b *batch) changes() []Change {
	var out []Change
	for _, d := range b.order {
		if d.notify && d.refused == "" {
			out = append(out, d.change())
		}
	}
	return out
}

// newest is the occurredAt of the newest record applied in the batch
// (duplicates say nothing about how far behind the projector is).
func (b *batch) newest() time.Time {
	var t time.Time
	for _, it := range b.items {
		if b.outcomes[it.idx] == outcomeApplied && it.rec.Envelope.OccurredAt.After(t) {
			t = it.rec.Envelope.OccurredAt
		}
	}
	return t
}
