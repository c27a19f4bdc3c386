package command

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream"
)

// Option configures a Service.
type Option func(*Service) error

// WithMetrics counts commands by mutation and outcome, times them, and
// counts the events they append, on reg.
func WithMetrics(reg prometheus.Registerer) Option {
	return func(s *Service) error {
		m := &metrics{
			commands: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "splitstream_commands_total",
				Help: "Commands by mutation and outcome (ok, or the error code).",
			}, []string{"mutation", "outcome"}),
			latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "splitstream_command_seconds",
				Help:    "Command latency by mutation, from the service's call to the commit.",
				Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
			}, []string{"mutation"}),
			appended: prometheus.NewCounter(prometheus.CounterOpts{
				Name: "splitstream_events_appended_total",
				Help: "Events appended to the event store by commands.",
			}),
		}
		for _, c := range []prometheus.Collector{m.commands, m.latency, m.appended} {
			if err := reg.Register(c); err != nil {
				return err
			}
		}
		s.metrics = m
		return nil
	}
}

type metrics struct {
	commands *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	appended prometheus.Counter
}

// observe records one command; appended is how many events it added.
func (m *metrics) observe(mutation Name, start time.Time, appended int, err error) {
	if m == nil {
		return
	}
	outcome := "ok"
	if err != nil {
		outcome = splitstream.ErrorCode(err)
	}
	m.commands.WithLabelValues(string(mutation), outcome).Inc()
	m.latency.WithLabelValues(string(mutation)).Observe(time.Since(start).Seconds())
	m.appended.Add(float64(appended))
}
