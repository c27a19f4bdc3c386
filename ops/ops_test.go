package ops

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// A check that returns a Note stays green and shows the note; any other
// error turns /readyz red.
func TestReadyzNotes(t *testing.T) {
	get := func(checks []Check) (int, map[string]any) {
		rec := httptest.NewRecorder()
		Mux(checks, prometheus.NewRegistry()).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		return rec.Code, body
	}
	note := Check{Name: "projector", Fn: func(context.Context) error { return Note("3 dead letters waiting") }}
	code, body := get([]Check{note})
	if code != http.StatusOK || body["checks"].(map[string]any)["projector"] != "ok: 3 dead letters waiting" {
		t.Errorf("with a note: %d %v", code, body)
	}
	bad := Check{Name: "es", Fn: func(context.Context) error { return errors.New("down") }}
	if code, body := get([]Check{note, bad}); code != http.StatusServiceUnavailable {
		t.Errorf("with a failure: %d %v", code, body)
	}
}
