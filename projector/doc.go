package projector

import (
	"encoding/json"
	"fmt"
	"slices"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// doc is one document of the working set: its state, its concurrency token
// and the operations this batch applied to it, which are applied again to a
// fresh copy when a conditional write finds it changed. What the document
// is (its type, its fold, its version) comes from its kind's declaration.
type doc struct {
	ref       Ref
	kind      *query.Kind
	val       any // a pointer to kind.Type
	found     bool
	seq, term int64
	ops       []func(*doc) bool
	changed   bool // differs from the stored copy
	notify    bool // changed by this batch
	position  int64
	types     []string
	conflicts int
	items     []int    // idx of the items that changed it, in order
	refused   string   // why the store refused it for good, "" if it did not
	counts    []string // counted documents its operations since its last write count
	index     string   // where it was read from (Stored.Index)
}

// newDoc returns the working copy of ref, which must be of a kind the
// projector folds.
func newDoc(ref Ref) (*doc, error) {
	k, ok := query.KindNamed(ref.Kind)
	if !ok || k.Apply == nil {
		return nil, fmt.Errorf("projector: cannot load a %s document", ref.Kind)
	}
	return &doc{ref: ref, kind: k}, nil
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
	d.found, d.seq, d.term, d.index = s.Found, s.SeqNo, s.PrimaryTerm, s.Index
	d.val = d.kind.New()
	if s.Found {
		if err := json.Unmarshal(s.Source, d.val); err != nil {
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

func (d *doc) version() int { return d.kind.Version(d.val) }

func (d *doc) write() (Write, error) {
	src, err := json.Marshal(d.val)
	if err != nil {
		return Write{}, fmt.Errorf("encode %s %s: %w", d.ref.Kind, d.ref.ID, err)
	}
	w := Write{Ref: d.ref, Op: Create, Doc: src, Index: d.index}
	if d.found {
		w.Op, w.SeqNo, w.PrimaryTerm = IfMatch, d.seq, d.term
	}
	return w, nil
}

// change is the notice's entry for the document.
func (d *doc) change() Change {
	c := Change{Kind: d.ref.Kind, ID: d.ref.ID, Version: d.version(), Position: d.position,
		SeqNo: d.seq, PrimaryTerm: d.term, Types: d.types}
	if d.kind.Parent != nil {
		c.ProductID = d.kind.Parent(d.val)
	}
	return c
}

// ownRef is the document of the event's own stream; false for a stream
// type no kind declares (a dead letter, never a document).
func ownRef(e event.Envelope) (Ref, bool) {
	k, ok := query.KindOfStream(e.StreamType)
	if !ok {
		return Ref{}, false
	}
	return Ref{Kind: k.Name, ID: e.StreamID}, true
}

// summaryRefs are the summary documents an event counts for (its review's
// product), by the kinds' Summary declarations.
func summaryRefs(e event.Envelope, pl event.Payload) []Ref {
	var out []Ref
	for _, k := range summaries {
		if s := k.Summary; slices.Contains(s.Of.Streams, e.StreamType) {
			if id := s.For(pl); id != "" {
				out = append(out, Ref{Kind: k.Name, ID: id})
			}
		}
	}
	return out
}

// counted reports whether some kind sums the documents of k, which are
// then written after their summaries.
func counted(k *query.Kind) bool { return countedKinds[k] }

// summaries are the kinds that sum another's events; countedKinds the
// kinds they sum. Both follow from the declarations.
var summaries, countedKinds = func() ([]*query.Kind, map[*query.Kind]bool) {
	var sums []*query.Kind
	of := map[*query.Kind]bool{}
	for _, k := range query.Kinds() {
		if k.Summary != nil {
			sums = append(sums, k)
			of[k.Summary.Of] = true
		}
	}
	return sums, of
}()
