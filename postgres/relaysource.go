package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/relay"
)

// RelaySource is the events table read as the relay's outbox.
//
// Relay order is (tx_id, position), and Next returns only rows whose
// transaction id is below the xmin of the statement's own snapshot. Every
// transaction below xmin has ended, and a transaction that starts later gets
// a larger id, so that part of the log is final: nothing can ever appear
// behind the cursor (no skipped event when transactions commit out of
// position order), and a rolled-back transaction just is not there (no
// stall). The price: a transaction left open anywhere on the cluster holds
// the relay back until it ends; it never makes it skip.
//
// The relay polls, and Listen (notify.go) wakes it as soon as a command
// service announces a commit on EventsChannel. The NOTIFY is sent after the
// append's commit, not inside it: inside, NOTIFY would serialise every
// committing writer on one database-wide lock. Polling stays because xmin
// can move forward when a transaction that wrote no event ends, which no
// notice announces, and because a notice can be lost.
type RelaySource struct {
	pool       *pgxpool.Pool
	leadRetry  time.Duration // between attempts while another process leads
	pingEvery  time.Duration // how often the leader's lock connection is checked
	listenPing time.Duration // how long Listen waits in silence before it pings
}

var _ relay.Source = (*RelaySource)(nil)

// NewRelaySource returns a source on pool; it refuses a nil pool.
func NewRelaySource(pool *pgxpool.Pool) (*RelaySource, error) {
	if pool == nil {
		return nil, errors.New("postgres: nil pool for the relay source")
	}
	return &RelaySource{pool: pool, leadRetry: time.Second, pingEvery: time.Second, listenPing: time.Minute}, nil
}

// relayLockClass keys the relays' session advisory locks. The two-key form
// of pg_advisory_lock lives in another key space than the one-bigint form
// the event store locks streams with, so the two can never collide.
const relayLockClass = 0x5e1a7 // "relay"

// Lead takes the session advisory lock named after the relay, retrying
// every second while another session holds it. The lock's connection is
// taken out of the pool for the lease and closed on release, so the lock
// dies with it and a pooled connection never carries it to another user.
// The returned context ends when a periodic ping of that connection fails.
func (s *RelaySource) Lead(ctx context.Context, name string) (context.Context, func(), error) {
	for {
		conn, err := s.pool.Acquire(ctx)
		if err != nil {
			return nil, nil, fmt.Errorf("lead relay %s: %w", name, err)
		}
		var won bool
		err = conn.QueryRow(ctx, `SELECT pg_try_advisory_lock($1, hashtext($2))`, relayLockClass, name).Scan(&won)
		if err != nil {
			// The lock may have been taken even so: close the session.
			closeConn(conn.Hijack())
			return nil, nil, fmt.Errorf("lead relay %s: %w", name, err)
		}
		if won {
			leading, release := s.lease(ctx, conn.Hijack())
			return leading, release, nil
		}
		conn.Release()
		t := time.NewTimer(s.leadRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil, ctx.Err()
		case <-t.C:
		}
	}
}

// errReleased is the cause of a lease's context after a normal release.
var errReleased = errors.New("relay leadership released")

func (s *RelaySource) lease(parent context.Context, conn *pgx.Conn) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(parent)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(s.pingEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			pctx, stop := context.WithTimeout(ctx, 5*time.Second)
			err := conn.Ping(pctx)
			stop()
			if err != nil {
				cancel(fmt.Errorf("relay lock connection lost: %w", err))
				return
			}
		}
	}()
	var once sync.Once
	return ctx, func() {
		once.Do(func() {
			cancel(errReleased)
			<-done
			closeConn(conn)
		})
	}
}

func closeConn(c *pgx.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
}

// Checkpoint returns the saved cursor of the relay called name.
func (s *RelaySource) Checkpoint(ctx context.Context, name string) (event.Cursor, error) {
	var c event.Cursor
	var tx int64
	err := s.pool.QueryRow(ctx, `SELECT tx_id::text::bigint, position FROM relay_checkpoints WHERE name = $1`, name).
		Scan(&tx, &c.Position)
	if errors.Is(err, pgx.ErrNoRows) {
		return event.Cursor{}, nil
	}
	if err != nil {
		return event.Cursor{}, fmt.Errorf("relay checkpoint %s: %w", name, err)
	}
	c.Tx = uint64(tx)
	return c, nil
}

// Save moves the checkpoint of the relay called name forward to c; a cursor
// at or before the saved one changes nothing, so a deposed leader that saves
// late cannot move it back.
func (s *RelaySource) Save(ctx context.Context, name string, c event.Cursor) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO relay_checkpoints (name, tx_id, position) VALUES ($1, $2::text::xid8, $3)
		ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position, updated_at = now()
		WHERE (relay_checkpoints.tx_id, relay_checkpoints.position) < (EXCLUDED.tx_id, EXCLUDED.position)`,
		name, strconv.FormatUint(c.Tx, 10), c.Position)
	if err != nil {
		return fmt.Errorf("save relay checkpoint %s: %w", name, err)
	}
	return nil
}

var _ relay.LaneCheckpoints = (*RelaySource)(nil)

// LaneCheckpoint returns the last cursor the relay called name published
// in each lane, as saved with its checkpoint.
func (s *RelaySource) LaneCheckpoint(ctx context.Context, name string) ([]event.Cursor, error) {
	var pairs [][2]uint64
	err := s.pool.QueryRow(ctx, `SELECT lanes FROM relay_checkpoints WHERE name = $1`, name).Scan(&pairs)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("relay lane checkpoint %s: %w", name, err)
	}
	out := make([]event.Cursor, len(pairs))
	for i, p := range pairs {
		out[i] = event.Cursor{Tx: p[0], Position: int64(p[1])}
	}
	return out, nil
}

// SaveLanes is Save with the last cursor published in each lane, in one
// row, so the two never disagree.
func (s *RelaySource) SaveLanes(ctx context.Context, name string, c event.Cursor, lanes []event.Cursor) error {
	pairs := make([][2]uint64, len(lanes))
	for i, l := range lanes {
		pairs[i] = [2]uint64{l.Tx, uint64(l.Position)}
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO relay_checkpoints (name, tx_id, position, lanes) VALUES ($1, $2::text::xid8, $3, $4)
		ON CONFLICT (name) DO UPDATE SET tx_id = EXCLUDED.tx_id, position = EXCLUDED.position, lanes = EXCLUDED.lanes, updated_at = now()
		WHERE (relay_checkpoints.tx_id, relay_checkpoints.position) < (EXCLUDED.tx_id, EXCLUDED.position)`,
		name, strconv.FormatUint(c.Tx, 10), c.Position, pairs)
	if err != nil {
		return fmt.Errorf("save relay checkpoint %s: %w", name, err)
	}
	return nil
}

// nextSQL reads the final part of the log after a cursor. The xmin of
// pg_current_snapshot() is that of the statement's own snapshot, so every
// row below it that committed is visible to this very query. It runs as an
// index range scan of events_relay_order that stops after limit rows.
//
// ORDER BY names the table's columns (events.tx_id): a bare tx_id there
// would mean the output column tx_id::text::bigint, which no index has, and
// Postgres would sort the whole backlog for every batch.
// TestRelaySourceNextUsesIndex checks the plan.
const nextSQL = `SELECT position, tx_id::text::bigint AS tx, event_id::text, stream_id, stream_type, version,
	event_type, schema_version, data, metadata, occurred_at
	FROM events
	WHERE (tx_id, position) > ($1::text::xid8, $2)
	  AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
	ORDER BY events.tx_id, events.position
	LIMIT $3`

// Next returns up to limit events after the cursor, in relay order, from
// transactions that have all ended.
func (s *RelaySource) Next(ctx context.Context, after event.Cursor, limit int) ([]event.Record, error) {
	rows, err := s.pool.Query(ctx, nextSQL, strconv.FormatUint(after.Tx, 10), after.Position, limit)
	if err != nil {
		return nil, fmt.Errorf("read events after %d/%d: %w", after.Tx, after.Position, err)
	}
	defer rows.Close()
	var recs []event.Record
	prev := after
	for rows.Next() {
		e, tx, err := scanEnvelope(rows)
		if err != nil {
			return nil, fmt.Errorf("read events after %d/%d: %w", after.Tx, after.Position, err)
		}
		c := event.Cursor{Tx: tx, Position: e.Position}
		recs = append(recs, event.Record{Envelope: e, Cursor: c, Prev: prev})
		prev = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read events after %d/%d: %w", after.Tx, after.Position, err)
	}
	return recs, nil
}

// backlogCap bounds the rows Backlog counts, so that a large backlog (after
// a long broker outage) does not turn a metrics refresh into a scan of the
// table; the count then reads as "at least backlogCap".
const backlogCap = 1_000_000

// Backlog counts the committed events after the cursor, including those
// still above xmin, and the time of the oldest of them.
func (s *RelaySource) Backlog(ctx context.Context, after event.Cursor) (int64, time.Time, error) {
	var (
		count  int64
		oldest *time.Time
	)
	err := s.pool.QueryRow(ctx, `SELECT count(*), min(occurred_at) FROM (
		SELECT occurred_at FROM events WHERE (tx_id, position) > ($1::text::xid8, $2)
		ORDER BY tx_id, position LIMIT $3) backlog`,
		strconv.FormatUint(after.Tx, 10), after.Position, backlogCap).Scan(&count, &oldest)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("relay backlog: %w", err)
	}
	if oldest == nil {
		return count, time.Time{}, nil
	}
	return count, *oldest, nil
}

// horizonSQL finds the horizon Next reads below, whether committed events
// after the cursor wait behind it (an index probe from xmin), and the
// backend whose transaction it is: the one whose xid is xmin, or failing
// that one whose snapshot xmin is. xid8 is the 32-bit xid plus an epoch, so
// the backend's xid is compared with xmin modulo 2^32.
const horizonSQL = `WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT h.xmin::text::bigint,
	EXISTS (SELECT 1 FROM events WHERE tx_id >= h.xmin AND (tx_id, position) > ($1::text::xid8, $2)),
	b.pid, COALESCE(b.datname, ''), COALESCE(b.usename, ''), COALESCE(b.application_name, ''), COALESCE(b.state, ''),
	COALESCE(EXTRACT(epoch FROM clock_timestamp() - b.xact_start), 0)::float8
FROM h LEFT JOIN LATERAL (
	SELECT a.pid, a.datname, a.usename, a.application_name, a.state, a.xact_start,
		a.backend_xid::text::bigint = h.xmin::text::bigint % 4294967296 AS owns
	FROM pg_stat_activity a
	WHERE a.pid <> pg_backend_pid()
	  AND (a.backend_xid::text::bigint = h.xmin::text::bigint % 4294967296
	    OR a.backend_xmin::text::bigint = h.xmin::text::bigint % 4294967296)
	ORDER BY owns DESC, a.xact_start
	LIMIT 1) b ON true`

// Horizon reports whether the transaction horizon holds committed events
// after the cursor back from Next, and which backend holds it.
func (s *RelaySource) Horizon(ctx context.Context, after event.Cursor) (relay.Horizon, error) {
	var (
		h                    relay.Horizon
		xmin                 int64
		pid                  *int32
		db, user, app, state string
		open                 float64
	)
	err := s.pool.QueryRow(ctx, horizonSQL, strconv.FormatUint(after.Tx, 10), after.Position).
		Scan(&xmin, &h.Held, &pid, &db, &user, &app, &state, &open)
	if err != nil {
		return relay.Horizon{}, fmt.Errorf("relay horizon: %w", err)
	}
	h.Xmin = uint64(xmin)
	if pid != nil {
		h.PID = int(*pid)
		h.Blocker = fmt.Sprintf("pid %d (database %s, user %s, application %q, %s, transaction open %s)",
			h.PID, db, user, app, state, time.Duration(open*float64(time.Second)).Round(100*time.Millisecond))
	}
	return h, nil
}

// Count is how many events the log holds (a rebuild's progress).
func (s *RelaySource) Count(ctx context.Context) (int64, error) {
	var n int64
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM events`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count events: %w", err)
	}
	return n, nil
}
