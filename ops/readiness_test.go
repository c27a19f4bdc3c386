package ops

import (
	"context"
	"errors"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// splitstream_ready follows each check, a note counts as passing, and
// every turn is counted once.
func TestReadinessMetrics(t *testing.T) {
	failing := false
	reg := prometheus.NewRegistry()
	r, err := NewReadiness(reg, []Check{
		{Name: "flaky", Fn: func(context.Context) error {
			if failing {
				return errors.New("down")
			}
			return nil
		}},
		{Name: "noted", Fn: func(context.Context) error { return Note("3 waiting") }},
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := testutil.CollectAndCount(reg, "splitstream_ready"); n != 2 {
		t.Fatalf("%d ready series before the first round, want 2", n)
	}
	for _, f := range []bool{false, true, true, false, true} {
		failing = f
		r.Round(context.Background())
	}
	if v := testutil.ToFloat64(r.ready.WithLabelValues("flaky")); v != 0 {
		t.Errorf("flaky ready = %v, want 0", v)
	}
	if v := testutil.ToFloat64(r.ready.WithLabelValues("noted")); v != 1 {
		t.Errorf("noted ready = %v, want 1", v)
	}
	if v := testutil.ToFloat64(r.changes.WithLabelValues("flaky")); v != 3 {
		t.Errorf("flaky changes = %v, want 3", v)
	}
	if v := testutil.ToFloat64(r.changes.WithLabelValues("noted")); v != 0 {
		t.Errorf("noted changes = %v, want 0", v)
	}
}
