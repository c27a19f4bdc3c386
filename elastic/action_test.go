package elastic

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/splitstream/splitstream/projector"
)

// TestWriteAction checks bulk action lines against what they must say,
// ids that need escaping included.
func TestWriteAction(t *testing.T) {
	for _, c := range []struct {
		w    projector.Write
		want map[string]map[string]any
	}{
		{projector.Write{Ref: projector.Ref{ID: "p-1"}, Op: projector.Create},
			map[string]map[string]any{"create": {"_index": "ix", "_id": "p-1"}}},
		{projector.Write{Ref: projector.Ref{ID: `a"b\c` + "\n\u00e9"}, Op: projector.IfMatch, SeqNo: 12, PrimaryTerm: 3},
			map[string]map[string]any{"index": {"_index": "ix", "_id": `a"b\c` + "\n\u00e9", "if_seq_no": 12.0, "if_primary_term": 3.0}}},
		{projector.Write{Ref: projector.Ref{ID: "cp"}, Op: projector.Overwrite},
			map[string]map[string]any{"index": {"_index": "ix", "_id": "cp"}}},
	} {
		var buf bytes.Buffer
		writeAction(&buf, c.w, "ix")
		line := buf.Bytes()
		if bytes.Count(line, []byte("\n")) != 1 || line[len(line)-1] != '\n' {
			t.Fatalf("action line %q is not one line", line)
		}
		var got map[string]map[string]any
		if err := json.Unmarshal(line, &got); err != nil {
			t.Fatalf("action line %q: %v", line, err)
		}
		if !reflect.DeepEqual(got, c.want) {
			t.Fatalf("action line %q, want %v", line, c.want)
		}
	}
}
