package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
)

// rawEvent is one row inserted by plain SQL, with the cursor Postgres gave it.
type rawEvent struct {
	id     string
	cursor event.Cursor
}

type querier interface {
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// insertRaw inserts one event row, in whatever transaction q is in.
func insertRaw(t testing.TB, ctx context.Context, q querier, stream string) rawEvent {
	t.Helper()
	var (
		e  rawEvent
		tx int64
	)
	err := q.QueryRow(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, occurred_at)
		VALUES (gen_random_uuid(), $1, 'product', 1, 'ProductRenamed', 1, '{"name":"x"}', '{}', clock_timestamp())
		RETURNING event_id::text, tx_id::text::bigint, position`, stream).Scan(&e.id, &tx, &e.cursor.Position)
	if err != nil {
		t.Fatalf("insert into %s: %v", stream, err)
	}
	e.cursor.Tx = uint64(tx)
	return e
}

func exec(t testing.TB, ctx context.Context, c *pgx.Conn, sql string) {
	t.Helper()
	if _, err := c.Exec(ctx, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

func connect(t testing.TB, ctx context.Context, url string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// reader drains a source the way the relay does, and checks what it sees.
type reader struct {
	t    testing.TB
	src  *postgres.RelaySource
	cur  event.Cursor
	seen map[string]event.Cursor
}

// drain reads until Next returns nothing, checking that the cursor only
// moves forward and that each record's Prev is the record before it.
func (r *reader) drain(ctx context.Context) []event.Record {
	r.t.Helper()
	var all []event.Record
	for {
		recs, err := r.src.Next(ctx, r.cur, 3)
		if err != nil {
			r.t.Fatal(err)
		}
		if len(recs) == 0 {
			return all
		}
		for _, rec := range recs {
			if rec.Prev != r.cur {
				r.t.Fatalf("record %v has Prev %v, want %v", rec.Cursor, rec.Prev, r.cur)
			}
			if !r.cur.Less(rec.Cursor) {
				r.t.Fatalf("cursor went from %v to %v", r.cur, rec.Cursor)
			}
			if at, dup := r.seen[rec.Envelope.ID]; dup {
				r.t.Fatalf("event %s returned twice (at %v and %v)", rec.Envelope.ID, at, rec.Cursor)
			}
			r.seen[rec.Envelope.ID] = rec.Cursor
			r.cur = rec.Cursor
		}
		all = append(all, recs...)
	}
}

// TestRelaySourceRace reproduces the race that loses events with a
// position-only cursor, 100 times, with the order in which the open
// transactions end shuffled each time:
//
//   - A inserts first (lowest position) and stays open while B and C insert
//     after it and commit;
//   - D inserts and later rolls back;
//   - E takes its transaction id before F, F inserts, then E inserts: E has
//     the lower transaction id but the higher position.
//
// After every step the reader must not have moved past any event of a still
// open transaction (that event would be skipped when it commits), must
// eventually get every committed event below the oldest open one, and at
// the end must have everything committed exactly once and nothing of D.
// raceRound is one iteration of TestRelaySourceRace: the events of the
// transactions still open, those that committed and the one rolled back.
type raceRound struct {
	t          *testing.T
	ctx        context.Context
	r          *reader
	iter       int
	open       map[string]rawEvent
	committed  map[string]rawEvent
	rolledBack rawEvent
}

// check drains the source and asserts that the cursor passed no open
// event, that every event committed below the oldest open transaction came,
// and that the rolled-back one never did.
func (rr *raceRound) check(step string) {
	rr.t.Helper()
	t, ctx, r, iter, open, committed, rolledBack := rr.t, rr.ctx, rr.r, rr.iter, rr.open, rr.committed, rr.rolledBack
	r.drain(ctx)
	for n, o := range open {
		if !r.cur.Less(o.cursor) {
			t.Fatalf("iteration %d, %s: cursor %v passed %s's open event %v", iter, step, r.cur, n, o.cursor)
		}
	}
	// Everything committed below the oldest open transaction must
	// come, at the latest once transactions elsewhere on the server
	// (other tests) have moved xmin past it.
	oldest := uint64(1<<63 - 1)
	for _, o := range open {
		oldest = min(oldest, o.cursor.Tx)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		missing := ""
		for n, c := range committed {
			if _, ok := r.seen[c.id]; !ok && c.cursor.Tx < oldest {
				missing = n
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("iteration %d, %s: %s's committed event %v never came (cursor %v)", iter, step, missing, committed[missing].cursor, r.cur)
		}
		time.Sleep(5 * time.Millisecond)
		r.drain(ctx)
	}
	if _, ok := r.seen[rolledBack.id]; ok && rolledBack.id != "" {
		t.Fatalf("iteration %d, %s: rolled-back event returned", iter, step)
	}
}

func TestRelaySourceRace(t *testing.T) {
	dbURL, pool := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := testenv.RelaySource(t, pool)
	conns := map[string]*pgx.Conn{}
	for _, n := range []string{"A", "B", "C", "D", "E", "F"} {
		conns[n] = connect(t, ctx, dbURL)
	}
	r := &reader{t: t, src: src, seen: map[string]event.Cursor{}}
	rng := rand.New(rand.NewPCG(1, uint64(time.Now().UnixNano())))

	for iter := range 100 {
		stream := func(n string) string { return fmt.Sprintf("race-%d-%s", iter, n) }
		open := map[string]rawEvent{}      // events of transactions still open
		committed := map[string]rawEvent{} // events of this iteration that committed

		exec(t, ctx, conns["A"], "BEGIN")
		open["A"] = insertRaw(t, ctx, conns["A"], stream("A"))
		exec(t, ctx, conns["D"], "BEGIN")
		open["D"] = insertRaw(t, ctx, conns["D"], stream("D"))
		for _, n := range []string{"B", "C"} {
			exec(t, ctx, conns[n], "BEGIN")
			committed[n] = insertRaw(t, ctx, conns[n], stream(n))
			exec(t, ctx, conns[n], "COMMIT")
		}
		exec(t, ctx, conns["E"], "BEGIN")
		var xidE int64
		if err := conns["E"].QueryRow(ctx, `SELECT pg_current_xact_id()::text::bigint`).Scan(&xidE); err != nil {
			t.Fatal(err)
		}
		exec(t, ctx, conns["F"], "BEGIN")
		open["F"] = insertRaw(t, ctx, conns["F"], stream("F"))
		open["E"] = insertRaw(t, ctx, conns["E"], stream("E"))
		if e, f := open["E"], open["F"]; !(e.cursor.Tx < f.cursor.Tx && e.cursor.Position > f.cursor.Position) {
			t.Fatalf("setup: E %v should have the lower xid and the higher position than F %v", e.cursor, f.cursor)
		}

		round := &raceRound{t: t, ctx: ctx, r: r, iter: iter, open: open, committed: committed}
		check := round.check
		check("A, D, E, F open")

		ends := []string{"A", "D", "E", "F"}
		rng.Shuffle(len(ends), func(i, j int) { ends[i], ends[j] = ends[j], ends[i] })
		for _, n := range ends {
			if n == "D" {
				exec(t, ctx, conns[n], "ROLLBACK")
				round.rolledBack = open[n]
			} else {
				exec(t, ctx, conns[n], "COMMIT")
				committed[n] = open[n]
			}
			delete(open, n)
			check("after " + n + " ended (order " + strings.Join(ends, "") + ")")
		}
		for n, c := range committed {
			if _, ok := r.seen[c.id]; !ok {
				t.Fatalf("iteration %d: %s's event never returned", iter, n)
			}
		}
	}
	if len(r.seen) != 5*100 {
		t.Fatalf("returned %d events, want %d", len(r.seen), 5*100)
	}
}

// TestRelaySourceConcurrentWriters lets writers commit and roll back
// transactions of one to three events with pauses inside, while a reader
// drains in small batches. Every committed event must arrive exactly once,
// in an order that only moves forward, with an unbroken Prev chain.
// writeConcurrent is one transaction of writer w in
// TestRelaySourceConcurrentWriters: one to three events of stream w<w>-<i>,
// inserted with short pauses, then committed four times in five.
func writeConcurrent(ctx context.Context, pool *pgxpool.Pool, rng *rand.Rand, w, i int) (ids []string, commit bool, err error) {
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, false, err
	}
	defer tx.Rollback(ctx)
	for j := range 1 + rng.IntN(3) {
		var id string
		err := tx.QueryRow(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, occurred_at)
			VALUES (gen_random_uuid(), $1, 'product', $2, 'ProductRenamed', 1, '{"name":"x"}', '{}', clock_timestamp())
			RETURNING event_id::text`, fmt.Sprintf("w%d-%d", w, i), j+1).Scan(&id)
		if err != nil {
			return nil, false, err
		}
		ids = append(ids, id)
		time.Sleep(time.Duration(rng.IntN(2000)) * time.Microsecond)
	}
	if rng.IntN(5) > 0 {
		if err := tx.Commit(ctx); err != nil {
			return nil, false, err
		}
		return ids, true, nil
	}
	return ids, false, nil
}

func TestRelaySourceConcurrentWriters(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	src := testenv.RelaySource(t, pool)

	var (
		mu        sync.Mutex
		committed = map[string]bool{}
		aborted   = map[string]bool{}
		wg        sync.WaitGroup
		errs      = make(chan error, 16)
	)
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), uint64(time.Now().UnixNano())))
			for i := range 40 {
				ids, commit, err := writeConcurrent(ctx, pool, rng, w, i)
				if err == nil {
					mu.Lock()
					for _, id := range ids {
						if commit {
							committed[id] = true
						} else {
							aborted[id] = true
						}
					}
					mu.Unlock()
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	writersDone := make(chan struct{})
	go func() { wg.Wait(); close(writersDone) }()

	r := &reader{t: t, src: src, seen: map[string]event.Cursor{}}
	var deadline <-chan time.Time // set once the writers are done
	for {
		r.drain(ctx)
		if deadline != nil && len(r.seen) >= len(committed) {
			break
		}
		select {
		case err := <-errs:
			t.Fatal(err)
		case <-writersDone:
			writersDone, deadline = nil, time.After(15*time.Second)
		case <-time.After(time.Millisecond):
		case <-deadline:
			t.Fatalf("15s after the writers finished: %d of %d events", len(r.seen), len(committed))
		}
	}
	for id := range committed {
		if _, ok := r.seen[id]; !ok {
			t.Errorf("committed event %s never returned", id)
		}
	}
	for id := range r.seen {
		if aborted[id] {
			t.Errorf("rolled-back event %s returned", id)
		}
		if !committed[id] {
			t.Errorf("unknown event %s returned", id)
		}
	}
	t.Logf("%d committed events read once each; %d rolled back", len(committed), len(aborted))
}

// TestRelaySourceNextEnvelope checks that Next returns an event appended by
// the event store with every field the store loads, in one piece.
func TestRelaySourceNextEnvelope(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx := context.Background()
	store := testenv.EventStore(t, pool)
	res, err := store.Change(ctx, command.Change{
		Stream: command.Stream{ID: "p-1", Type: event.StreamProduct}, Mutation: "createProduct", CommandID: "cmd-1",
		InputHash: []byte{1}, Metadata: event.Metadata{CommandID: "cmd-1", CorrelationID: "corr-1", CausationID: "cause-1", Actor: "ada"},
		Decide: func(*command.Snapshot, []event.Envelope) (command.Decision, error) {
			return command.Decision{Events: []event.Payload{
				event.ProductCreated{Name: "Kettle", Category: "kitchen", PriceCents: 100, Currency: "EUR", Stock: 1},
				event.ProductRenamed{Name: "Steel kettle"},
			}}, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	want, err := store.Load(ctx, "p-1")
	if err != nil {
		t.Fatal(err)
	}
	// A transaction open anywhere on the server (another test's) holds the
	// events back until it ends: wait for them.
	var recs []event.Record
	for deadline := time.Now().Add(10 * time.Second); len(recs) < 2 && time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if recs, err = testenv.RelaySource(t, pool).Next(ctx, event.Cursor{}, 10); err != nil {
			t.Fatal(err)
		}
	}
	if len(recs) != 2 {
		t.Fatalf("Next returned %d records, want 2", len(recs))
	}
	token, _ := event.ParseToken(res.Token)
	if recs[1].Cursor != token {
		t.Errorf("last cursor %v, the mutation's token says %v", recs[1].Cursor, token)
	}
	if recs[0].Prev != (event.Cursor{}) || recs[1].Prev != recs[0].Cursor {
		t.Errorf("Prev chain: %v, %v", recs[0].Prev, recs[1].Prev)
	}
	for i, rec := range recs {
		got, w := rec.Envelope, want[i]
		if got.ID != w.ID || got.StreamID != w.StreamID || got.StreamType != w.StreamType || got.Version != w.Version ||
			got.Type != w.Type || got.SchemaVersion != w.SchemaVersion || string(got.Data) != string(w.Data) ||
			got.Metadata != w.Metadata || !got.OccurredAt.Equal(w.OccurredAt) || got.Position != rec.Cursor.Position {
			t.Errorf("record %d: got %+v, want %+v", i, got, w)
		}
	}
}

// TestRelaySourceNextUsesIndex EXPLAINs the statement Next runs (not a copy)
// at a backlog of 120k events written by 120 transactions, as a broker
// outage leaves behind: it must be a range scan of events_relay_order that
// stops after the batch, with no Sort node (a sort reads the whole backlog
// for every batch, so a drain grows with the square of the backlog) and no
// Seq Scan. Both the custom plan and the generic one a prepared statement
// settles on after five runs are checked, from the start of the log and
// from the middle.
func TestRelaySourceNextUsesIndex(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const txs, perTx = 120, 1000
	for i := range txs {
		if _, err := pool.Exec(ctx, `INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, occurred_at)
			SELECT gen_random_uuid(), 's' || $1::int || '-' || g, 'product', 1, 'ProductRenamed', 1, '{"name":"x"}', '{"actor":"test"}', now()
			FROM generate_series(1, $2::int) g`, i, perTx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := pool.Exec(ctx, `ANALYZE events`); err != nil {
		t.Fatal(err)
	}
	var mid event.Cursor
	var tx int64
	if err := pool.QueryRow(ctx, `SELECT tx_id::text::bigint, position FROM events ORDER BY tx_id, position OFFSET $1 LIMIT 1`,
		txs*perTx/2).Scan(&tx, &mid.Position); err != nil {
		t.Fatal(err)
	}
	mid.Tx = uint64(tx)
	for _, mode := range []string{"force_custom_plan", "force_generic_plan"} {
		for name, after := range map[string]event.Cursor{"start": {}, "middle": mid} {
			conn, err := pool.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(ctx, "SET plan_cache_mode = "+mode); err != nil {
				t.Fatal(err)
			}
			var plan []map[string]any
			err = conn.QueryRow(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+postgres.NextSQL,
				fmt.Sprint(after.Tx), after.Position, 500).Scan(&plan)
			_, _ = conn.Exec(ctx, "RESET plan_cache_mode")
			conn.Release()
			if err != nil {
				t.Fatal(err)
			}
			root := plan[0]["Plan"].(map[string]any)
			var nodes []string
			var scanned float64
			var walk func(n map[string]any)
			walk = func(n map[string]any) {
				nodes = append(nodes, fmt.Sprintf("%v %v", n["Node Type"], n["Index Name"]))
				if n["Node Type"] == "Index Scan" {
					scanned += n["Actual Rows"].(float64)
				}
				kids, _ := n["Plans"].([]any)
				for _, k := range kids {
					walk(k.(map[string]any))
				}
			}
			walk(root)
			text := strings.Join(nodes, " > ")
			t.Logf("%s, from %s: %s (execution %v ms)", mode, name, text, plan[0]["Execution Time"])
			if !slices.Contains(nodes, "Index Scan events_relay_order") {
				t.Errorf("%s, from %s: no Index Scan of events_relay_order: %s", mode, name, text)
			}
			for _, n := range nodes {
				if strings.Contains(n, "Sort") || strings.Contains(n, "Seq Scan") {
					t.Errorf("%s, from %s: plan has a %s: %s", mode, name, n, text)
				}
			}
			// The scan stops at the batch: it reads 500 rows, not the backlog.
			if scanned != 500 {
				t.Errorf("%s, from %s: index scan returned %v rows, want 500: %s", mode, name, scanned, text)
			}
		}
	}
}

func TestRelaySourceCheckpoint(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx := context.Background()
	src := testenv.RelaySource(t, pool)
	get := func(name string) event.Cursor {
		t.Helper()
		c, err := src.Checkpoint(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	save := func(name string, c event.Cursor) {
		t.Helper()
		if err := src.Save(ctx, name, c); err != nil {
			t.Fatal(err)
		}
	}
	if c := get("default"); !c.IsZero() {
		t.Fatalf("new checkpoint %v, want zero", c)
	}
	big := event.Cursor{Tx: 1 << 40, Position: 10}
	save("default", big)
	if c := get("default"); c != big {
		t.Fatalf("checkpoint %v, want %v", c, big)
	}
	save("default", event.Cursor{Tx: 1<<40 - 1, Position: 99}) // behind: ignored
	save("default", event.Cursor{Tx: 1 << 40, Position: 9})    // behind: ignored
	if c := get("default"); c != big {
		t.Fatalf("checkpoint moved back to %v", c)
	}
	ahead := event.Cursor{Tx: 1 << 40, Position: 11}
	save("default", ahead)
	if c := get("default"); c != ahead {
		t.Fatalf("checkpoint %v, want %v", c, ahead)
	}
	if c := get("other"); !c.IsZero() {
		t.Fatalf("another relay's checkpoint is %v, want zero", c)
	}
}

func TestRelaySourceBacklog(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx := context.Background()
	src := testenv.RelaySource(t, pool)
	if n, oldest, err := src.Backlog(ctx, event.Cursor{}); err != nil || n != 0 || !oldest.IsZero() {
		t.Fatalf("empty log: Backlog = %d, %v, %v", n, oldest, err)
	}
	var evs []rawEvent
	for i := range 3 {
		evs = append(evs, insertRaw(t, ctx, pool, fmt.Sprint("s", i)))
	}
	var first time.Time
	if err := pool.QueryRow(ctx, `SELECT occurred_at FROM events WHERE event_id = $1`, evs[0].id).Scan(&first); err != nil {
		t.Fatal(err)
	}
	for i, want := range []int64{3, 2, 1, 0} {
		after := event.Cursor{}
		if i > 0 {
			after = evs[i-1].cursor
		}
		n, oldest, err := src.Backlog(ctx, after)
		if err != nil || n != want {
			t.Fatalf("Backlog after %v = %d, %v; want %d", after, n, err, want)
		}
		if i == 0 && !oldest.Equal(first) {
			t.Errorf("oldest = %v, want %v", oldest, first)
		}
		if want == 0 && !oldest.IsZero() {
			t.Errorf("oldest of nothing = %v", oldest)
		}
	}
}

// TestRelaySourceLeadIsExclusive: one leader per name; another waits and
// takes over once the first releases; another name is independent.
func TestRelaySourceLeadIsExclusive(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := testenv.RelaySource(t, pool)
	leading, release, err := src.Lead(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	second := make(chan func(), 1)
	go func() {
		_, rel, err := src.Lead(ctx, "default")
		if err != nil {
			t.Error(err)
			close(second)
			return
		}
		second <- rel
	}()
	select {
	case <-second:
		t.Fatal("a second relay led while the first did")
	case <-time.After(1500 * time.Millisecond):
	}
	_, relOther, err := src.Lead(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	relOther()
	release()
	if context.Cause(leading) == nil {
		t.Error("the released lease's context did not end")
	}
	select {
	case rel := <-second:
		if rel != nil {
			rel()
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second relay did not take over after release")
	}
}

// TestRelaySourceLeaseEndsWhenConnectionDies: killing the session that holds
// the lock ends the lease's context, and leading again works.
func TestRelaySourceLeaseEndsWhenConnectionDies(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	src := testenv.RelaySource(t, pool)
	leading, release, err := src.Lead(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	var killed bool
	if err := pool.QueryRow(ctx, `SELECT pg_terminate_backend(pid) FROM pg_locks
		WHERE locktype = 'advisory' AND objsubid = 2 AND granted
		  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the lock's session: %v, %v", killed, err)
	}
	select {
	case <-leading.Done():
		if cause := context.Cause(leading); cause == nil || errors.Is(cause, context.Canceled) {
			t.Errorf("lease ended with cause %v, want the connection loss", cause)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the lease outlived its connection")
	}
	release()
	_, rel, err := src.Lead(ctx, "default")
	if err != nil {
		t.Fatal(err)
	}
	rel()
}
