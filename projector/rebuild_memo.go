package projector

import (
	"context"
	"errors"

	"github.com/splitstream/splitstream/query"
)

// DefaultRebuildMemory is Rebuild.Memory's default: how many bytes of
// documents the lanes together keep in memory while they fill the fresh
// indices.
const DefaultRebuildMemory = 256 << 20

// memoStore is one lane's store while the rebuild fills the fresh indices:
// it keeps every rebuilt document the lane has written, with its
// concurrency token, and answers the lane's reads of them itself, so a
// batch does not read back from Elasticsearch what the batches before it
// wrote.
//
// That is safe only while the lane is the one writer of its documents:
// nobody else writes the fresh indices before the swap, and a lane holds
// whole document families (query.LaneOfEvent), so a rebuilt document the
// lane has not written does not exist. A read of any other document (a
// kind not rebuilt, read from the live aliases; the checkpoint) goes to
// the store beneath. The memo stops for good, and every read goes to the
// store beneath again, when its documents outgrow its budget, when a
// write's outcome is unknown (the bulk request failed as a whole) or when
// a write finds a conflict (what it knew was wrong); and before the catch
// up after the swap, where the live projector writes the same indices.
type memoStore struct {
	Store
	kept   map[Kind]bool // the rebuilt kinds the projector reads (folded ones; not events)
	budget int64
	used   int64
	docs   map[Ref]Stored // nil once stopped
}

func newMemoStore(s Store, rebuilt map[Kind]string, budget int64) *memoStore {
	m := &memoStore{Store: s, kept: map[Kind]bool{}, budget: budget}
	for kind := range rebuilt {
		if k, ok := query.KindNamed(kind); ok && k.Apply != nil {
			m.kept[kind] = true
		}
	}
	if budget > 0 {
		m.docs = map[Ref]Stored{}
	}
	return m
}

// stop sends every later read to the store beneath.
func (m *memoStore) stop() { m.docs, m.used = nil, 0 }

// active reports whether the memo still answers reads.
func (m *memoStore) active() bool { return m.docs != nil }

func (m *memoStore) mine(r Ref) bool { return m.kept[r.Kind] }

func (m *memoStore) Get(ctx context.Context, refs []Ref) ([]Stored, error) {
	if m.docs == nil {
		return m.Store.Get(ctx, refs)
	}
	out := make([]Stored, len(refs))
	var rest []Ref
	var at []int
	for i, r := range refs {
		if !m.mine(r) {
			rest, at = append(rest, r), append(at, i)
			continue
		}
		if s, ok := m.docs[r]; ok {
			out[i] = s
		} else {
			out[i] = Stored{Ref: r}
		}
	}
	if len(rest) > 0 {
		got, err := m.Store.Get(ctx, rest)
		if err != nil {
			return nil, err
		}
		for j, i := range at {
			out[i] = got[j]
		}
	}
	return out, nil
}

func (m *memoStore) Write(ctx context.Context, writes []Write) ([]WriteResult, error) {
	res, err := m.Store.Write(ctx, writes)
	if m.docs == nil {
		return res, err
	}
	if err != nil {
		m.stop() // any of the writes may have been applied, or not
		return res, err
	}
	for i, r := range res {
		w := writes[i]
		if !m.mine(w.Ref) {
			continue
		}
		switch {
		case r.Err == nil:
			m.keep(Stored{Ref: w.Ref, Found: true, SeqNo: r.SeqNo, PrimaryTerm: r.PrimaryTerm, Source: w.Doc})
		case errors.Is(r.Err, ErrConflict):
			m.stop()
			return res, nil
		}
		if m.docs == nil {
			return res, nil
		}
	}
	return res, nil
}

// keep remembers s, or stops the memo when it no longer fits its budget.
func (m *memoStore) keep(s Stored) {
	old := m.docs[s.Ref]
	m.used += int64(len(s.Source) - len(old.Source))
	if old.Source == nil {
		m.used += int64(len(s.Ref.Kind)+len(s.Ref.ID)) + memoEntry
	}
	if m.used > m.budget {
		m.stop()
		return
	}
	m.docs[s.Ref] = s
}

// memoEntry is about what one remembered document costs besides its
// source and its id.
const memoEntry = 96
