package projector

import (
	"context"
	"encoding/json"
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
	// fresh holds review versions read again after a product's write
	// conflicted, for its replayed counts.
	fresh map[string]int
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
// product a review is about, and its event document.
func refsOf(it item, own Ref) []Ref {
	refs := []Ref{own, {Kind: KindEvent, ID: it.rec.Envelope.ID}}
	if pid := productOf(it.pl); pid != "" {
		refs = append(refs, Ref{Kind: KindProduct, ID: pid})
	}
	return refs
}

// run applies the batch: events of unknown stream types and events that
// touch a parked document become dead letters untouched; the others are
// folded into their documents (a review event also counts for its
// product), which are written, products before reviews; and what the
// store refused for good is parked with its events.
func (b *batch) run(ctx context.Context) error {
	var live []item
	owns := map[int]Ref{}
	var check []Ref
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
		owns[it.idx] = own
		check = append(check, refsOf(it, own)...)
		live = append(live, it)
	}
	parked, err := b.p.parked(ctx, check, b.replaying)
	if err != nil {
		return err
	}
	refs := make([]Ref, 0, 2*len(live))
	kept := live[:0:0]
	for _, it := range live {
		if r, ok := firstParked(refsOf(it, owns[it.idx]), parked); ok {
			b.kill(it.idx, r, fmt.Sprintf("%s %s has earlier dead letters: parked behind them, in order", r.Kind, r.ID))
			continue
		}
		kept = append(kept, it)
		refs = append(refs, owns[it.idx])
		if pid := productOf(it.pl); pid != "" {
			refs = append(refs, Ref{Kind: KindProduct, ID: pid})
		}
	}
	// Products are read before reviews: a review read later than its
	// product can only be newer, and a review that holds an event means
	// its product counted it (products are written first), so an event
	// is never counted twice by two writers (a rebuild catching up beside
	// the live projector, a replay).
	var products, others []Ref
	for _, r := range refs {
		if r.Kind == KindProduct {
			products = append(products, r)
		} else {
			others = append(others, r)
		}
	}
	if err := b.load(ctx, products); err != nil {
		return err
	}
	if err := b.load(ctx, others); err != nil {
		return err
	}
	// Marks left by an attempt that wrote a product and not its reviews:
	// read those reviews, to clear the marks they now satisfy.
	var marked []Ref
	for _, d := range b.order {
		if d.product != nil && len(d.product.Counted) > keptMarks {
			for id := range d.product.Counted {
				marked = append(marked, Ref{Kind: KindReview, ID: id})
			}
		}
	}
	slices.SortFunc(marked, func(a, c Ref) int { return strings.Compare(a.ID, c.ID) })
	if err := b.load(ctx, marked); err != nil {
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
	// Products (and everything but reviews) first, then reviews: a review
	// document holds its version only once its product counted it, so a
	// review event that is a duplicate for its review is one for its
	// product too, and a retry after a crash between the two writes finds
	// the product's mark.
	if err := b.write(ctx, kept, func(d *doc) bool { return d.review == nil }); err != nil {
		return err
	}
	b.holdReviewsOfRefused()
	if err := b.write(ctx, nil, func(d *doc) bool { return d.review != nil }); err != nil {
		return err
	}
	if err := b.settleProducts(ctx); err != nil {
		return err
	}
	return b.park(ctx)
}

// holdReviewsOfRefused keeps back the review documents changed by events
// that became dead letters (their product was refused): written now, they
// would say their product counted them, which it did not.
func (b *batch) holdReviewsOfRefused() {
	for _, d := range b.order {
		if d.review == nil || !d.changed || d.refused != "" {
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

// keptMarks is how many marks a product keeps before the ones whose
// reviews are written are cleared: recent marks stay, so that a second
// writer working from an older copy of a review (a rebuild catching up
// beside the live projector) finds them; at about 50 bytes a mark the
// document stays small.
const keptMarks = 64

// settleProducts clears the marks of reviews now written, and reads the
// latest reviews again from the index for products a removal left short
// (rare: one of the newest five removed), then writes those products.
func (b *batch) settleProducts(ctx context.Context) error {
	var stale []string
	for _, d := range b.order {
		if d.product == nil || d.refused != "" {
			continue
		}
		if d.product.LatestStale {
			stale = append(stale, d.ref.ID)
		}
		if len(d.product.Counted) <= keptMarks {
			continue
		}
		d.try(event.Envelope{}, func(d *doc) bool {
			return d.product.Uncount(func(id string) int {
				r := b.docs[Ref{Kind: KindReview, ID: id}]
				if r == nil || !r.found || r.changed || r.refused != "" {
					return -1
				}
				return r.review.Version
			})
		})
	}
	if len(stale) > 0 {
		stats, err := b.p.reviewStats(ctx, stale)
		if err != nil {
			return err
		}
		for _, id := range stale {
			latest := stats[id].Latest
			b.docs[Ref{Kind: KindProduct, ID: id}].try(event.Envelope{}, func(d *doc) bool { return d.product.SetLatest(latest) })
		}
	}
	return b.write(ctx, nil, func(d *doc) bool { return d.product != nil })
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
	stored, err := b.p.get(ctx, missing)
	if err != nil {
		return err
	}
	for i, s := range stored {
		d := &doc{ref: missing[i]}
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

// apply applies one event to its own document and to the documents it
// affects. A gap before it is filled from the event store first (only when
// fill; events read from the event store have no gap before them).
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
	// A review event counts for its product when it applied to the review.
	if pid := productOf(pl); pid != "" && out == query.Applied {
		pd, err := b.doc(ctx, Ref{Kind: KindProduct, ID: pid})
		if err != nil {
			return 0, err
		}
		if pd.try(e, func(d *doc) bool {
			if v, ok := b.fresh[e.StreamID]; ok && v >= e.Version {
				return false // another writer applied it, and counted it first
			}
			return d.product.CountReview(e, pl)
		}) {
			pd.by(b.cur)
			pd.counts = append(pd.counts, e.StreamID)
		}
	}
	return out, nil
}

func (b *batch) applyOwn(d *doc, e event.Envelope, pl event.Payload) query.Outcome {
	var out query.Outcome
	if d.try(e, func(d *doc) bool {
		switch d.ref.Kind {
		case KindProduct:
			out = query.ApplyProduct(d.product, e, pl)
		case KindReview:
			out = query.ApplyReview(d.review, e, pl)
		case KindOrder:
			out = query.ApplyOrder(d.order, e, pl)
		}
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

// write sends every changed document which selects and the event
// documents of items in one bulk request, then retries only what did not go through: a document
// whose guard failed is read again and its operations applied again; an
// item the store refused for now is sent again after a pause; a document
// (or event document) the store refused for good is left out and the
// events that changed it become dead letters.
func (b *batch) write(ctx context.Context, items []item, which func(*doc) bool) error {
	var (
		writes  []Write
		targets []*doc // nil for event documents
		evIdx   []int  // item idx of each event document, -1 for documents
	)
	for _, d := range b.order {
		if !d.changed || d.refused != "" || !which(d) {
			continue
		}
		w, err := d.write()
		if err != nil {
			return err
		}
		writes, targets, evIdx = append(writes, w), append(targets, d), append(evIdx, -1)
	}
	seen := map[string]bool{}
	for _, it := range items {
		id := it.rec.Envelope.ID
		_, bad := b.poisoned[it.idx]
		_, dead := b.dead[it.idx]
		if bad || dead || seen[id] {
			continue
		}
		seen[id] = true
		src, err := json.Marshal(query.EventDoc(it.rec, it.pl))
		if err != nil {
			return fmt.Errorf("encode event %s: %w", id, err)
		}
		writes = append(writes, Write{Ref: Ref{Kind: KindEvent, ID: id}, Op: Create, Doc: src})
		targets, evIdx = append(targets, nil), append(evIdx, it.idx)
	}

	bo := b.p.backoff()
	for len(writes) > 0 {
		res, err := b.p.write(ctx, writes)
		if err != nil {
			return err
		}
		var (
			again      []Write
			againT     []*doc
			againI     []int
			conflicted []*doc
			unready    bool
		)
		for i, r := range res {
			d := targets[i]
			switch {
			case r.Err == nil:
				if d != nil {
					// What changed it so far is durable: a later conflict
					// replays, and a later refusal dead-letters, only what
					// follows.
					d.found, d.seq, d.term, d.changed, d.items, d.ops, d.counts = true, r.SeqNo, r.PrimaryTerm, false, nil, nil, nil
				}
			case errors.Is(r.Err, ErrConflict):
				if d == nil {
					continue // the event document exists: written before
				}
				conflicted = append(conflicted, d)
			case r.Retryable:
				unready = true
				b.p.m.retries.WithLabelValues("unavailable").Inc()
				again, againT, againI = append(again, writes[i]), append(againT, d), append(againI, evIdx[i])
			default:
				b.refuse(writes[i].Ref, d, evIdx[i], r.Err)
			}
		}
		if len(conflicted) > 0 {
			b.p.m.retries.WithLabelValues("conflict").Add(float64(len(conflicted)))
			refs := make([]Ref, len(conflicted))
			for i, d := range conflicted {
				refs[i] = d.ref
			}
			stored, err := b.p.get(ctx, refs)
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
					again, againT, againI = append(again, w), append(againT, d), append(againI, -1)
				}
			}
		}
		writes, targets, evIdx = again, againT, againI
		if unready && len(writes) > 0 {
			if err := sleep(ctx, bo); err != nil {
				return err
			}
		}
	}
	return nil
}

// refreshCounted reads again, after the conflicting products themselves,
// the reviews their replayed operations count, so that a count another
// writer made meanwhile (its review written since) is not made twice.
func (b *batch) refreshCounted(ctx context.Context, conflicted []*doc) error {
	var refs []Ref
	for _, d := range conflicted {
		for _, id := range d.counts {
			refs = append(refs, Ref{Kind: KindReview, ID: id})
		}
	}
	if len(refs) == 0 {
		return nil
	}
	stored, err := b.p.get(ctx, refs)
	if err != nil {
		return err
	}
	if b.fresh == nil {
		b.fresh = map[string]int{}
	}
	for _, s := range stored {
		var r query.Review
		if s.Found {
			if err := json.Unmarshal(s.Source, &r); err != nil {
				return fmt.Errorf("decode review %s: %w", s.Ref.ID, err)
			}
		}
		b.fresh[s.Ref.ID] = r.Version
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

// changes lists the documents this batch changed, for the notice.
func (b *batch) changes() []Change {
	var out []Change
	for _, d := range b.order {
		if !d.notify || d.refused != "" {
			continue
		}
		c := Change{Kind: d.ref.Kind, ID: d.ref.ID, Version: d.version(), Position: d.position,
			SeqNo: d.seq, PrimaryTerm: d.term, Types: d.types}
		if d.review != nil {
			c.ProductID = d.review.ProductID
		}
		out = append(out, c)
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

// doc is one document of the working set: its state, its concurrency token
// and the operations this batch applied to it, which are applied again to a
// fresh copy when a conditional write finds it changed.
type doc struct {
	ref       Ref
	found     bool
	seq, term int64
	product   *query.Product
	review    *query.Review
	order     *query.Order
	ops       []func(*doc) bool
	changed   bool // differs from the stored copy
	notify    bool // changed by this batch
	position  int64
	types     []string
	conflicts int
	items     []int    // idx of the items that changed it, in order
	refused   string   // why the store refused it for good, "" if it did not
	counts    []string // reviews its operations since its last write count
}

// by records that item idx changed the document (-1: none).
func (d *doc) by(idx int) {
	if idx >= 0 && !slices.Contains(d.items, idx) {
		d.items = append(d.items, idx)
	}
}

// try runs op and keeps it, for replay, when it changed the document. e is
// the event behind op (zero for derived changes).
func (d *doc) try(e event.Envelope, op func(*doc) bool) bool {
	if !op(d) {
		return false
	}
	d.ops = append(d.ops, op)
	d.changed, d.notify = true, true
	if e.Position > d.position {
		d.position = e.Position
	}
	if e.Type != "" && !slices.Contains(d.types, e.Type) {
		d.types = append(d.types, e.Type)
	}
	return true
}

// reset replaces the state with a stored copy.
func (d *doc) reset(s Stored) error {
	d.found, d.seq, d.term = s.Found, s.SeqNo, s.PrimaryTerm
	d.product, d.review, d.order = nil, nil, nil
	var target any
	switch d.ref.Kind {
	case KindProduct:
		d.product = &query.Product{}
		target = d.product
	case KindReview:
		d.review = &query.Review{}
		target = d.review
	case KindOrder:
		d.order = &query.Order{}
		target = d.order
	default:
		return fmt.Errorf("projector: cannot load a %s document", d.ref.Kind)
	}
	if s.Found {
		if err := json.Unmarshal(s.Source, target); err != nil {
			return fmt.Errorf("decode %s %s: %w", d.ref.Kind, d.ref.ID, err)
		}
	}
	return nil
}

// replay applies this batch's operations again to a fresh stored copy.
func (d *doc) replay(s Stored) error {
	if err := d.reset(s); err != nil {
		return err
	}
	d.changed = false
	for _, op := range d.ops {
		if op(d) {
			d.changed = true
		}
	}
	return nil
}

func (d *doc) value() any {
	switch {
	case d.product != nil:
		return d.product
	case d.review != nil:
		return d.review
	default:
		return d.order
	}
}

func (d *doc) version() int {
	switch {
	case d.product != nil:
		return d.product.Version
	case d.review != nil:
		return d.review.Version
	case d.order != nil:
		return d.order.Version
	}
	return 0
}

func (d *doc) write() (Write, error) {
	src, err := json.Marshal(d.value())
	if err != nil {
		return Write{}, fmt.Errorf("encode %s %s: %w", d.ref.Kind, d.ref.ID, err)
	}
	w := Write{Ref: d.ref, Op: Create, Doc: src}
	if d.found {
		w.Op, w.SeqNo, w.PrimaryTerm = IfMatch, d.seq, d.term
	}
	return w, nil
}

// ownRef is the document of the event's own stream; false for a stream
// type that has no read model (a dead letter, never a document).
func ownRef(e event.Envelope) (Ref, bool) {
	switch e.StreamType {
	case event.StreamProduct:
		return Ref{Kind: KindProduct, ID: e.StreamID}, true
	case event.StreamReview:
		return Ref{Kind: KindReview, ID: e.StreamID}, true
	case event.StreamOrder:
		return Ref{Kind: KindOrder, ID: e.StreamID}, true
	}
	return Ref{}, false
}

// productOf is the product a review event changes, or "".
func productOf(pl event.Payload) string {
	switch pl := pl.(type) {
	case event.ReviewAdded:
		return pl.ProductID
	case event.ReviewRemoved:
		return pl.ProductID
	}
	return ""
}
