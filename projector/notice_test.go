package projector

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/query"
)

// The field names are the contract with the query service.
func TestNoticeJSON(t *testing.T) {
	n := Notice{
		Changes:   []Change{{Kind: query.Reviews.Name, ID: "r1", ProductID: "p1", Version: 1, Position: 9, SeqNo: 4, PrimaryTerm: 1, Types: []string{"ReviewAdded"}}},
		Watermark: event.Cursor{Tx: 77, Position: 9},
		At:        time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
	}
	raw, err := json.Marshal(n)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"changes":[{"kind":"review","id":"r1","productId":"p1","version":1,"position":9,"seqNo":4,"primaryTerm":1,"types":["ReviewAdded"]}],"watermark":{"tx":77,"position":9},"at":"2025-01-02T03:04:05Z"}`
	if string(raw) != want {
		t.Errorf("notice JSON\n got %s\nwant %s", raw, want)
	}
	back, err := DecodeNotice(raw)
	if err != nil || back.Watermark != n.Watermark || back.Changes[0].ProductID != "p1" {
		t.Errorf("DecodeNotice = %+v, %v", back, err)
	}
	newer := n.Changes[0]
	newer.SeqNo++
	if !newer.After(n.Changes[0]) || n.Changes[0].After(newer) {
		t.Error("Change.After does not order writes of a document")
	}
	if _, err := DecodeNotice([]byte(`{"changes":`)); err == nil {
		t.Error("DecodeNotice accepted a broken body")
	}
}
