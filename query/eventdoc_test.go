package query

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/splitstream/splitstream/event"
)

// TestEventDocAppendJSON checks AppendJSON against encoding/json for
// documents with and without a product, metadata, data to compact and
// strings to escape: the same JSON value (encoding/json also escapes <, >
// and & in the data; the two agree byte for byte otherwise).
func TestEventDocAppendJSON(t *testing.T) {
	at := time.Date(2026, 12, 2, 18, 1, 2, 345678900, time.UTC)
	for _, d := range []Event{
		{ID: "e1", StreamID: "s1", StreamType: "product", ProductID: "s1", Version: 3, Type: "ProductRenamed", SchemaVersion: 2,
			Position: 99, Tx: 1 << 40, OccurredAt: at, Data: json.RawMessage(`{"name": "A <b> & \"c\"",  "n": [1, 2]}`),
			Metadata: event.Metadata{CommandID: "c1", Actor: "admin\u00e9"}},
		{ID: `e"2\`, StreamID: "s\n2", StreamType: "order", Type: "OrderPlaced", OccurredAt: at.In(time.FixedZone("x", 3600)),
			Metadata: event.Metadata{CorrelationID: "k", CausationID: "z", TraceParent: "t", TraceState: "u"}},
		{},
	} {
		want, err := json.Marshal(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := d.AppendJSON([]byte("x"))
		if err != nil {
			t.Fatal(err)
		}
		var g, w any
		if err := json.Unmarshal(got[1:], &g); err != nil || got[0] != 'x' {
			t.Fatalf("AppendJSON %s: %v", got, err)
		}
		if err := json.Unmarshal(want, &w); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(g, w) || (!bytes.ContainsAny(d.Data, "<>&") && !bytes.Equal(got[1:], want)) {
			t.Fatalf("AppendJSON\n%s\nwant x and\n%s", got, want)
		}
	}
	if _, err := (Event{Data: json.RawMessage(`{"a":`)}).AppendJSON(nil); err == nil {
		t.Fatal("AppendJSON took data that is not JSON")
	}
}
