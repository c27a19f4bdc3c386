package console

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Projector series without a lane label are the one lane "main"; series
// labelled lane="…" are lanes of their own, in name order.
func TestLanesFromTheRegistry(t *testing.T) {
	for _, c := range []struct {
		name   string
		labels []string
		want   []string
	}{
		{"one lane today", nil, []string{"main"}},
		{"lanes labelled", []string{"orders", "catalogue"}, []string{"catalogue", "orders"}},
	} {
		reg := prometheus.NewRegistry()
		var wm, lag *prometheus.GaugeVec
		if c.labels == nil {
			g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "splitstream_projector_watermark_position"})
			l := prometheus.NewGauge(prometheus.GaugeOpts{Name: "splitstream_projector_lag_seconds"})
			g.Set(7)
			l.Set(1.5)
			reg.MustRegister(g, l)
		} else {
			wm = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "splitstream_projector_watermark_position"}, []string{"lane"})
			lag = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "splitstream_projector_lag_seconds"}, []string{"lane"})
			reg.MustRegister(wm, lag)
			for _, l := range c.labels {
				wm.WithLabelValues(l).Set(7)
				lag.WithLabelValues(l).Set(1.5)
			}
		}
		f, err := gather(reg)
		if err != nil {
			t.Fatal(err)
		}
		got := lanes(f)
		if len(got) != len(c.want) {
			t.Fatalf("%s: lanes = %+v", c.name, got)
		}
		for i, l := range got {
			if l.Name != c.want[i] || l.WatermarkPosition != 7 || l.LagSeconds != 1.5 {
				t.Errorf("%s: lane %d = %+v, want %s at 7, lag 1.5", c.name, i, l, c.want[i])
			}
		}
		if relays(f) == nil || len(relays(f)) != 0 || sagas(f) != nil {
			t.Errorf("%s: no relay or saga series, yet relays %+v sagas %+v", c.name, relays(f), sagas(f))
		}
	}
}
