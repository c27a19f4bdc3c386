package projector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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
func (p *Projector) project(ctx context.Context, items []item) (*batch, error) {
	bo := p.backoff()
	for attempt := 1; ; attempt++ {
		b := &batch{p: p, items: items, docs: map[Ref]*doc{}, history: map[string][]event.Envelope{},
			poisoned: map[int]error{}, outcomes: map[int]string{}, renamed: map[string]string{}}
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
	p        *Projector
	items    []item
	docs     map[Ref]*doc
	order    []*doc // first-touched order, for deterministic writes
	history  map[string][]event.Envelope
	poisoned map[int]error     // item idx -> why it cannot apply
	outcomes map[int]string    // item idx -> applied or duplicate
	renamed  map[string]string // product id -> the event type that set its name
}

func (b *batch) run(ctx context.Context) error {
	// Load every document the batch touches in one read.
	refs := make([]Ref, 0, 2*len(b.items))
	for _, it := range b.items {
		refs = append(refs, ownRef(it.rec.Envelope))
		if pid := productOf(it.pl); pid != "" {
			refs = append(refs, Ref{Kind: KindProduct, ID: pid})
		}
	}
	if err := b.load(ctx, refs); err != nil {
		return err
	}
	for _, it := range b.items {
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
	if err := b.syncProductNames(ctx); err != nil {
		return err
	}
	return b.write(ctx)
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
	own, err := b.doc(ctx, ownRef(e))
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
	// A review event's effect on its product is applied even when the
	// review already had it: a batch that failed half-way may have written
	// the review but not the product. The product remembers each review's
	// version, so this counts once.
	if pid := productOf(pl); pid != "" {
		pd, err := b.doc(ctx, Ref{Kind: KindProduct, ID: pid})
		if err != nil {
			return 0, err
		}
		pd.try(e, func(d *doc) bool { return query.ApplyReviewToProduct(d.product, e, pl) == query.Applied })
	}
	return out, nil
}

func (b *batch) applyOwn(d *doc, e event.Envelope, pl event.Payload) query.Outcome {
	var out query.Outcome
	d.try(e, func(d *doc) bool {
		switch d.ref.Kind {
		case KindProduct:
			out = query.ApplyProduct(d.product, e, pl)
		case KindReview:
			out = query.ApplyReview(d.review, e, pl)
		case KindOrder:
			out = query.ApplyOrder(d.order, e, pl)
		}
		return out == query.Applied
	})
	if out == query.Applied && d.ref.Kind == KindProduct {
		switch pl.(type) {
		case event.ProductCreated, event.ProductRenamed:
			b.renamed[d.ref.ID] = e.Type
		}
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
		hp, err := h.Payload()
		if err == nil && event.StreamTypeOf(hp) != h.StreamType {
			err = fmt.Errorf("%s is not a %s event", h.Type, h.StreamType)
		}
		if err != nil {
			return poisonError{fmt.Errorf("stream %s: version %d, needed before version %d, cannot be read: %w", e.StreamID, h.Version, e.Version, err)}
		}
		if _, err := b.apply(ctx, h, hp, false); err != nil {
			return err
		}
	}
	return nil
}

// syncProductNames gives every review the name of its product as of the
// product's version: the reviews of each product renamed (or created) in
// this batch, found through the product's own list of its reviews, and
// every review touched in this batch. SetProductName keeps the newest, so
// this is exact in any order of arrival.
func (b *batch) syncProductNames(ctx context.Context) error {
	var refs []Ref
	for id := range b.renamed {
		pd := b.docs[Ref{Kind: KindProduct, ID: id}]
		for rid := range pd.product.Reviews {
			refs = append(refs, Ref{Kind: KindReview, ID: rid})
		}
	}
	slices.SortFunc(refs, func(a, c Ref) int {
		if a.ID < c.ID {
			return -1
		}
		if a.ID > c.ID {
			return 1
		}
		return 0
	})
	if err := b.load(ctx, refs); err != nil {
		return err
	}
	for _, d := range b.order {
		if d.ref.Kind != KindReview || d.review.ProductID == "" {
			continue
		}
		pd, ok := b.docs[Ref{Kind: KindProduct, ID: d.review.ProductID}]
		if !ok || pd.product.Version == 0 {
			continue
		}
		name, version := pd.product.Name, pd.product.Version
		// The change is the product's: its position and, after a rename, its type.
		cause := event.Envelope{Position: pd.product.Position, Type: b.renamed[pd.ref.ID]}
		d.try(cause, func(d *doc) bool { return d.review.SetProductName(name, version) })
	}
	return nil
}

// write sends every changed document and every event document in one bulk
// request, then retries only what did not go through: a document whose
// guard failed is read again and its operations applied again; an item the
// store refused for now is sent again after a pause.
func (b *batch) write(ctx context.Context) error {
	var (
		writes  []Write
		targets []*doc // nil for event documents
	)
	for _, d := range b.order {
		if !d.changed {
			continue
		}
		w, err := d.write()
		if err != nil {
			return err
		}
		writes, targets = append(writes, w), append(targets, d)
	}
	seen := map[string]bool{}
	for _, it := range b.items {
		id := it.rec.Envelope.ID
		if _, bad := b.poisoned[it.idx]; bad || seen[id] {
			continue
		}
		seen[id] = true
		src, err := json.Marshal(query.EventDoc(it.rec, it.pl))
		if err != nil {
			return fmt.Errorf("encode event %s: %w", id, err)
		}
		writes, targets = append(writes, Write{Ref: Ref{Kind: KindEvent, ID: id}, Op: Create, Doc: src}), append(targets, nil)
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
			conflicted []*doc
			refused    error
		)
		for i, r := range res {
			d := targets[i]
			switch {
			case r.Err == nil:
				if d != nil {
					d.found, d.seq, d.term, d.changed = true, r.SeqNo, r.PrimaryTerm, false
				}
			case errors.Is(r.Err, ErrConflict):
				if d == nil {
					continue // the event document exists: written before
				}
				conflicted = append(conflicted, d)
			default:
				refused = r.Err
				reason := "rejected"
				if r.Retryable {
					reason = "unavailable"
				} else {
					b.p.log.Error("elasticsearch refused a document; retrying", "kind", writes[i].Ref.Kind, "id", writes[i].Ref.ID, "err", r.Err)
				}
				b.p.m.retries.WithLabelValues(reason).Inc()
				again, againT = append(again, writes[i]), append(againT, d)
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
					again, againT = append(again, w), append(againT, d)
				}
			}
		}
		writes, targets = again, againT
		if refused != nil && len(writes) > 0 {
			if err := sleep(ctx, bo); err != nil {
				return err
			}
		}
	}
	return nil
}

// changes lists the documents this batch changed, for the notice.
func (b *batch) changes() []Change {
	var out []Change
	for _, d := range b.order {
		if !d.notify {
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

func ownRef(e event.Envelope) Ref {
	switch e.StreamType {
	case event.StreamReview:
		return Ref{Kind: KindReview, ID: e.StreamID}
	case event.StreamOrder:
		return Ref{Kind: KindOrder, ID: e.StreamID}
	default:
		return Ref{Kind: KindProduct, ID: e.StreamID}
	}
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
