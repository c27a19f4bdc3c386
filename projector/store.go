package projector

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// Kind names a document collection in the store: a query.Kind's Name
// (query.Products.Name, ...), the one spelling of a kind everywhere.
type Kind = query.Name

// Ref names one document.
type Ref struct {
	Kind Kind
	ID   string
}

// Stored is a document as the store holds it, with the concurrency token
// (sequence number and primary term) a conditional write must match.
type Stored struct {
	Ref         Ref
	Found       bool
	SeqNo       int64
	PrimaryTerm int64
	Source      json.RawMessage
	// Index is the index the document was read from, when the store
	// reads through an alias that a rebuild may swap ("" when it cannot
	// tell): a batch writes its documents back where it read them.
	Index string
}

// WriteOp says how a write is guarded.
type WriteOp int

const (
	// Create writes only if no document has the id yet.
	Create WriteOp = iota
	// IfMatch overwrites only if the document still has SeqNo and PrimaryTerm.
	IfMatch
	// Overwrite writes unconditionally (the checkpoint).
	Overwrite
)

// Write is one document write of a batch.
type Write struct {
	Ref         Ref
	Op          WriteOp
	SeqNo       int64
	PrimaryTerm int64
	Doc         json.RawMessage
	// Index, when set, is the index to write to (the one the document was
	// read from) instead of its kind's alias.
	Index string
}

// WriteResult is the store's answer for one write, in the order of the writes.
type WriteResult struct {
	// Err is nil when the write was accepted (durably: the store answers
	// only after its write-ahead log has it). A lost guard wraps ErrConflict.
	Err error
	// Retryable marks a failure worth sending again as is (overload, a shard
	// not available); anything else is a rejection of the document.
	Retryable   bool
	SeqNo       int64
	PrimaryTerm int64
}

// ErrConflict is a write whose guard failed: the document was created or
// changed since it was read.
var ErrConflict = errors.New("version conflict")

// ErrRetired is a write to an index a rebuild has retired (swapped out and
// made read-only, or deleted): the batch that read from it starts over
// from the read models' current indices.
var ErrRetired = errors.New("index retired by a rebuild")

// Store is the document store the read models live in.
type Store interface {
	// Get returns one Stored per ref, in order; a missing document has
	// Found false. An error means the store could not answer at all.
	Get(ctx context.Context, refs []Ref) ([]Stored, error)
	// Write sends every write in one request and returns one result per
	// write, in order. An error means the request as a whole failed (any of
	// the writes may or may not have been applied).
	Write(ctx context.Context, writes []Write) ([]WriteResult, error)
	// ReviewStats sums the current reviews of each product (query.StatsOf)
	// over every review document written so far: the store makes its
	// acknowledged writes visible to the sum first. A product with no
	// reviews is absent from the answer or has zero stats. Asked only to
	// read a product's newest reviews again after a removal.
	ReviewStats(ctx context.Context, productIDs []string) (map[string]query.ReviewStats, error)
}

// Letter is a dead letter: an event that can never apply as things stand, parked
// under the document it could not be written to (or, for an event whose
// stream type has no read model, under that stream), with the reason.
type Letter struct {
	Ref      Ref
	Record   event.Record
	Reason   string
	ParkedAt time.Time
}

// DeadLetters is where dead letters wait for an operator, by document, in
// relay order. A document with dead letters is parked: every later event
// that touches it is parked behind them, so the document never skips an
// event and applies a later one. The projector writes; the operator's
// tools (splitstream dead) read, replay and drop.
type DeadLetters interface {
	// Parked reports which of refs have dead letters waiting.
	Parked(ctx context.Context, refs []Ref) (map[Ref]bool, error)
	// Park stores letters durably before they are acked; parking a letter
	// that is already there (same document and event) changes nothing.
	Park(ctx context.Context, letters []Letter) error
	// Count is how many dead letters wait, all documents together.
	Count(ctx context.Context) (int, error)
}

// History reads one stream from the event store, to fill a gap.
type History interface {
	// Load returns the stream's events, oldest first.
	Load(ctx context.Context, streamID string) ([]event.Envelope, error)
}

// Log reads the event log in relay order (the relay's source).
type Log interface {
	// Next returns up to limit records after the cursor, in relay order,
	// chained from it, from the part of the log that can no longer change.
	Next(ctx context.Context, after event.Cursor, limit int) ([]event.Record, error)
}

// NoticePublisher announces what a batch changed, once it is durable.
type NoticePublisher interface {
	PublishNotice(ctx context.Context, n Notice) error
}
