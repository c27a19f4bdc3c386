package main

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
)

// lanesCaughtUp reports whether the relay has published the whole log and
// every lane's checkpoint covers the last record the relay published in
// that lane: then every event is applied.
func lanesCaughtUp(ctx context.Context, pool *pgxpool.Pool, searcher *elastic.Searcher) (bool, error) {
	var head event.Cursor
	err := pool.QueryRow(ctx, `SELECT tx_id::text::bigint, position FROM events ORDER BY tx_id DESC, position DESC LIMIT 1`).
		Scan(&head.Tx, &head.Position)
	if err != nil {
		return false, fmt.Errorf("log head: %w", err)
	}
	var relayed event.Cursor
	var lanes [][2]uint64
	err = pool.QueryRow(ctx, `SELECT tx_id::text::bigint, position, lanes FROM relay_checkpoints WHERE name = $1`, relayName).
		Scan(&relayed.Tx, &relayed.Position, &lanes)
	if err != nil || relayed.Less(head) {
		return false, fmt.Errorf("relayed up to %v of %v (%v)", relayed, head, err)
	}
	for n, l := range lanes {
		cp, err := searcher.LaneCheckpoint(ctx, n)
		if err != nil {
			return false, err
		}
		if want := (event.Cursor{Tx: l[0], Position: int64(l[1])}); cp.Less(want) {
			return false, fmt.Errorf("lane %d applied up to %v of %v", n, cp, want)
		}
	}
	return true, nil
}
