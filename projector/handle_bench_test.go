package projector

import (
	"context"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// nullStore finds nothing and accepts every write, so a benchmark times
// the projector's own work: admit, fold, encode. It counts the documents
// (not checkpoints) it was asked to write.
type nullStore struct{ written int }

func (*nullStore) Get(_ context.Context, refs []Ref) ([]Stored, error) {
	out := make([]Stored, len(refs))
	for i, r := range refs {
		out[i] = Stored{Ref: r}
	}
	return out, nil
}

func (s *nullStore) Write(_ context.Context, ws []Write) ([]WriteResult, error) {
	for _, w := range ws {
		if w.Ref.Kind != query.Checkpoints.Name {
			s.written++
		}
	}
	out := make([]WriteResult, len(ws))
	for i := range out {
		out[i] = WriteResult{SeqNo: int64(i + 1), PrimaryTerm: 1}
	}
	return out, nil
}

func (*nullStore) ReviewStats(context.Context, []string) (map[string]query.ReviewStats, error) {
	return nil, nil
}

// BenchmarkHandleCreations is the projector's CPU for a batch of 1,000
// product creations, as a backlog drain hands them over (the bench's
// projector suite drains such a backlog), per event.
func BenchmarkHandleCreations(b *testing.B) {
	store := &nullStore{}
	p, err := New(Config{Store: store, History: &memHistory{}, Notices: &memNotices{}, DeadLetters: NewMemoryDeadLetters(),
		Registerer: prometheus.NewRegistry(), Log: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	const size = 1000
	at := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	pos, prev := int64(0), event.Cursor{}
	batch := func() []Message {
		msgs := make([]Message, size)
		for i := range msgs {
			pos++
			typ, sv, data, err := event.Encode(event.ProductCreated{Name: fmt.Sprintf("Product %d", pos), Description: "A product made for the benchmark.",
				Category: "kitchen", PriceCents: 1999, Currency: "EUR", Stock: 10})
			if err != nil {
				b.Fatal(err)
			}
			e := event.Envelope{ID: fmt.Sprintf("ev-%d", pos), Position: pos, StreamID: fmt.Sprintf("p-%d", pos), StreamType: event.StreamProduct,
				Version: 1, Type: typ, SchemaVersion: sv, Data: data, OccurredAt: at}
			c := event.Cursor{Tx: uint64(pos), Position: pos}
			msgs[i] = Message{Record: event.Record{Envelope: e, Cursor: c, Prev: prev}, Chained: true}
			prev = c
		}
		return msgs
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		msgs := batch()
		b.StartTimer()
		vs, err := p.Handle(ctx, msgs)
		if err != nil {
			b.Fatal(err)
		}
		for i, v := range vs {
			if v.Action != Ack {
				b.Fatalf("message %d: %v (%s), want ack", i, v.Action, v.Reason)
			}
		}
	}
	// Each creation writes its product and its event document.
	if want := 2 * size * b.N; store.written != want {
		b.Fatalf("%d documents written, want %d", store.written, want)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*size), "ns/event")
}
