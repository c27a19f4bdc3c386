package projector

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/event"
)

// Outcomes counted per event type.
const (
	outcomeApplied   = "applied"
	outcomeDuplicate = "duplicate"
	outcomeDead      = "dead"
	outcomeRetry     = "retry"
)

type metrics struct {
	events      *prometheus.CounterVec
	dead        prometheus.Counter
	bulkItems   prometheus.Histogram
	bulkSeconds prometheus.Histogram
	retries     *prometheus.CounterVec
	batchSecs   prometheus.Histogram
	holesFilled prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, p *Projector) (*metrics, error) {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "splitstream_projector_events_total",
			Help: "Events handled by the projector, by event type and outcome (applied, duplicate, dead, retry).",
		}, []string{"type", "outcome"}),
		dead: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "splitstream_projector_dead_lettered_total",
			Help: "Messages dead-lettered: to the dead-letter queue (cannot be read or applied) or parked in the dead-letter store (a document refused for good, or behind one).",
		}),
		bulkItems: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "splitstream_projector_bulk_items",
			Help:    "Writes per bulk request to Elasticsearch.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 13),
		}),
		bulkSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "splitstream_projector_bulk_seconds",
			Help:    "Latency of bulk requests to Elasticsearch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "splitstream_projector_write_retries_total",
			Help: "Writes sent again, by reason (conflict, unavailable). A write refused for good is not sent again: its events are dead-lettered.",
		}, []string{"reason"}),
		holesFilled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "splitstream_projector_hole_records_total",
			Help: "Records read from the event log to fill a hole in the watermark that redelivery did not fill.",
		}),
		batchSecs: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "splitstream_projector_batch_seconds",
			Help:    "Time from receiving a batch to having it durable, retries included.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 18),
		}),
	}
	for _, c := range append([]prometheus.Collector{m.events, m.dead, m.bulkItems, m.bulkSeconds, m.retries, m.batchSecs, m.holesFilled}, gauges(p)...) {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("projector metrics: %w (one projector per registry)", err)
			}
			return nil, fmt.Errorf("projector metrics: %w", err)
		}
	}
	return m, nil
}

// gauges read the projector's state when scraped.
func gauges(p *Projector) []prometheus.Collector {
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "splitstream_projector_lag_seconds",
			Help: "While a batch is being written, the age of its oldest event; otherwise how old the newest applied event was when it was written, or 0 once the queue has been idle with nothing held back.",
		}, func() float64 { return p.progress().lagSeconds }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "splitstream_projector_lag_positions",
			Help: "Highest global position received minus the watermark's position.",
		}, func() float64 { return float64(p.progress().lagPositions) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "splitstream_projector_watermark_position",
			Help: "Global position of the applied watermark (everything up to it in relay order is applied); with lanes, the furthest lane's.",
		}, func() float64 { return float64(p.progress().watermark.Position) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "splitstream_projector_watermark_tx",
			Help: "Transaction id of the applied watermark.",
		}, func() float64 { return float64(p.progress().watermark.Tx) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "splitstream_projector_held_records",
			Help: "Records applied out of relay order, waiting for a predecessor before the watermark can pass them.",
		}, func() float64 { return float64(p.progress().held) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "splitstream_projector_last_write_timestamp_seconds",
			Help: "Unix time of the last batch Elasticsearch accepted in full.",
		}, func() float64 {
			if t := p.progress().lastWrite; !t.IsZero() {
				return float64(t.UnixNano()) / 1e9
			}
			return 0
		}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "splitstream_projector_dead_letters",
			Help: "Dead letters waiting in the dead-letter store for an operator (splitstream dead list), as last counted.",
		}, func() float64 { return float64(p.DeadLetterCount()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "splitstream_projector_breaker_open",
			Help: "1 while the circuit breaker around Elasticsearch is open or half-open.",
		}, func() float64 {
			if p.breakerOpen() {
				return 1
			}
			return 0
		}),
	}
}

// status is a consistent snapshot of the projector's progress.
type status struct {
	watermark    event.Cursor
	held         int
	lastWrite    time.Time
	lagSeconds   float64
	lagPositions int64
	pending      bool
	pendingSince time.Time
	consuming    bool
	attached     bool
	since        time.Time // when consuming last changed
}
