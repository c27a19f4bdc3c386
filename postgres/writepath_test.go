package postgres_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/command"
)

// A mutation without a commandId leaves no command record (nobody can send
// its generated id again), on a fresh stream and on an existing one; with a
// commandId it is recorded and a second send replays the first answer.
func TestOnlyGivenCommandIDsAreRecorded(t *testing.T) {
	w, pool := newWorld(t)
	id := w.product()
	w.must(w.svc.ChangeProduct(w.ctx, id, command.Meta{}, command.RestockProduct{Quantity: 1}))
	w.review(id)
	if n := countCommands(t, w, pool, ""); n != 0 {
		t.Fatalf("%d command records after mutations without commandId, want 0", n)
	}

	create := command.CreateProduct{Name: "Pot", Category: "kitchen", PriceCents: 100, Currency: "EUR", Stock: 1}
	first := w.must(w.svc.CreateProduct(w.ctx, command.Meta{CommandID: "create-1"}, create))
	again := w.must(w.svc.CreateProduct(w.ctx, command.Meta{CommandID: "create-1"}, create))
	if again != first {
		t.Fatalf("replay answered %+v, want %+v", again, first)
	}
	restock := w.must(w.svc.ChangeProduct(w.ctx, first.ID, command.Meta{CommandID: "restock-1"}, command.RestockProduct{Quantity: 2}))
	if r := w.must(w.svc.ChangeProduct(w.ctx, first.ID, command.Meta{CommandID: "restock-1"}, command.RestockProduct{Quantity: 2})); r != restock {
		t.Fatalf("replayed restock answered %+v, want %+v", r, restock)
	}
	if n := countCommands(t, w, pool, "create-1"); n != 1 {
		t.Fatalf("%d records of create-1, want 1", n)
	}
	if n := countCommands(t, w, pool, ""); n != 2 {
		t.Fatalf("%d command records, want 2 (create-1, restock-1)", n)
	}
	var versions int
	if err := pool.QueryRow(w.ctx, `SELECT max(version) FROM events WHERE stream_id = $1`, first.ID).Scan(&versions); err != nil {
		t.Fatal(err)
	}
	if versions != 2 {
		t.Fatalf("stream %s at version %d after two replays, want 2", first.ID, versions)
	}
}

// countCommands counts the command records named id (all of them for "").
func countCommands(t *testing.T, w world, pool *pgxpool.Pool, id string) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(w.ctx, `SELECT count(*) FROM commands WHERE $1 = '' OR command_id = $1`, id).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// Event and stream ids are UUIDv7s, and the events table keeps no index on
// event_id (migration 00011).
func TestIDsAreTimeOrdered(t *testing.T) {
	w, pool := newWorld(t)
	id := w.product()
	if u, err := uuid.Parse(id); err != nil || u.Version() != 7 {
		t.Fatalf("stream id %q: version %v, %v; want a UUIDv7", id, u.Version(), err)
	}
	var eventID string
	if err := pool.QueryRow(w.ctx, `SELECT event_id::text FROM events WHERE stream_id = $1`, id).Scan(&eventID); err != nil {
		t.Fatal(err)
	}
	if u, err := uuid.Parse(eventID); err != nil || u.Version() != 7 {
		t.Fatalf("event id %q: version %v, %v; want a UUIDv7", eventID, u.Version(), err)
	}
	var indexes int
	if err := pool.QueryRow(w.ctx, `SELECT count(*) FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'events' AND indexdef LIKE '%(event_id)%'`).Scan(&indexes); err != nil {
		t.Fatal(err)
	}
	if indexes != 0 {
		t.Fatalf("%d indexes on events.event_id, want none", indexes)
	}
}

// A create is one pipeline with no BEGIN or COMMIT: Postgres runs it as one
// implicit transaction. Creates racing with the same commandId append one
// stream between them: a loser's command record fails its primary key,
// which takes its appended event with it, and it answers with the winner's
// stored result.
func TestRacingCreatesWithOneCommandIDAppendOnce(t *testing.T) {
	w, pool := newWorld(t)
	create := command.CreateProduct{Name: "Pan", Category: "kitchen", PriceCents: 100, Currency: "EUR", Stock: 1}
	count := func() int {
		var n int
		if err := pool.QueryRow(w.ctx, `SELECT count(*) FROM events WHERE event_type = 'ProductCreated'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	const rounds, racers = 20, 8
	for r := range rounds {
		meta := command.Meta{CommandID: fmt.Sprintf("race-%d", r)}
		answers := make([]command.Result, racers)
		errs := make([]error, racers)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range racers {
			wg.Go(func() {
				<-start
				answers[i], errs[i] = w.svc.CreateProduct(w.ctx, meta, create)
			})
		}
		close(start)
		wg.Wait()
		for i := range racers {
			if errs[i] != nil {
				t.Fatalf("round %d racer %d: %v", r, i, errs[i])
			}
			if answers[i] != answers[0] {
				t.Fatalf("round %d: racer %d answered %+v, racer 0 %+v", r, i, answers[i], answers[0])
			}
		}
	}
	if got := count() - before; got != rounds {
		t.Fatalf("%d products created by %d rounds of %d racers sharing a commandId, want %d", got, rounds, racers, rounds)
	}
}
