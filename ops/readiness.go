package ops

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Readiness runs a process's checks on a timer and exports the outcome as
// metrics, so an alert can see a check that fails, or flaps, between two
// probes: splitstream_ready{check} (1 passing, 0 failing) and
// splitstream_readiness_changes_total{check} (how often it turned).
type Readiness struct {
	checks  []Check
	ready   *prometheus.GaugeVec
	changes *prometheus.CounterVec
	last    map[string]bool
}

// NewReadiness registers the readiness metrics of checks on reg. Every
// series exists from the start (ready at 0 until the first round), so the
// alert rules see them before anything fails.
func NewReadiness(reg prometheus.Registerer, checks []Check) (*Readiness, error) {
	r := &Readiness{
		checks: checks,
		ready: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "splitstream_ready",
			Help: "1 while the readiness check passes (as /readyz would say), 0 while it fails; refreshed every few seconds.",
		}, []string{"check"}),
		changes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "splitstream_readiness_changes_total",
			Help: "Times the readiness check turned from passing to failing or back.",
		}, []string{"check"}),
		last: map[string]bool{},
	}
	for _, c := range []prometheus.Collector{r.ready, r.changes} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("readiness metrics: %w", err)
		}
	}
	names := make([]string, 0, len(checks))
	for _, c := range checks {
		names = append(names, c.Name)
	}
	sort.Strings(names)
	for _, n := range names {
		r.ready.WithLabelValues(n)
		r.changes.WithLabelValues(n)
	}
	return r, nil
}

// Round runs every check once (each with a 2 s limit) and updates the
// metrics.
func (r *Readiness) Round(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for name, err := range run(ctx, r.checks) {
		var note Note
		ok := err == nil || errors.As(err, &note)
		if before, seen := r.last[name]; seen && before != ok {
			r.changes.WithLabelValues(name).Inc()
		}
		r.last[name] = ok
		v := 0.0
		if ok {
			v = 1
		}
		r.ready.WithLabelValues(name).Set(v)
	}
}

// Run calls Round every interval until ctx ends.
func (r *Readiness) Run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r.Round(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}
