package postgres

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/tracing"
)

// EventStore appends and loads events, with optimistic concurrency and
// exactly-once commands.
type EventStore struct {
	pool   *pgxpool.Pool
	tracer trace.Tracer
}

var _ command.EventStore = (*EventStore)(nil)

// NewEventStore returns a store on pool; it refuses a nil pool.
func NewEventStore(pool *pgxpool.Pool, opts ...StoreOption) (*EventStore, error) {
	if pool == nil {
		return nil, errors.New("postgres: nil pool for the event store")
	}
	s := &EventStore{pool: pool, tracer: tracing.Tracer(nil)}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

const loadSQL = `SELECT position, tx_id::text::bigint, event_id::text, stream_id, stream_type, version,
	event_type, schema_version, data, metadata, occurred_at
	FROM events WHERE stream_id = $1 ORDER BY version`

// Load returns the stream's events, oldest first.
func (s *EventStore) Load(ctx context.Context, streamID string) ([]event.Envelope, error) {
	rows, err := s.pool.Query(ctx, loadSQL, streamID)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", streamID, err)
	}
	evs, _, err := scanStream(rows, streamID)
	return evs, err
}

// scanStream reads a stream's rows and the relay cursor of its last event.
func scanStream(rows pgx.Rows, streamID string) ([]event.Envelope, event.Cursor, error) {
	defer rows.Close()
	var (
		evs  []event.Envelope
		last event.Cursor
	)
	for rows.Next() {
		e, tx, err := scanEnvelope(rows)
		if err != nil {
			return nil, event.Cursor{}, fmt.Errorf("load %s: %w", streamID, err)
		}
		evs = append(evs, e)
		last = event.Cursor{Tx: tx, Position: e.Position}
	}
	if err := rows.Err(); err != nil {
		return nil, event.Cursor{}, fmt.Errorf("load %s: %w", streamID, err)
	}
	return evs, last, nil
}

func scanEnvelope(rows pgx.Rows) (event.Envelope, uint64, error) {
	var (
		e        event.Envelope
		tx       int64
		data     []byte
		metadata []byte
	)
	if err := rows.Scan(&e.Position, &tx, &e.ID, &e.StreamID, &e.StreamType, &e.Version,
		&e.Type, &e.SchemaVersion, &data, &metadata, &e.OccurredAt); err != nil {
		return e, 0, err
	}
	e.Data = json.RawMessage(data)
	if err := json.Unmarshal(metadata, &e.Metadata); err != nil {
		return e, 0, fmt.Errorf("metadata of %s: %w", e.ID, err)
	}
	return e, uint64(tx), nil
}

// LoadSince returns the stream's snapshot saved under foldVersion (nil when
// there is none) and the events after it. Both reads share one
// repeatable-read snapshot, in one round trip, so a snapshot saved between
// them cannot make events go missing.
func (s *EventStore) LoadSince(ctx context.Context, streamID string, foldVersion int) (*command.Snapshot, []event.Envelope, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("acquire: %w", err)
	}
	done := false
	defer func() {
		if !done {
			if _, err := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); err != nil {
				_ = conn.Conn().Close(context.WithoutCancel(ctx))
			}
		}
		conn.Release()
	}()
	b := &pgx.Batch{}
	b.Queue(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`)
	b.Queue(snapshotSQL, streamID, foldVersion)
	b.Queue(loadSinceSQL, streamID, foldVersion)
	b.Queue(`COMMIT`)
	results := conn.SendBatch(ctx, b)
	defer results.Close()
	if _, err := results.Exec(); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", streamID, err)
	}
	snap, _, err := scanSnapshot(results.QueryRow())
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", streamID, err)
	}
	rows, err := results.Query()
	if err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", streamID, err)
	}
	evs, _, err := scanStream(rows, streamID)
	if err != nil {
		return nil, nil, err
	}
	if _, err := results.Exec(); err != nil {
		return nil, nil, fmt.Errorf("load %s: %w", streamID, err)
	}
	done = true
	return snap, evs, nil
}

const snapshotSQL = `SELECT stream_type, version, state, tx_id::text::bigint, position
	FROM snapshots WHERE stream_id = $1 AND fold_version = $2`

// loadSinceSQL reads the events after the stream's usable snapshot (all of
// them when there is none).
const loadSinceSQL = `SELECT position, tx_id::text::bigint, event_id::text, stream_id, stream_type, version,
	event_type, schema_version, data, metadata, occurred_at
	FROM events WHERE stream_id = $1
	  AND version > COALESCE((SELECT version FROM snapshots WHERE stream_id = $1 AND fold_version = $2), 0)
	ORDER BY version`

// scanSnapshot reads a snapshot row: nil when there is none, and the relay
// cursor of the event it was taken at.
func scanSnapshot(row pgx.Row) (*command.Snapshot, event.Cursor, error) {
	var (
		snap  command.Snapshot
		state []byte
		tx    int64
		pos   int64
	)
	err := row.Scan(&snap.StreamType, &snap.Version, &state, &tx, &pos)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, event.Cursor{}, nil
	}
	if err != nil {
		return nil, event.Cursor{}, fmt.Errorf("snapshot: %w", err)
	}
	snap.State = json.RawMessage(state)
	return &snap, event.Cursor{Tx: uint64(tx), Position: pos}, nil
}

// changeRetrying (Change, inside its span) runs one command against one
// stream in a single transaction.
//
// A command id that was used before is answered from its record before
// anything is decided: a retry gets the first answer even when the world
// has changed since (its product discontinued, its order confirmed).
//
// The stream's advisory lock is taken before the transaction writes
// anything, so its transaction id is assigned while it holds the lock: for
// one stream, transaction-id order equals version order, and the relay, which
// publishes in (tx_id, position) order, keeps per-aggregate order.
func (s *EventStore) changeRetrying(ctx context.Context, c command.Change) (command.Result, error) {
	for {
		res, err := s.change(ctx, c)
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "23505" && pgErr.ConstraintName == "commands_pkey" {
			// A concurrent request with the same command id won: replay it.
			stored, found, err := s.storedResult(ctx, c)
			if err != nil || found {
				return stored, err
			}
			continue
		}
		return res, err
	}
}

// scope is the command-id space of c.
func scope(c command.Change) string {
	if c.Internal {
		return "internal"
	}
	return "client"
}

const commandSQL = `SELECT mutation, input_hash, result FROM commands WHERE scope = $1 AND command_id = $2`

// change runs one command in two round trips: BEGIN, the stream lock, the
// command-id lookup, the stream's snapshot and the events after it in one
// pipeline; the appends, the command record, a snapshot when one is due
// and COMMIT in a second.
func (s *EventStore) change(ctx context.Context, c command.Change) (res command.Result, err error) {
	var dec command.Decision
	if c.Fresh {
		// Nobody else knows the stream yet: look the command id up (unless
		// the service just made it), decide, then the appends and the
		// command record go in one round trip, one implicit transaction. A
		// concurrent request with the same command id fails the record's
		// primary key, which rolls the appends back; Change then replays the
		// stored result.
		if c.Lookup {
			if stored, found, err := s.storedResult(ctx, c); err != nil || found {
				return stored, err
			}
		}
		if dec, err = c.Decide(nil, nil); err != nil {
			return command.Result{}, err
		}
	}
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return command.Result{}, fmt.Errorf("acquire: %w", err)
	}
	committed := false
	defer func() {
		if !committed {
			// Also ends a transaction a failed pipeline left open; a
			// connection that cannot roll back is not reused.
			if _, rbErr := conn.Exec(context.WithoutCancel(ctx), "ROLLBACK"); rbErr != nil {
				_ = conn.Conn().Close(context.WithoutCancel(ctx))
			}
		}
		conn.Release()
	}()

	if c.Fresh {
		return s.appendAndCommit(ctx, conn, &committed, c, stream{}, dec, true)
	}
	l, err := lockAndLoad(ctx, conn, c)
	if err != nil || l.found {
		return l.stored, err
	}
	if err := l.check(c); err != nil {
		return command.Result{}, err
	}
	if dec, err = c.Decide(l.snap, l.history); err != nil {
		return command.Result{}, err
	}
	return s.appendAndCommit(ctx, conn, &committed, c, l.st, dec, false)
}

// loaded is what the first round trip of a change to an existing stream
// read: the command's stored result when it ran before (found), or the
// stream's snapshot, the events after it and where the stream stands.
type loaded struct {
	stored     command.Result
	found      bool
	snap       *command.Snapshot
	history    []event.Envelope
	st         stream
	streamType string // "" for a stream with no events
}

// lockAndLoad sends BEGIN, the stream lock, the command-id lookup, the
// stream's snapshot and the events after it in one pipeline.
func lockAndLoad(ctx context.Context, conn *pgxpool.Conn, c command.Change) (loaded, error) {
	read := &pgx.Batch{}
	read.Queue(`BEGIN`)
	read.Queue(`SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, c.Stream.ID)
	if c.Lookup {
		read.Queue(commandSQL, scope(c), c.CommandID)
	}
	read.Queue(snapshotSQL, c.Stream.ID, c.FoldVersion)
	read.Queue(loadSinceSQL, c.Stream.ID, c.FoldVersion)
	results := conn.SendBatch(ctx, read)
	defer results.Close()
	if _, err := results.Exec(); err != nil {
		return loaded{}, fmt.Errorf("begin: %w", err)
	}
	if _, err := results.Exec(); err != nil {
		return loaded{}, fmt.Errorf("lock %s: %w", c.Stream.ID, err)
	}
	if c.Lookup {
		stored, found, err := scanCommand(results.QueryRow(), c)
		if err != nil || found {
			return loaded{stored: stored, found: found}, err
		}
	}
	snap, last, err := scanSnapshot(results.QueryRow())
	if err != nil {
		return loaded{}, fmt.Errorf("load %s: %w", c.Stream.ID, err)
	}
	rows, err := results.Query()
	if err != nil {
		return loaded{}, fmt.Errorf("load %s: %w", c.Stream.ID, err)
	}
	history, tail, err := scanStream(rows, c.Stream.ID)
	if err != nil {
		return loaded{}, err
	}
	if err := results.Close(); err != nil {
		return loaded{}, fmt.Errorf("load %s: %w", c.Stream.ID, err)
	}
	l := loaded{snap: snap, history: history, st: stream{last: last}}
	if snap != nil {
		l.st.version, l.st.snapshot, l.streamType = snap.Version, snap.Version, snap.StreamType
	}
	if len(history) > 0 {
		l.st.version, l.st.last = history[len(history)-1].Version, tail
		if l.streamType == "" {
			l.streamType = history[0].StreamType
		}
	}
	return l, nil
}

// check refuses a change to another aggregate's stream (NOT_FOUND) and one
// whose expected version is not the stream's (CONFLICT).
func (l loaded) check(c command.Change) error {
	if l.streamType != "" && l.streamType != c.Stream.Type {
		return splitstream.NotFound("%s %s not found", c.Stream.Type, c.Stream.ID)
	}
	if c.ExpectedVersion != nil && *c.ExpectedVersion != l.st.version {
		return splitstream.Conflict(l.st.version, "%s %s is at version %d, not %d", c.Stream.Type, c.Stream.ID, l.st.version, *c.ExpectedVersion)
	}
	return nil
}

// stream is where a stream stands before a command: its version, the
// version of its usable snapshot (0 for none) and the relay cursor of its
// last event.
type stream struct {
	version  int
	snapshot int
	last     event.Cursor
}

// appendAndCommit sends the appends, the command record, the snapshot when
// one is due, and COMMIT in one pipeline (for fresh, a create, the pipeline
// is the transaction: no BEGIN went before and no COMMIT is sent).
func (s *EventStore) appendAndCommit(ctx context.Context, conn *pgxpool.Conn, committed *bool, c command.Change,
	st stream, dec command.Decision, fresh bool) (command.Result, error) {
	write, steps, err := appendBatch(c, st, dec, fresh)
	if err != nil {
		return command.Result{}, err
	}
	last, err := readAppend(conn.SendBatch(ctx, write), c, st.last, len(dec.Events), steps)
	if err != nil {
		return command.Result{}, err
	}
	*committed = true
	return command.Result{ID: c.Stream.ID, Version: st.version + len(dec.Events), Token: last.Token()}, nil
}

// appendSteps says which optional statements appendBatch queued: implicit
// is a batch that is a transaction of its own (no COMMIT queued).
type appendSteps struct{ implicit, record, snapshot bool }

// appendBatch queues one command's statements: an insert per event, the
// command's record when its id can come again, a snapshot when due, and
// COMMIT, so that a create is one round trip. With fresh (a create, whose
// transaction begins here) there is no BEGIN and no COMMIT: a batch is one
// pipeline ended by one Sync, which Postgres runs as one implicit
// transaction, so the statements commit together or not at all, as they
// would between BEGIN and COMMIT, for two statements fewer to execute.
// Otherwise lockAndLoad's BEGIN opened the transaction and COMMIT ends it.
func appendBatch(c command.Change, st stream, dec command.Decision, fresh bool) (*pgx.Batch, appendSteps, error) {
	steps := appendSteps{implicit: fresh, record: c.Lookup}
	metadata, err := json.Marshal(c.Metadata)
	if err != nil {
		return nil, steps, fmt.Errorf("metadata: %w", err)
	}
	write := &pgx.Batch{}
	for i, p := range dec.Events {
		typ, schema, data, err := event.Encode(p)
		if err != nil {
			return nil, steps, fmt.Errorf("encode %T: %w", p, err)
		}
		write.Queue(`INSERT INTO events (event_id, stream_id, stream_type, version, event_type, schema_version, data, metadata, occurred_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, clock_timestamp())
			RETURNING position, tx_id::text::bigint`,
			newEventID(), c.Stream.ID, c.Stream.Type, st.version+i+1, typ, schema, data, metadata)
	}
	// The result is what the stream's last event says, so the command's
	// record needs no second round trip for the appended positions.
	version := st.version + len(dec.Events)
	// Only a command id that can come again is recorded: one the service
	// generated (no commandId from the client) was never told to anyone
	// before the answer, so no retry can name it, and its record would be
	// a second row and index entry per mutation for nothing.
	if c.Lookup {
		write.Queue(`INSERT INTO commands (scope, command_id, mutation, input_hash, result)
			SELECT $1, $2, $3, $4, jsonb_build_object('id', $5::text, 'version', $6::int, 'tx', e.tx_id::text::bigint, 'position', e.position)
			FROM events e WHERE e.stream_id = $5 AND e.version = $6`,
			scope(c), c.CommandID, string(c.Mutation), c.InputHash, c.Stream.ID, version)
	}
	steps.snapshot = version > 0 && version-st.snapshot >= command.SnapshotEvery && dec.State != nil
	if steps.snapshot {
		state, err := dec.State()
		if err != nil {
			return nil, steps, fmt.Errorf("snapshot %s: %w", c.Stream.ID, err)
		}
		// Under the stream's lock, so nobody saves a later one meanwhile;
		// the guard only keeps an older fold from going back in time.
		write.Queue(`INSERT INTO snapshots (stream_id, stream_type, fold_version, version, state, tx_id, position)
			SELECT $1, $2, $3, $4, $5, e.tx_id, e.position FROM events e WHERE e.stream_id = $1 AND e.version = $4
			ON CONFLICT (stream_id) DO UPDATE SET stream_type = EXCLUDED.stream_type, fold_version = EXCLUDED.fold_version,
				version = EXCLUDED.version, state = EXCLUDED.state, tx_id = EXCLUDED.tx_id, position = EXCLUDED.position,
				saved_at = now()
			WHERE snapshots.version < EXCLUDED.version OR snapshots.fold_version <> EXCLUDED.fold_version`,
			c.Stream.ID, c.Stream.Type, c.FoldVersion, version, []byte(state))
	}
	if !fresh {
		write.Queue(`COMMIT`)
	}
	return write, steps, nil
}

// readAppend reads the answers of appendBatch's statements in order and
// returns the cursor of the last appended event; results is closed.
func readAppend(results pgx.BatchResults, c command.Change, last event.Cursor, events int, steps appendSteps) (event.Cursor, error) {
	fail := func(what string, err error) (event.Cursor, error) {
		results.Close()
		return event.Cursor{}, fmt.Errorf("%s: %w", what, err)
	}
	for range events {
		var txid int64
		if err := results.QueryRow().Scan(&last.Position, &txid); err != nil {
			return fail("append to "+c.Stream.ID, err)
		}
		last.Tx = uint64(txid)
	}
	if steps.record {
		if _, err := results.Exec(); err != nil {
			return fail("record command "+c.CommandID, err)
		}
	}
	if steps.snapshot {
		if _, err := results.Exec(); err != nil {
			return fail("snapshot "+c.Stream.ID, err)
		}
	}
	if !steps.implicit {
		if _, err := results.Exec(); err != nil {
			return fail("commit "+c.Stream.ID, err)
		}
	}
	// Closing reads the pipeline's end: for an implicit transaction, the
	// commit's answer.
	if err := results.Close(); err != nil {
		return event.Cursor{}, fmt.Errorf("commit %s: %w", c.Stream.ID, err)
	}
	return last, nil
}

// newEventID names a new event: a UUIDv7, time-ordered, so that ids made
// close together sort together (events are never looked up by id; the
// store relies on the id's randomness, not on an index, for uniqueness).
func newEventID() uuid.UUID {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does.
		return uuid.New()
	}
	return id
}

func (s *EventStore) storedResult(ctx context.Context, c command.Change) (command.Result, bool, error) {
	return scanCommand(s.pool.QueryRow(ctx, commandSQL, scope(c), c.CommandID), c)
}

// scanCommand reads a command record: not found, the stored result of the
// same command, or a CONFLICT for a command id reused with another input.
func scanCommand(row pgx.Row, c command.Change) (command.Result, bool, error) {
	var (
		mutation string
		hash     []byte
		stored   []byte
	)
	err := row.Scan(&mutation, &hash, &stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return command.Result{}, false, nil
	}
	if err != nil {
		return command.Result{}, false, fmt.Errorf("look up command %s: %w", c.CommandID, err)
	}
	if mutation != string(c.Mutation) || !bytes.Equal(hash, c.InputHash) {
		return command.Result{}, true, splitstream.Conflict(-1, "commandId %s was already used for a different command", c.CommandID)
	}
	var rec struct {
		ID       string `json:"id"`
		Version  int    `json:"version"`
		Tx       uint64 `json:"tx"`
		Position int64  `json:"position"`
	}
	if err := json.Unmarshal(stored, &rec); err != nil {
		return command.Result{}, true, fmt.Errorf("stored result of %s: %w", c.CommandID, err)
	}
	return command.Result{ID: rec.ID, Version: rec.Version, Token: event.Cursor{Tx: rec.Tx, Position: rec.Position}.Token()}, true, nil
}
