package projector

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/splitstream/splitstream/query"
)

// countingStore is a store in memory that counts the reads reaching it
// and can fail or conflict on demand.
type countingStore struct {
	docs     map[Ref]Stored
	reads    int
	seq      int64
	fail     bool // the next Write fails as a whole
	conflict bool // the next Write's first item conflicts
}

func (s *countingStore) Get(_ context.Context, refs []Ref) ([]Stored, error) {
	s.reads += len(refs)
	out := make([]Stored, len(refs))
	for i, r := range refs {
		out[i] = s.docs[r]
		out[i].Ref = r
	}
	return out, nil
}

func (s *countingStore) Write(_ context.Context, writes []Write) ([]WriteResult, error) {
	if s.fail {
		s.fail = false
		return nil, errors.New("bulk failed")
	}
	out := make([]WriteResult, len(writes))
	for i, w := range writes {
		if i == 0 && s.conflict {
			s.conflict = false
			out[i].Err = fmt.Errorf("%w", ErrConflict)
			continue
		}
		s.seq++
		s.docs[w.Ref] = Stored{Ref: w.Ref, Found: true, SeqNo: s.seq, PrimaryTerm: 1, Source: w.Doc}
		out[i] = WriteResult{SeqNo: s.seq, PrimaryTerm: 1}
	}
	return out, nil
}

func (s *countingStore) ReviewStats(context.Context, []string) (map[string]query.ReviewStats, error) {
	return nil, nil
}

// TestMemoStore checks that a lane's memo answers reads of what it wrote
// (and of rebuilt documents it never wrote: absent) without the store, with
// the token the store gave; that other kinds are read from the store; and
// that after a failed bulk, a conflict, an outgrown budget or stop every
// read goes to the store again.
func TestMemoStore(t *testing.T) {
	ctx := context.Background()
	p1, p2 := Ref{Kind: query.Products.Name, ID: "p1"}, Ref{Kind: query.Products.Name, ID: "p2"}
	order := Ref{Kind: query.Orders.Name, ID: "o1"}
	rebuilt := map[Kind]string{query.Products.Name: "ix"}
	for _, stopBy := range []string{"failed bulk", "conflict", "budget", "stop"} {
		t.Run(stopBy, func(t *testing.T) {
			inner := &countingStore{docs: map[Ref]Stored{}}
			m := newMemoStore(inner, rebuilt, 1<<20)
			if _, err := m.Write(ctx, []Write{{Ref: p1, Doc: []byte(`{"id":"p1"}`)}}); err != nil {
				t.Fatal(err)
			}
			got, err := m.Get(ctx, []Ref{p1, p2, order})
			if err != nil {
				t.Fatal(err)
			}
			if inner.reads != 1 || !got[0].Found || got[0].SeqNo != 1 || string(got[0].Source) != `{"id":"p1"}` || got[1].Found || got[2].Ref != order {
				t.Fatalf("memo answered %+v with %d reads of the store, want p1 at seq 1, p2 absent, only the order read", got, inner.reads)
			}
			switch stopBy {
			case "failed bulk":
				inner.fail = true
				_, _ = m.Write(ctx, []Write{{Ref: p2, Doc: []byte(`{}`)}})
			case "conflict":
				_, _ = m.Write(ctx, []Write{{Ref: p2, Doc: []byte(`{}`)}})
				inner.conflict = true
				_, _ = m.Write(ctx, []Write{{Ref: p2, Doc: []byte(`{}`)}})
			case "budget":
				m.budget = 200
				_, _ = m.Write(ctx, []Write{{Ref: p2, Doc: make([]byte, 200)}})
			case "stop":
				m.stop()
			}
			inner.reads = 0
			if _, err := m.Get(ctx, []Ref{p1, p2}); err != nil {
				t.Fatal(err)
			}
			if inner.reads != 2 || m.active() {
				t.Fatalf("after %s the memo still answers: %d reads of the store, want 2", stopBy, inner.reads)
			}
		})
	}
}
