package postgres_test

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// Parking is idempotent per document and event, letters come back in relay
// order whatever order they were parked in, and Parked answers for exactly
// the documents with letters.
func TestDeadLettersByDocumentInRelayOrder(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := postgres.NewDeadLetters(pool)
	if err != nil {
		t.Fatal(err)
	}
	p1 := projector.Ref{Kind: query.Products.Name, ID: "p1"}
	p2 := projector.Ref{Kind: query.Products.Name, ID: "p2"}
	letter := func(ref projector.Ref, id string, tx uint64, reason string) projector.Letter {
		return projector.Letter{Ref: ref, Reason: reason, Record: event.Record{
			Envelope: event.Envelope{ID: id, StreamID: ref.ID, StreamType: "product", Version: 1, Type: "ProductRenamed", SchemaVersion: 1, Data: json.RawMessage(`{"name":"x"}`)},
			Cursor:   event.Cursor{Tx: tx, Position: int64(tx)}, Prev: event.Cursor{Tx: tx - 1, Position: int64(tx - 1)},
		}}
	}
	if err := s.Park(ctx, []projector.Letter{letter(p1, "e3", 30, "later"), letter(p1, "e1", 10, "refused"), letter(p2, "e2", 20, "refused")}); err != nil {
		t.Fatal(err)
	}
	// A retried batch parks the same letters again: nothing changes.
	if err := s.Park(ctx, []projector.Letter{letter(p1, "e1", 10, "refused again")}); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(ctx); err != nil || n != 3 {
		t.Fatalf("count = %d, %v; want 3", n, err)
	}
	parked, err := s.Parked(ctx, []projector.Ref{p1, p2, {Kind: query.Reviews.Name, ID: "p1"}, {Kind: query.Products.Name, ID: "p3"}})
	if err != nil || len(parked) != 2 || !parked[p1] || !parked[p2] {
		t.Fatalf("parked = %v, %v", parked, err)
	}
	ls, err := s.Letters(ctx, p1)
	if err != nil || len(ls) != 2 || ls[0].Record.Envelope.ID != "e1" || ls[1].Record.Envelope.ID != "e3" ||
		ls[0].Reason != "refused" || ls[0].Record.Cursor != (event.Cursor{Tx: 10, Position: 10}) || string(ls[0].Record.Envelope.Data) != `{"name": "x"}` {
		t.Fatalf("letters of p1 = %+v, %v", ls, err)
	}
	docs, err := s.Documents(ctx, 10)
	if err != nil || len(docs) != 2 || docs[0].Letters+docs[1].Letters != 3 {
		t.Fatalf("documents = %+v, %v", docs, err)
	}
	if err := s.Redead(ctx, ls[0].ID, "still refused"); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Remove(ctx, []int64{ls[1].ID}); err != nil || n != 1 {
		t.Fatalf("remove = %d, %v", n, err)
	}
	ls, _ = s.Letters(ctx, p1)
	if len(ls) != 1 || ls[0].Reason != "still refused" || ls[0].Replayed != 1 {
		t.Fatalf("after redead and remove: %+v", ls)
	}
}
