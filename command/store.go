package command

import (
	"context"

	"github.com/splitstream/splitstream/event"
)

// Stream names one aggregate's event stream.
type Stream struct {
	ID   string
	Type string // event.StreamProduct, event.StreamReview or event.StreamOrder
}

// Change is one command's unit of work on one stream: the store locks the
// stream, checks the command id and the expected version, lets Decide look at
// the history and appends what it returns, all in one transaction.
type Change struct {
	Stream Stream
	// Fresh says the service just named the stream with a new random id:
	// it has no history and no other writer, so the store may skip the
	// stream lock and the read (a create is one round trip).
	Fresh bool
	// ExpectedVersion, when set, must equal the stream's version or the
	// change fails with CONFLICT and the current version.
	ExpectedVersion *int
	Mutation        string
	CommandID       string
	// InputHash identifies the command's input: the same CommandID with a
	// different hash is a CONFLICT.
	InputHash []byte
	Metadata  event.Metadata
	// Decide gets the stream's history, oldest first, and returns the new
	// events (none for a no-op) or a refusal.
	Decide func(history []event.Envelope) ([]event.Payload, error)
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
	// Load returns a stream's events, oldest first; none for an unknown stream.
	Load(ctx context.Context, streamID string) ([]event.Envelope, error)
}
