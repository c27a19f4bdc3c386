package elastic_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
)

// A bulk Elasticsearch refuses as too large (413) is sent again one write
// at a time; the write too large on its own is refused for good (the
// projector dead-letters its events), the others go through.
func TestBulkTooLargeIsSplit(t *testing.T) {
	const limit = 1000
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Elastic-Product", "Elasticsearch")
		body, _ := io.ReadAll(r.Body)
		if len(body) > limit {
			w.WriteHeader(http.StatusRequestEntityTooLarge)
			_, _ = w.Write([]byte(`{"error":"request too large"}`))
			return
		}
		lines := bytes.Split(bytes.TrimSpace(body), []byte("\n"))
		var items []any
		for i := 0; i < len(lines); i += 2 {
			items = append(items, map[string]any{"create": map[string]any{"status": 201, "_seq_no": i, "_primary_term": 1}})
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"errors": false, "items": items})
	}))
	defer srv.Close()
	es, err := elastic.New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	s := elastic.NewDocStore(es, "x")
	small := json.RawMessage(`{"id":"a"}`)
	big := json.RawMessage(`{"id":"b","name":"` + strings.Repeat("x", 2*limit) + `"}`)
	res, err := s.Write(context.Background(), []projector.Write{
		{Ref: projector.Ref{Kind: query.Events.Name, ID: "a"}, Doc: small},
		{Ref: projector.Ref{Kind: query.Products.Name, ID: "b"}, Doc: big},
		{Ref: projector.Ref{Kind: query.Events.Name, ID: "c"}, Doc: small},
	})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Err != nil || res[2].Err != nil {
		t.Errorf("the small writes: %v, %v", res[0].Err, res[2].Err)
	}
	if res[1].Err == nil || res[1].Retryable || !strings.Contains(res[1].Err.Error(), "413") {
		t.Errorf("the write too large alone: %+v, want refused for good", res[1])
	}
}
