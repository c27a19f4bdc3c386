package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/projector"
)

// DeadLetters is the projector's dead-letter store: the dead_letters table.
//
// Why Postgres, and not the RabbitMQ dead-letter queue: a dead letter here
// is kept by document, and the projector must ask, for every batch, whether
// any document the batch touches has dead letters waiting (so later events
// follow them in order instead of being applied past them). That is one
// indexed query per batch against a table, where a queue can only be read
// front to back. Listing per document, showing one document's letters,
// replaying them in relay order and dropping them are plain queries too,
// and a letter is durable in the same database as the events it came from.
// The projector already reads Postgres to fill gaps; the RabbitMQ
// dead-letter queue stays for deliveries that cannot be read at all.
type DeadLetters struct {
	pool *pgxpool.Pool
}

var _ projector.DeadLetters = (*DeadLetters)(nil)

// NewDeadLetters returns the store on pool.
func NewDeadLetters(pool *pgxpool.Pool) (*DeadLetters, error) {
	if pool == nil {
		return nil, errors.New("postgres: nil pool")
	}
	return &DeadLetters{pool: pool}, nil
}

// Parked reports which of refs have dead letters waiting.
func (s *DeadLetters) Parked(ctx context.Context, refs []projector.Ref) (map[projector.Ref]bool, error) {
	out := map[projector.Ref]bool{}
	if len(refs) == 0 {
		return out, nil
	}
	kinds, ids := make([]string, len(refs)), make([]string, len(refs))
	for i, r := range refs {
		kinds[i], ids[i] = string(r.Kind), r.ID
	}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT d.doc_kind, d.doc_id FROM dead_letters d
		JOIN unnest($1::text[], $2::text[]) AS r(kind, id) ON d.doc_kind = r.kind AND d.doc_id = r.id`, kinds, ids)
	if err != nil {
		return nil, fmt.Errorf("parked documents: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var k, id string
		if err := rows.Scan(&k, &id); err != nil {
			return nil, fmt.Errorf("parked documents: %w", err)
		}
		out[projector.Ref{Kind: projector.Kind(k), ID: id}] = true
	}
	return out, rows.Err()
}

// Park stores letters in one transaction; a letter already there stays as it is.
func (s *DeadLetters) Park(ctx context.Context, letters []projector.Letter) error {
	if len(letters) == 0 {
		return nil
	}
	batch := &pgx.Batch{}
	for _, l := range letters {
		env, err := json.Marshal(l.Record.Envelope)
		if err != nil {
			return fmt.Errorf("park %s: %w", l.Record.Envelope.ID, err)
		}
		at := l.ParkedAt
		if at.IsZero() {
			at = time.Now()
		}
		batch.Queue(`INSERT INTO dead_letters (doc_kind, doc_id, event_id, tx, position, prev_tx, prev_pos, event_type, envelope, reason, parked_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT (doc_kind, doc_id, event_id) DO NOTHING`,
			string(l.Ref.Kind), l.Ref.ID, l.Record.Envelope.ID, int64(l.Record.Cursor.Tx), l.Record.Cursor.Position,
			int64(l.Record.Prev.Tx), l.Record.Prev.Position, l.Record.Envelope.Type, env, l.Reason, at)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error { return tx.SendBatch(ctx, batch).Close() })
	if err != nil {
		return fmt.Errorf("park %d dead letters: %w", len(letters), err)
	}
	return nil
}

// Count is how many dead letters wait.
func (s *DeadLetters) Count(ctx context.Context) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM dead_letters`).Scan(&n); err != nil {
		return 0, fmt.Errorf("count dead letters: %w", err)
	}
	return n, nil
}

// DocumentSummary is one parked document: how many letters wait and why.
type DocumentSummary struct {
	Ref     projector.Ref
	Letters int
	// Reasons counts the letters by reason.
	Reasons map[string]int
	First   time.Time // when its first letter was parked
}

// Documents lists every parked document, oldest first, at most limit.
func (s *DeadLetters) Documents(ctx context.Context, limit int) ([]DocumentSummary, error) {
	rows, err := s.pool.Query(ctx, `SELECT doc_kind, doc_id, reason, count(*), min(parked_at) FROM dead_letters
		GROUP BY doc_kind, doc_id, reason ORDER BY min(parked_at), doc_kind, doc_id`)
	if err != nil {
		return nil, fmt.Errorf("list dead letters: %w", err)
	}
	defer rows.Close()
	var out []DocumentSummary
	at := map[projector.Ref]int{}
	for rows.Next() {
		var (
			k, id, reason string
			n             int
			first         time.Time
		)
		if err := rows.Scan(&k, &id, &reason, &n, &first); err != nil {
			return nil, fmt.Errorf("list dead letters: %w", err)
		}
		ref := projector.Ref{Kind: projector.Kind(k), ID: id}
		i, ok := at[ref]
		if !ok {
			if len(out) >= limit {
				continue
			}
			i = len(out)
			at[ref] = i
			out = append(out, DocumentSummary{Ref: ref, Reasons: map[string]int{}, First: first})
		}
		out[i].Letters += n
		out[i].Reasons[reason] += n
		if first.Before(out[i].First) {
			out[i].First = first
		}
	}
	return out, rows.Err()
}

// StoredLetter is a dead letter as the store keeps it.
type StoredLetter struct {
	ID       int64
	Replayed int // times a replay tried it and it stayed dead
	projector.Letter
}

// Letters returns one document's dead letters in relay order.
func (s *DeadLetters) Letters(ctx context.Context, ref projector.Ref) ([]StoredLetter, error) {
	rows, err := s.pool.Query(ctx, `SELECT id, tx, position, prev_tx, prev_pos, envelope, reason, parked_at, replayed
		FROM dead_letters WHERE doc_kind = $1 AND doc_id = $2 ORDER BY tx, position`, string(ref.Kind), ref.ID)
	if err != nil {
		return nil, fmt.Errorf("dead letters of %s %s: %w", ref.Kind, ref.ID, err)
	}
	defer rows.Close()
	var out []StoredLetter
	for rows.Next() {
		var (
			l          StoredLetter
			tx, prevTx int64
			env        []byte
		)
		l.Ref = ref
		if err := rows.Scan(&l.ID, &tx, &l.Record.Cursor.Position, &prevTx, &l.Record.Prev.Position, &env, &l.Reason, &l.ParkedAt, &l.Replayed); err != nil {
			return nil, fmt.Errorf("dead letters of %s %s: %w", ref.Kind, ref.ID, err)
		}
		l.Record.Cursor.Tx, l.Record.Prev.Tx = uint64(tx), uint64(prevTx)
		if err := json.Unmarshal(env, &l.Record.Envelope); err != nil {
			return nil, fmt.Errorf("dead letter %d: %w", l.ID, err)
		}
		out = append(out, l)
	}
	return out, rows.Err()
}

// Remove deletes letters by id (after a replay applied them, or a drop).
func (s *DeadLetters) Remove(ctx context.Context, ids []int64) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM dead_letters WHERE id = ANY($1)`, ids)
	if err != nil {
		return 0, fmt.Errorf("remove dead letters: %w", err)
	}
	return int(tag.RowsAffected()), nil
}

// Redead records that a replay left a letter dead, with the new reason.
func (s *DeadLetters) Redead(ctx context.Context, id int64, reason string) error {
	if _, err := s.pool.Exec(ctx, `UPDATE dead_letters SET reason = $2, replayed = replayed + 1 WHERE id = $1`, id, reason); err != nil {
		return fmt.Errorf("update dead letter %d: %w", id, err)
	}
	return nil
}
