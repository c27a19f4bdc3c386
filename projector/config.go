package projector

import (
	"errors"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxStall is how long the projector may hold work without writing
// before Healthy says it is not.
const DefaultMaxStall = 30 * time.Second

// Config is what a projector needs. The zero value of every tuning field
// means its default.
type Config struct {
	Store   Store
	History History
	// Notices receives one notice per durable batch; nil publishes none.
	Notices NoticePublisher
	// EventLog reads the event log in relay order, to fill a hole in the
	// watermark that redelivery will not fill; nil never fills holes.
	EventLog Log
	// DeadLetters keeps the events whose documents the store refused for
	// good, and the events parked behind them (NewMemoryDeadLetters for a
	// rebuild and tests).
	DeadLetters DeadLetters
	// HoleTimeout is how long records may wait behind a hole before the
	// log is read (10s).
	HoleTimeout time.Duration
	// CheckpointEvery is how often a lane projector that can read the log
	// (EventLog set) writes its checkpoint while batches keep coming (1s);
	// it also writes it when its queue goes idle and when it stops. Its
	// successor after a crash reads what the checkpoint lags from the log
	// at once. Other projectors write it after every batch.
	CheckpointEvery time.Duration
	// Registerer takes the projector's metrics (a registry of its own for
	// a rebuild beside a live projector).
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// Now is the clock (time.Now).
	Now func() time.Time

	// MaxAttempts is how many times a message that cannot be applied (an
	// unknown event type, a gap the event store cannot fill) is tried
	// before it is dead-lettered (3). Malformed messages go at once.
	MaxAttempts int
	// MaxConflicts bounds the reload-and-reapply rounds for one document in
	// one batch before the batch starts over (10).
	MaxConflicts int
	// MaxBackoff caps the wait between retries after a failure (5s).
	MaxBackoff time.Duration
	// RequestTimeout bounds one request to the store or the history (15s).
	RequestTimeout time.Duration
	// BreakerFailures is how many failed requests in a row open the circuit
	// breaker around the store (5); BreakerOpen is how long it then stays
	// open before one probe is let through (5s).
	BreakerFailures uint32
	BreakerOpen     time.Duration
}

func (c Config) withDefaults() (Config, error) {
	if c.Store == nil {
		return c, errors.New("projector: nil store")
	}
	if c.History == nil {
		return c, errors.New("projector: nil history")
	}
	if c.DeadLetters == nil {
		return c, errors.New("projector: nil dead-letter store (NewMemoryDeadLetters keeps them in memory)")
	}
	if c.Registerer == nil {
		return c, errors.New("projector: nil metrics registerer")
	}
	if c.Log == nil {
		return c, errors.New("projector: nil logger")
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.HoleTimeout <= 0 {
		c.HoleTimeout = 10 * time.Second
	}
	if c.CheckpointEvery <= 0 {
		c.CheckpointEvery = time.Second
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 3
	}
	if c.MaxConflicts <= 0 {
		c.MaxConflicts = 10
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 15 * time.Second
	}
	if c.BreakerFailures == 0 {
		c.BreakerFailures = 5
	}
	if c.BreakerOpen <= 0 {
		c.BreakerOpen = 5 * time.Second
	}
	return c, nil
}
