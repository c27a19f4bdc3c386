package command

import (
	"context"
	"encoding/json"

	"github.com/splitstream/splitstream/event"
)

// Stream names one aggregate's event stream.
type Stream struct {
	ID   string
	Type string // event.StreamProduct, event.StreamReview or event.StreamOrder
}

// SnapshotEvery is how far a stream may run past its snapshot: a command
// that leaves the stream this many events or more after its last usable
// snapshot makes the store save a new one in the command's own
// transaction (the same pipeline as its appends, so no extra round trip).
// A command therefore replays at most SnapshotEvery-1 events on top of the
// snapshot; 50 keeps that tail (and its decode) a small, fixed part of a
// command's cost, while a snapshot write, one small upsert, comes with
// only one command in fifty.
const SnapshotEvery = 50

// Snapshot is an aggregate's state saved at a version of its stream.
type Snapshot struct {
	StreamType string
	Version    int
	// State is the aggregate's state, as its fold encodes it.
	State json.RawMessage
}

// Change is one command's unit of work on one stream: the store looks the
// command id up first and answers a command it already ran from its record;
// otherwise it locks the stream, checks the expected version, lets Decide
// look at the state and appends what it returns, all in one transaction.
type Change struct {
	Stream Stream
	// Fresh says the service just named the stream with a new random id:
	// it has no history and no other writer, so the store may skip the
	// stream lock and the read. Decide then runs before any transaction
	// opens, and may read other streams (a review's product).
	Fresh bool
	// ExpectedVersion, when set, must equal the stream's version or the
	// change fails with CONFLICT and the current version.
	ExpectedVersion *int
	// Mutation is the command's name: the scope CommandID is stored under.
	Mutation  Name
	CommandID string
	// Internal puts CommandID in the server's own id space (the saga's
	// steps), apart from the commandIds clients send: neither can ever
	// claim the other's.
	Internal bool
	// Lookup says CommandID may have been used before (a client sent it,
	// or it is deterministic); false for an id the service just generated,
	// which lets a fresh stream skip the look-up round trip.
	Lookup bool
	// InputHash identifies the command's input: the same CommandID with a
	// different hash is a CONFLICT.
	InputHash []byte
	Metadata  event.Metadata
	// FoldVersion is the version of the fold Decide uses: the store offers
	// only a snapshot saved under the same one.
	FoldVersion int
	// Decide gets the stream's latest usable snapshot (nil when none) and
	// the events after it, oldest first, and returns its decision or a
	// refusal.
	Decide func(snap *Snapshot, history []event.Envelope) (Decision, error)
}

// Decision is what a command decided.
type Decision struct {
	// Events are the new events; none for a no-op.
	Events []event.Payload
	// State encodes the aggregate's state after Events. The store calls it
	// only when it saves a snapshot.
	State func() (json.RawMessage, error)
}

// Result is what a mutation answers, and what a repeated command id replays.
type Result struct {
	ID      string `json:"id"`
	Version int    `json:"version"`
	Token   string `json:"token"`
}

// EventStore is what the write side needs from its storage.
type EventStore interface {
	Change(ctx context.Context, c Change) (Result, error)
	// LoadSince returns the stream's latest snapshot saved under
	// foldVersion (nil when none) and the events after it, oldest first;
	// nothing for an unknown stream.
	LoadSince(ctx context.Context, streamID string, foldVersion int) (*Snapshot, []event.Envelope, error)
}
