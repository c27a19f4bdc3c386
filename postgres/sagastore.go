package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/saga"
)

// SagaStore keeps the order sagas' state and deadlines in the sagas table.
// Rows are created by a trigger on the events table when an order is placed
// (migration 00002), so an order has a deadline even if no saga process
// ever sees its OrderPlaced message; Start creates the row too, for safety.
type SagaStore struct {
	pool *pgxpool.Pool
}

var _ saga.Store = (*SagaStore)(nil)

// NewSagaStore returns a store on pool; it refuses a nil pool.
func NewSagaStore(pool *pgxpool.Pool) (*SagaStore, error) {
	if pool == nil {
		return nil, errors.New("postgres: nil pool for the saga store")
	}
	return &SagaStore{pool: pool}, nil
}

// Start registers the saga unless it is there, marks it started, and
// returns its state.
func (s *SagaStore) Start(ctx context.Context, orderID string, placedAt time.Time) (saga.State, bool, error) {
	var started bool
	err := s.pool.QueryRow(ctx, `INSERT INTO sagas (order_id, placed_at, started_at) VALUES ($1, $2, now())
		ON CONFLICT (order_id) DO UPDATE SET started_at = now() WHERE sagas.started_at IS NULL
		RETURNING true`, orderID, placedAt).Scan(&started)
	if err != nil && !errors.Is(err, pgx.ErrNoRows) {
		return saga.State{}, false, fmt.Errorf("start saga %s: %w", orderID, err)
	}
	st := saga.State{OrderID: orderID}
	var reason *string
	err = s.pool.QueryRow(ctx, `SELECT status, reason, placed_at FROM sagas WHERE order_id = $1`, orderID).
		Scan(&st.Status, &reason, &st.PlacedAt)
	if err != nil {
		return saga.State{}, false, fmt.Errorf("read saga %s: %w", orderID, err)
	}
	if reason != nil {
		st.Reason = *reason
	}
	return st, started, nil
}

// Decide stores reason unless a reason is stored, and returns the stored one.
func (s *SagaStore) Decide(ctx context.Context, orderID, reason string) (string, error) {
	var stored string
	err := s.pool.QueryRow(ctx, `UPDATE sagas SET reason = COALESCE(reason, $2) WHERE order_id = $1 RETURNING reason`,
		orderID, reason).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("decide saga %s: no such saga", orderID)
	}
	if err != nil {
		return "", fmt.Errorf("decide saga %s: %w", orderID, err)
	}
	return stored, nil
}

// Close records the outcome: open → any outcome, confirmed → cancelled.
// A saga with no row (an order placed before the sagas existed, cancelled
// before its OrderPlaced was handled) has nothing to close.
func (s *SagaStore) Close(ctx context.Context, orderID, outcome string) (bool, time.Time, error) {
	var (
		wasOpen  bool
		placedAt time.Time
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var status string
		err := tx.QueryRow(ctx, `SELECT status, placed_at FROM sagas WHERE order_id = $1 FOR UPDATE`, orderID).
			Scan(&status, &placedAt)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if status == outcome || (status != saga.StatusOpen && !(status == saga.StatusConfirmed && outcome == saga.StatusCancelled)) {
			return nil
		}
		wasOpen = status == saga.StatusOpen
		_, err = tx.Exec(ctx, `UPDATE sagas SET status = $2, closed_at = now(), claimed_until = NULL WHERE order_id = $1`,
			orderID, outcome)
		return err
	})
	if err != nil {
		return false, time.Time{}, fmt.Errorf("close saga %s as %s: %w", orderID, outcome, err)
	}
	return wasOpen, placedAt, nil
}

// ClaimExpired claims open sagas placed more than deadline ago that no
// other pass holds, oldest first. Claiming is one short transaction that
// moves claimed_until forward; SKIP LOCKED keeps concurrent passes (several
// saga processes) from waiting on each other or taking the same rows, and a
// process that dies after claiming only delays its rows by the lease.
func (s *SagaStore) ClaimExpired(ctx context.Context, deadline, lease time.Duration, limit int) ([]string, error) {
	rows, err := s.pool.Query(ctx, `WITH claimed AS (
			UPDATE sagas SET claimed_until = now() + $2::bigint * interval '1 microsecond'
			WHERE order_id IN (
				SELECT order_id FROM sagas
				WHERE status = 'open'
				  AND placed_at <= now() - $1::bigint * interval '1 microsecond'
				  AND (claimed_until IS NULL OR claimed_until <= now())
				ORDER BY placed_at
				LIMIT $3
				FOR UPDATE SKIP LOCKED)
			RETURNING order_id, placed_at)
		SELECT order_id FROM claimed ORDER BY placed_at`, deadline.Microseconds(), lease.Microseconds(), limit)
	if err != nil {
		return nil, fmt.Errorf("claim expired sagas: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("claim expired sagas: %w", err)
	}
	return ids, nil
}

var _ saga.Counter = (*SagaStore)(nil)

// Count returns how many sagas are open and how many of them were placed
// more than deadline ago (the partial index on open sagas serves both).
func (s *SagaStore) Count(ctx context.Context, deadline time.Duration) (saga.Counts, error) {
	var c saga.Counts
	err := s.pool.QueryRow(ctx, `SELECT count(*), count(*) FILTER (WHERE placed_at <= now() - $1::bigint * interval '1 microsecond')
		FROM sagas WHERE status = 'open'`, deadline.Microseconds()).Scan(&c.Open, &c.PastDeadline)
	if err != nil {
		return saga.Counts{}, fmt.Errorf("count open sagas: %w", err)
	}
	return c, nil
}
