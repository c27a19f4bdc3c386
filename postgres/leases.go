package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// MaxLanes bounds SPLITSTREAM_PROJECTOR_LANES: a lane is one queue, one
// lease row and one checkpoint document each.
const MaxLanes = 255

// ErrLanesChanged is a process configured with another number of lanes
// than the deployment recorded.
var ErrLanesChanged = errors.New("projector lanes changed")

// CheckLanes records lanes as the deployment's number of projector lanes
// when none is recorded yet, and otherwise refuses any other number: events
// routed by one P and consumed by another would be folded out of order, so
// changing P is a rebuild (docs/SCALING.md), never a restart.
func CheckLanes(ctx context.Context, pool *pgxpool.Pool, lanes int) error {
	if pool == nil {
		return errors.New("postgres: nil pool")
	}
	if lanes < 1 || lanes > MaxLanes {
		return fmt.Errorf("SPLITSTREAM_PROJECTOR_LANES=%d: must be 1..%d", lanes, MaxLanes)
	}
	var stored string
	err := pool.QueryRow(ctx, `INSERT INTO deployment_settings (name, value) VALUES ('projector_lanes', $1)
		ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name RETURNING value`, strconv.Itoa(lanes)).Scan(&stored)
	if err != nil {
		return fmt.Errorf("check projector lanes: %w", err)
	}
	if stored != strconv.Itoa(lanes) {
		return fmt.Errorf("%w: this deployment has %s projector lanes, this process is configured with %d (SPLITSTREAM_PROJECTOR_LANES); "+
			"set it back to %s, or change it for every process with a rebuild (docs/SCALING.md, \"Changing P\")", ErrLanesChanged, stored, lanes, stored)
	}
	return nil
}

// Leases are the projector lanes' claims (Axon's token claims): a member
// holds a lane until its lease expires unless it renews it, and every claim
// bumps the lane's epoch, which the lane's checkpoint carries so that a
// deposed holder's late writes are refused. Expiry is judged by Postgres's
// clock alone, so members' clocks need not agree.
type Leases struct {
	pool   *pgxpool.Pool
	member string
	ttl    time.Duration
}

// NewLeases returns member's view of the leases; a lease it takes or renews
// lasts ttl.
func NewLeases(pool *pgxpool.Pool, member string, ttl time.Duration) (*Leases, error) {
	switch {
	case pool == nil:
		return nil, errors.New("postgres: nil pool")
	case member == "":
		return nil, errors.New("postgres: empty lease member name")
	case ttl <= 0:
		return nil, errors.New("postgres: lease TTL must be positive")
	}
	return &Leases{pool: pool, member: member, ttl: ttl}, nil
}

func (l *Leases) ttlMillis() int64 { return l.ttl.Milliseconds() }

// Heartbeat records that the member is alive and returns the live members
// (itself included), sorted: those seen within the TTL.
func (l *Leases) Heartbeat(ctx context.Context) ([]string, error) {
	rows, err := l.pool.Query(ctx, `WITH me AS (
			INSERT INTO projector_members (member, seen_at) VALUES ($1, now())
			ON CONFLICT (member) DO UPDATE SET seen_at = now() RETURNING member)
		SELECT member FROM projector_members WHERE seen_at > now() - $2 * interval '1 millisecond' AND member <> $1
		UNION SELECT member FROM me ORDER BY 1`, l.member, l.ttlMillis())
	if err != nil {
		return nil, fmt.Errorf("projector heartbeat: %w", err)
	}
	members, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("projector heartbeat: %w", err)
	}
	return members, nil
}

// Claim takes lane when nobody holds it or its lease has expired, and
// returns the new epoch; ok is false when another member holds it.
func (l *Leases) Claim(ctx context.Context, lane int) (epoch int64, ok bool, err error) {
	err = l.pool.QueryRow(ctx, `WITH c AS (
			INSERT INTO projector_leases AS p (lane, holder, epoch, expires_at) VALUES ($1, $2, 1, now() + $3 * interval '1 millisecond')
			ON CONFLICT (lane) DO UPDATE SET holder = EXCLUDED.holder, epoch = p.epoch + 1, expires_at = EXCLUDED.expires_at
			WHERE p.holder IS NULL OR p.expires_at < now()
			RETURNING lane, epoch, expires_at)
		INSERT INTO projector_lease_log (lane, member, epoch, action, expires_at)
		SELECT lane, $2, epoch, 'claim', expires_at FROM c RETURNING epoch`, lane, l.member, l.ttlMillis()).Scan(&epoch)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("claim lane %d: %w", lane, err)
	}
	return epoch, true, nil
}

// Renew extends the leases the member still holds under the given epochs
// (lane -> epoch) and returns those it extended; a lease that expired or
// was claimed by another member is not among them.
func (l *Leases) Renew(ctx context.Context, held map[int]int64) (map[int]int64, error) {
	out := map[int]int64{}
	if len(held) == 0 {
		return out, nil
	}
	lanes, epochs := make([]int32, 0, len(held)), make([]int64, 0, len(held))
	for lane, e := range held {
		lanes, epochs = append(lanes, int32(lane)), append(epochs, e)
	}
	rows, err := l.pool.Query(ctx, `UPDATE projector_leases p SET expires_at = now() + $2 * interval '1 millisecond'
		FROM unnest($3::int[], $4::bigint[]) AS h(lane, epoch)
		WHERE p.lane = h.lane AND p.epoch = h.epoch AND p.holder = $1 AND p.expires_at >= now()
		RETURNING p.lane, p.epoch`, l.member, l.ttlMillis(), lanes, epochs)
	if err != nil {
		return nil, fmt.Errorf("renew lanes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var lane int32
		var e int64
		if err := rows.Scan(&lane, &e); err != nil {
			return nil, fmt.Errorf("renew lanes: %w", err)
		}
		out[int(lane)] = e
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("renew lanes: %w", err)
	}
	return out, nil
}

// Release gives lane up, if the member still holds it under epoch.
func (l *Leases) Release(ctx context.Context, lane int, epoch int64) error {
	_, err := l.pool.Exec(ctx, `WITH r AS (
			UPDATE projector_leases SET holder = NULL, expires_at = '-infinity'
			WHERE lane = $1 AND holder = $2 AND epoch = $3 RETURNING lane, epoch)
		INSERT INTO projector_lease_log (lane, member, epoch, action) SELECT lane, $2, epoch, 'release' FROM r`,
		lane, l.member, epoch)
	if err != nil {
		return fmt.Errorf("release lane %d: %w", lane, err)
	}
	return nil
}

// Leave removes the member from the live ones, so the others rebalance
// without waiting for its heartbeat to age (its leases are released by
// then, one by one, with Release).
func (l *Leases) Leave(ctx context.Context) error {
	if _, err := l.pool.Exec(ctx, `DELETE FROM projector_members WHERE member = $1`, l.member); err != nil {
		return fmt.Errorf("leave projector members: %w", err)
	}
	return nil
}

// LeaseEntry is one line of projector_lease_log.
type LeaseEntry struct {
	Lane   int
	Member string
	Epoch  int64
	Action string // "claim" or "release"
	At     time.Time
}

// LeaseLog returns the whole claim and release log in order, for
// operators and tests.
func LeaseLog(ctx context.Context, pool *pgxpool.Pool) ([]LeaseEntry, error) {
	rows, err := pool.Query(ctx, `SELECT lane, member, epoch, action, at FROM projector_lease_log ORDER BY id`)
	if err != nil {
		return nil, fmt.Errorf("read lease log: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (LeaseEntry, error) {
		var e LeaseEntry
		return e, r.Scan(&e.Lane, &e.Member, &e.Epoch, &e.Action, &e.At)
	})
	if err != nil {
		return nil, fmt.Errorf("read lease log: %w", err)
	}
	return out, nil
}
