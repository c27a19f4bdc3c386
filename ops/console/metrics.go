package console

import (
	"net/http"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/splitstream/splitstream/auth"
)

// Relay is one relay's backlog and transaction horizon.
type Relay struct {
	Name             string  `json:"name"`
	Leader           bool    `json:"leader"`
	Backlog          float64 `json:"backlog"`
	OldestAgeSeconds float64 `json:"oldestAgeSeconds"`
	HorizonHeld      float64 `json:"horizonHeldSeconds"`
	HorizonPID       float64 `json:"horizonBlockerPid"`
}

// Lane is one projector lane's watermark and lag. Today a projector has one
// lane ("main"); series labelled lane="…" become lanes of their own.
type Lane struct {
	Name              string  `json:"name"`
	WatermarkTx       float64 `json:"watermarkTx"`
	WatermarkPosition float64 `json:"watermarkPosition"`
	LagSeconds        float64 `json:"lagSeconds"`
	LagPositions      float64 `json:"lagPositions"`
	Held              float64 `json:"held"`
	BreakerOpen       bool    `json:"breakerOpen"`
	LastWrite         float64 `json:"lastWriteUnix"`
}

// Sagas is the census of the order sagas.
type Sagas struct {
	Open         *float64 `json:"open"`
	PastDeadline *float64 `json:"pastDeadline"`
	Started      float64  `json:"started"`
	Expired      float64  `json:"expiredTotal"`
}

// sample is one series: its labels and value.
type sample struct {
	labels map[string]string
	value  float64
}

type families map[string][]sample

// gather reads the gauges and counters of the registry once.
func gather(g prometheus.Gatherer) (families, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	out := families{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			s := sample{labels: map[string]string{}}
			for _, l := range m.GetLabel() {
				s.labels[l.GetName()] = l.GetValue()
			}
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				s.value = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				s.value = m.GetCounter().GetValue()
			default:
				continue
			}
			out[mf.GetName()] = append(out[mf.GetName()], s)
		}
	}
	return out, nil
}

// one is the sum of a family's series (false when it has none).
func (f families) one(name string) (float64, bool) {
	ss, ok := f[name]
	if !ok {
		return 0, false
	}
	var v float64
	for _, s := range ss {
		v += s.value
	}
	return v, true
}

// by groups a family's values by one label's value ("" when absent).
func (f families) by(name, label string) map[string]float64 {
	out := map[string]float64{}
	for _, s := range f[name] {
		out[s.labels[label]] += s.value
	}
	return out
}

func relays(f families) []Relay {
	out := []Relay{}
	backlog := f.by("splitstream_relay_backlog_events", "relay")
	age := f.by("splitstream_relay_backlog_oldest_age_seconds", "relay")
	held := f.by("splitstream_relay_horizon_held_seconds", "relay")
	pid := f.by("splitstream_relay_horizon_blocker_pid", "relay")
	leader := f.by("splitstream_relay_leader", "relay")
	for _, name := range sortedKeys(backlog) {
		out = append(out, Relay{Name: name, Leader: leader[name] == 1, Backlog: backlog[name], OldestAgeSeconds: age[name],
			HorizonHeld: held[name], HorizonPID: pid[name]})
	}
	return out
}

func lanes(f families) []Lane {
	out := []Lane{}
	wm := f.by("splitstream_projector_watermark_position", "lane")
	tx := f.by("splitstream_projector_watermark_tx", "lane")
	lag := f.by("splitstream_projector_lag_seconds", "lane")
	lagPos := f.by("splitstream_projector_lag_positions", "lane")
	held := f.by("splitstream_projector_held_records", "lane")
	breaker := f.by("splitstream_projector_breaker_open", "lane")
	last := f.by("splitstream_projector_last_write_timestamp_seconds", "lane")
	for _, name := range sortedKeys(wm) {
		label := name
		if label == "" {
			label = "main"
		}
		out = append(out, Lane{Name: label, WatermarkTx: tx[name], WatermarkPosition: wm[name], LagSeconds: lag[name],
			LagPositions: lagPos[name], Held: held[name], BreakerOpen: breaker[name] >= 1, LastWrite: last[name]})
	}
	return out
}

func sagas(f families) *Sagas {
	started, ok := f.one("splitstream_saga_started_total")
	if !ok {
		return nil
	}
	s := &Sagas{Started: started}
	s.Expired, _ = f.one("splitstream_saga_deadline_expiries_total")
	if v, ok := f.one("splitstream_saga_open"); ok {
		s.Open = &v
	}
	if v, ok := f.one("splitstream_saga_past_deadline"); ok {
		s.PastDeadline = &v
	}
	return s
}

// callerOf names the admin who made a request, for the log.
func callerOf(r *http.Request) string { return auth.CallerFrom(r.Context()).Subject }
