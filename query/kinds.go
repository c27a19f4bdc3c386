// Package query owns the read model: the kinds of document kept in the
// search index, each declared once (Kind), the pure rules that fold events
// into them (shared by the projector, the rebuild and time travel), and the
// read services the GraphQL edge calls. It never touches Postgres and never
// consumes domain events.
package query

import (
	"hash/fnv"
	"reflect"
	"slices"

	"github.com/splitstream/splitstream/event"
)

// Name names a kind of read document. It is the kind's only spelling: the
// stream type of its own events (event.StreamProduct is "product"), the
// kind of a notice's change, of a dead letter and of the projector's Ref.
type Name string

// Kind declares one kind of read document, once, in its own file
// (product.go, review.go, order.go, eventdoc.go, checkpoint.go): the
// projector, the rebuild, the index mappings, the searcher, the hub and
// the checkpoint derive everything they need from it. docs/ARCHITECTURE.md
// ("Kinds of document") says how to add one.
type Kind struct {
	Name Name
	// Index is the kind's read model in the search index: the alias
	// "<prefix>-<Index>" over versioned indices.
	Index string
	// Streams are the stream types whose events are the kind's own: one
	// document per stream id, folded by Apply. Empty for a kind the
	// projector writes by other rules (the event log, the checkpoint).
	Streams []string
	// Rebuilt says a rebuild fills the kind from the event log (every kind
	// but the checkpoint, which is the rebuild's own progress).
	Rebuilt bool
	// Type is the document's Go type, a struct; the index mapping is
	// derived from its fields (json names, and `search` tags for strings
	// that are text rather than keywords and values that are not indexed).
	Type reflect.Type
	// Retired is a struct type naming fields that no document written now
	// has but older documents may: they stay in the mapping. nil if none.
	Retired reflect.Type
	// New returns an empty document (a pointer to Type).
	New func() any
	// Apply folds one of the kind's own events into a document; nil when
	// Streams is empty.
	Apply func(doc any, e event.Envelope, pl event.Payload) Outcome
	// Version is the aggregate version a document holds.
	Version func(doc any) int
	// Parent is the document a document belongs to, carried in notices as
	// Change.ProductID (a review's product); nil when there is none.
	Parent func(doc any) string
	// Family is the lane key of one of the kind's own events: the events
	// of one family change the same documents (a product and its
	// reviews share a key; an order has its own), so events of different
	// families may be applied apart. nil when Streams is empty.
	Family func(e event.Envelope, pl event.Payload) string
	// Topic is the key subscribers to the kind's changes wait on (the
	// product of a review, else the document itself); nil: no
	// subscription.
	Topic func(c Change) string
	// Summary, when set, says the kind's documents also sum the events of
	// another kind (a product counts its reviews).
	Summary *Summary

	// The read side (query.Service, query.Hub) reads every kind the same
	// way, by these:

	// Exists says a document read from the index is one to show (created,
	// and not removed); nil: any document whose Version is above zero.
	Exists func(doc any) bool
	// Owner is the caller who may read a document besides admins (an
	// order's customer, a customer itself), asked of the Guard; nil: the
	// kind is open to everyone its operation's permission allows.
	Owner func(doc any) string
	// Title is what documents of other kinds show a document by (a
	// product's name): read alone, in one multi-get, when they are read.
	Title *Title
	// Refs are the documents of other kinds whose titles a document shows,
	// filled at read time so a rename reaches every referring document
	// without rewriting any (a review's product name).
	Refs []Ref
	// Pushes says whether a change of the kind goes to its subscribers
	// (Topic); nil: every change does.
	Pushes func(c Change) bool
}

// Title names the field a kind's documents are shown by elsewhere.
type Title struct {
	// Field is the field's JSON name, the only one read for a title.
	Field string
	// Of reads the title of a document.
	Of func(doc any) string
}

// Ref is one reference from a kind's documents to another kind's title.
type Ref struct {
	// To is the kind referred to (by name: kinds may refer to each other).
	To Name
	// ID is the id of the document doc refers to, "" for none.
	ID func(doc any) string
	// Set shows the title in doc.
	Set func(doc any, title string)
}

// Summary declares that documents of one kind sum the events of another
// (Of). The projector applies an event of Of to its own document first and
// counts it into the summary only when it applied there; summaries are
// read and written before the documents of Of, and mark what they counted
// until those are written, so no event is counted twice (the rule is
// explained at Product.CountReview).
type Summary struct {
	// Of is the kind whose events are summed.
	Of *Kind
	// For is the summary document an event of Of counts for, "" if none.
	For func(pl event.Payload) string
	// Count adds one event of Of, once; it reports whether doc changed.
	Count func(doc any, e event.Envelope, pl event.Payload) bool
	// Marks lists the documents of Of that doc marks as counted.
	Marks func(doc any) []string
	// Unmark drops the marks whose documents hold the marked version
	// (version is -1 when it is not known); it reports whether doc changed.
	Unmark func(doc any, version func(id string) int) bool
	// Stale says doc's newest documents of Of must be read again from
	// the index (a removal took one of them away).
	Stale func(doc any) bool
	// SetLatest puts the newest documents of Of, read again, into doc.
	SetLatest func(doc any, latest []ReviewRef) bool
}

// declare fills the parts of k that follow from its document type T and
// adds k to the kinds: a kind's file is its whole declaration.
func declare[T any](k Kind, apply func(*T, event.Envelope, event.Payload) Outcome, version func(*T) int) *Kind {
	k.Type = reflect.TypeFor[T]()
	k.New = func() any { return new(T) }
	k.Version = func(d any) int { return version(d.(*T)) }
	if apply != nil {
		k.Apply = func(d any, e event.Envelope, pl event.Payload) Outcome { return apply(d.(*T), e, pl) }
	}
	kinds = append(kinds, &k)
	return &k
}

// kinds lists every kind, as declare adds them while the package's
// variables are initialised (in file order, a kind after those it refers
// to); nothing adds to it later.
var kinds []*Kind

// exists reports whether a document read from the index is one to show.
func (k *Kind) exists(doc any) bool {
	if k.Exists != nil {
		return k.Exists(doc)
	}
	return k.Version(doc) > 0
}

// Kinds returns every kind of read document.
func Kinds() []*Kind { return slices.Clone(kinds) }

// RebuiltKinds returns the kinds a rebuild fills from the event log.
func RebuiltKinds() []*Kind {
	var out []*Kind
	for _, k := range kinds {
		if k.Rebuilt {
			out = append(out, k)
		}
	}
	return out
}

// KindNamed returns the kind called n.
func KindNamed(n Name) (*Kind, bool) {
	i := slices.IndexFunc(kinds, func(k *Kind) bool { return k.Name == n })
	if i < 0 {
		return nil, false
	}
	return kinds[i], true
}

// KindIndexed returns the kind whose read model is index.
func KindIndexed(index string) (*Kind, bool) {
	i := slices.IndexFunc(kinds, func(k *Kind) bool { return k.Index == index })
	if i < 0 {
		return nil, false
	}
	return kinds[i], true
}

// KindOfStream returns the kind whose own events come from streams of
// streamType; false when no kind has them (such an event is a dead letter).
func KindOfStream(streamType string) (*Kind, bool) {
	i := slices.IndexFunc(kinds, func(k *Kind) bool { return slices.Contains(k.Streams, streamType) })
	if i < 0 {
		return nil, false
	}
	return kinds[i], true
}

// DefaultLanes is how many projector lanes a deployment has unless
// SPLITSTREAM_PROJECTOR_LANES says otherwise. The number is fixed for a
// deployment: changing it is a rebuild (docs/SCALING.md).
const DefaultLanes = 4

// Lane returns the lane, in [0, lanes), of the events of one document
// family (Kind.Family): FNV-1a of the key, modulo lanes. Every process
// (relay, projector, command service, rebuild) computes it the same way.
func Lane(family string, lanes int) int {
	if lanes <= 1 {
		return 0
	}
	h := fnv.New32a()
	h.Write([]byte(family))
	return int(h.Sum32() % uint32(lanes))
}

// LaneOfEvent is the lane an event is routed to: its family's lane, or
// for a stream type no kind has (which the projector dead-letters) the
// lane of "<streamType>:<streamID>", so such events stay in order too.
func LaneOfEvent(e event.Envelope, pl event.Payload, lanes int) int {
	family, ok := LaneOf(e, pl)
	if !ok {
		family = e.StreamType + ":" + e.StreamID
	}
	return Lane(family, lanes)
}

// LaneOf is the document family an event changes (Kind.Family); false
// for a stream type no kind has.
func LaneOf(e event.Envelope, pl event.Payload) (string, bool) {
	k, ok := KindOfStream(e.StreamType)
	if !ok || k.Family == nil {
		return "", false
	}
	return k.Family(e, pl), true
}

// Change says a document changed in the index: the projector's notice
// carries one per changed document, and the hub routes them to
// subscribers. Its JSON is part of the "projected" notice.
type Change struct {
	Kind Name   `json:"kind"`
	ID   string `json:"id"`
	// ProductID is the document's parent (Kind.Parent: the product a
	// review belongs to), so reviewAdded(productId) subscriptions can be
	// routed without a read.
	ProductID string `json:"productId,omitempty"`
	// Version is the aggregate version the document is at. A product
	// changed only by one of its reviews keeps its version.
	Version int `json:"version"`
	// Position is the global position of the last event of the batch that
	// changed the document.
	Position    int64 `json:"position"`
	SeqNo       int64 `json:"seqNo"`
	PrimaryTerm int64 `json:"primaryTerm"`
	// Types are the event types that changed the document in the batch,
	// in order, without repeats ("ReviewAdded" on a review says it is new).
	Types []string `json:"types,omitempty"`
}

// After reports whether c is a newer write of its document than o.
func (c Change) After(o Change) bool {
	if c.PrimaryTerm != o.PrimaryTerm {
		return c.PrimaryTerm > o.PrimaryTerm
	}
	return c.SeqNo > o.SeqNo
}

// LaneOfEnvelope is LaneOfEvent for an envelope whose payload may not
// decode (an unknown type or a malformed one): such an event goes to the
// lane of its stream, "<streamType>:<streamID>", where the projector
// dead-letters it in order with the stream's other events.
func LaneOfEnvelope(e event.Envelope, lanes int) int {
	pl, err := e.Payload()
	if err != nil {
		return Lane(e.StreamType+":"+e.StreamID, lanes)
	}
	return LaneOfEvent(e, pl, lanes)
}
