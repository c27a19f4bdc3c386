package elastic_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// TestDocStoreGuards checks the store's answers item by item against a real
// node: create-if-absent, write-if-unchanged, conflicts, and reads with the
// sequence numbers the guards need.
func TestDocStoreGuards(t *testing.T) {
	es, prefix := testenv.Elasticsearch(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := elastic.NewIndices(es, prefix, time.Second).Ensure(ctx); err != nil {
		t.Fatal(err)
	}
	s := elastic.NewDocStore(es, prefix)
	p1 := projector.Ref{Kind: query.Products.Name, ID: "p1"}
	ev := projector.Ref{Kind: query.Events.Name, ID: "e1"}
	doc := func(name string) json.RawMessage {
		return json.RawMessage(`{"id":"p1","name":"` + name + `","version":1}`)
	}

	got, err := s.Get(ctx, []projector.Ref{p1})
	if err != nil || len(got) != 1 || got[0].Found {
		t.Fatalf("Get before any write = %+v, %v", got, err)
	}
	res, err := s.Write(ctx, []projector.Write{
		{Ref: p1, Op: projector.Create, Doc: doc("Kettle")},
		{Ref: ev, Op: projector.Create, Doc: json.RawMessage(`{"id":"e1","type":"ProductCreated","data":{"x":1}}`)},
	})
	if err != nil || res[0].Err != nil || res[1].Err != nil {
		t.Fatalf("first write = %+v, %v", res, err)
	}
	got, err = s.Get(ctx, []projector.Ref{p1, ev})
	if err != nil || !got[0].Found || got[0].SeqNo != res[0].SeqNo || got[0].PrimaryTerm != res[0].PrimaryTerm {
		t.Fatalf("Get after write = %+v, %v; write said %+v", got, err, res[0])
	}

	res, err = s.Write(ctx, []projector.Write{
		{Ref: p1, Op: projector.Create, Doc: doc("again")},                                                                  // exists
		{Ref: ev, Op: projector.Create, Doc: json.RawMessage(`{"id":"e1"}`)},                                                // exists
		{Ref: p1, Op: projector.IfMatch, SeqNo: got[0].SeqNo, PrimaryTerm: got[0].PrimaryTerm, Doc: doc("Steel")},           // current
		{Ref: p1, Op: projector.IfMatch, SeqNo: got[0].SeqNo, PrimaryTerm: got[0].PrimaryTerm, Doc: doc("stale")},           // stale now
		{Ref: projector.Ref{Kind: query.Products.Name, ID: "p2"}, Op: projector.Create, Doc: json.RawMessage(`{"nope":1}`)}, // strict mapping
	})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []error{projector.ErrConflict, projector.ErrConflict, nil, projector.ErrConflict} {
		if !errors.Is(res[i].Err, want) || (want == nil) != (res[i].Err == nil) {
			t.Errorf("item %d: %v, want %v", i, res[i].Err, want)
		}
	}
	if res[4].Err == nil || errors.Is(res[4].Err, projector.ErrConflict) || res[4].Retryable {
		t.Errorf("a document the mapping refuses: %+v", res[4])
	}
	got, _ = s.Get(ctx, []projector.Ref{p1})
	var p struct{ Name string }
	_ = json.Unmarshal(got[0].Source, &p)
	if p.Name != "Steel" || got[0].SeqNo != res[2].SeqNo {
		t.Errorf("after the guarded writes: %s at seq %d, want Steel at %d", p.Name, got[0].SeqNo, res[2].SeqNo)
	}
}

func TestDocStoreUnavailable(t *testing.T) {
	es, err := elastic.New("http://127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	s := elastic.NewDocStore(es, "nowhere")
	_, err = s.Write(context.Background(), []projector.Write{{Ref: projector.Ref{Kind: query.Events.Name, ID: "e"}, Doc: json.RawMessage(`{}`)}})
	var ue *elastic.UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("write to a closed port: %v, want an UnavailableError", err)
	}
}
