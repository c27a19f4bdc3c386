// Package saga owns the order fulfilment process manager: for every placed
// order it reserves stock on each line's product through the command layer,
// then confirms the order, or rejects it and gives back what it reserved;
// it gives stock back when an order is cancelled, and rejects orders still
// PENDING after a deadline.
//
// It defines the small interfaces it consumes: Commands (satisfied by
// *command.Service), Streams (the event store's Load and LoadSince) and Store (the saga
// table, in postgres). It imports no driver.
//
// # Why stock is never negative and never reserved twice
//
// Stock: a reservation is decided by the product aggregate
// (command.DecideProduct), which refuses when Stock < Quantity, and the event
// store decides every command on a stream under that stream's advisory lock,
// on the full history, with a unique (stream, version). Two reservations on
// one product are therefore serialised and the second sees the first: Stock
// cannot go below zero whatever runs concurrently.
//
// Reserved twice: a product holds at most one reservation per order
// (Reserved is keyed by order id, and ReserveStock of an order already
// there is a no-op). On top of that the saga reserves line (O, P) only with
// the command id "saga:O:reserve:P"; the event store appends a command id at
// most once and replays its first result after that. So StockReserved for
// (O, P) is appended at most once ever, whatever redeliveries, restarts and
// concurrent copies of the saga do.
//
// Releases and confirmations never cross. The saga releases an order's stock
// only once the order is REJECTED or CANCELLED (it rejects first and
// releases after, never the other way round), and it confirms only a
// PENDING order. An order never goes back to PENDING, so once any line of O
// was released, O can no longer be confirmed, and a confirmed order held
// every reservation the saga saw when it confirmed. The reverse race, a
// reservation made after the releases (a slow or redelivered copy of the
// saga still reserving while the deadline or a cancel already rejected and
// released), is cleaned up by that copy itself: every run ends by
// confirming, which fails for a REJECTED or CANCELLED order and so leads to
// releasing every line, or by releasing every line; a run that dies before
// that leaves its message unacked, and the redelivery, which starts by
// looking at the order's status, releases. Only message-driven runs
// reserve; the deadline loop only rejects and releases. (A message that is
// dead-lettered leaves at worst a PENDING order, which its deadline
// rejects and releases.)
//
// Release ids. "saga:O:release:P" is deterministic too, so the saga sends
// it only after seeing P hold a reservation for O. Since that reservation
// is made at most once and only this command id removes it, the command's
// first execution is the real release and a replay of it is right; a
// release sent blindly could be recorded as a no-op before a late
// reservation, and its replay would then strand the reservation.
//
// Rejection reasons. The first reason decided for an order (the first
// refusal, or the deadline) is stored in the saga row and every later
// attempt rejects with that one, so "saga:O:reject" always carries the same
// input and a retry replays instead of conflicting.
package saga

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
)

// Commands is the part of the command layer the saga drives.
type Commands interface {
	ChangeProduct(ctx context.Context, id string, m command.Meta, c command.ProductCommand) (command.Result, error)
	ChangeOrder(ctx context.Context, id string, m command.Meta, c command.OrderCommand) (command.Result, error)
}

var _ Commands = (*command.Service)(nil)

// Streams reads an aggregate's history, oldest first; none for an unknown
// stream. The saga reads the order and product streams through it, so its
// decisions rest on the write side's own state, not on a copy.
type Streams interface {
	Load(ctx context.Context, streamID string) ([]event.Envelope, error)
	// LoadSince returns the stream's snapshot saved under foldVersion (nil
	// when none) and the events after it, so a long product stream costs
	// the saga no more than a short one.
	LoadSince(ctx context.Context, streamID string, foldVersion int) (*command.Snapshot, []event.Envelope, error)
}

// Saga statuses as the store keeps them: open until the saga is done with
// the order, then the order's outcome.
const (
	StatusOpen      = "open"
	StatusConfirmed = "confirmed"
	StatusRejected  = "rejected"
	StatusCancelled = "cancelled"
)

// State is one saga as the store keeps it.
type State struct {
	OrderID  string
	Status   string // StatusOpen, StatusConfirmed, StatusRejected or StatusCancelled
	Reason   string // the rejection decided for the order; "" while none is
	PlacedAt time.Time
}

// Store keeps saga state and deadlines, durably and shared by every copy of
// the saga.
type Store interface {
	// Start registers the saga of an order placed at placedAt unless it is
	// there, and returns its state; started is true for the one call that
	// first started it.
	Start(ctx context.Context, orderID string, placedAt time.Time) (st State, started bool, err error)
	// Decide stores reason as the order's rejection reason unless one is
	// stored already, and returns the stored one.
	Decide(ctx context.Context, orderID, reason string) (string, error)
	// Close records the saga's outcome: an open saga takes any outcome, a
	// confirmed one may still become cancelled, nothing else changes.
	// wasOpen is true for the one call that closed an open saga.
	Close(ctx context.Context, orderID, outcome string) (wasOpen bool, placedAt time.Time, err error)
	// ClaimExpired returns up to limit open sagas placed more than deadline
	// ago and hides them from other claims for lease, so that several saga
	// processes share the work and one that dies leaves it to the others.
	ClaimExpired(ctx context.Context, deadline, lease time.Duration, limit int) ([]string, error)
}

// Counts is a census of the open sagas.
type Counts struct {
	// Open is every saga still waiting for its outcome.
	Open int
	// PastDeadline is the open sagas placed more than the deadline ago:
	// the deadline loop should have rejected them already.
	PastDeadline int
}

// Counter is what a Store may also do: count the open sagas. When the
// store can, the deadline loop exports the census as the gauges
// splitstream_saga_open and splitstream_saga_past_deadline.
type Counter interface {
	Count(ctx context.Context, deadline time.Duration) (Counts, error)
}

// ErrUnprocessable marks an event that no retry can handle (for example an
// order event whose order stream does not exist); consumers dead-letter it.
var ErrUnprocessable = errors.New("saga: event cannot be processed")

// Config wires a Saga. Zero durations and limits mean their defaults.
type Config struct {
	Commands Commands
	Streams  Streams
	Store    Store
	// Deadline is how long an order may stay PENDING (30s).
	Deadline time.Duration
	// Tick is how often the deadline loop looks for expired orders (1s).
	Tick time.Duration
	// Lease is how long a claimed expiry is hidden from other processes
	// before it is tried again (30s).
	Lease time.Duration
	// Batch is how many expired orders one pass claims (32).
	Batch      int
	Log        *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock for the saga age metric (time.Now). Deadlines are
	// measured by Postgres's clock, shared by every process.
	Now func() time.Time
}

// Saga is the order fulfilment process manager.
type Saga struct {
	cmd     Commands
	streams Streams
	store   Store
	cfg     Config
	log     *slog.Logger
	m       metrics
}

// New returns a saga; it registers its metrics on cfg.Registerer.
func New(cfg Config) (*Saga, error) {
	switch {
	case cfg.Commands == nil:
		return nil, errors.New("saga: nil commands")
	case cfg.Streams == nil:
		return nil, errors.New("saga: nil streams")
	case cfg.Store == nil:
		return nil, errors.New("saga: nil store")
	case cfg.Log == nil:
		return nil, errors.New("saga: nil logger")
	case cfg.Registerer == nil:
		return nil, errors.New("saga: nil metrics registerer")
	case cfg.Deadline < 0 || cfg.Tick < 0 || cfg.Lease < 0 || cfg.Batch < 0:
		return nil, errors.New("saga: negative deadline, tick, lease or batch")
	}
	if cfg.Deadline == 0 {
		cfg.Deadline = 30 * time.Second
	}
	if cfg.Tick == 0 {
		cfg.Tick = time.Second
	}
	if cfg.Lease == 0 {
		cfg.Lease = 30 * time.Second
	}
	if cfg.Batch == 0 {
		cfg.Batch = 32
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	_, counts := cfg.Store.(Counter)
	m, err := newMetrics(cfg.Registerer, counts)
	if err != nil {
		return nil, err
	}
	return &Saga{cmd: cfg.Commands, streams: cfg.Streams, store: cfg.Store, cfg: cfg, log: cfg.Log, m: m}, nil
}

// Handle processes one event. It returns nil when the event is handled or
// is not the saga's concern, an error wrapping ErrUnprocessable,
// event.ErrMalformed or event.ErrUnknownType when it can never be handled,
// and any other error when it should be retried later (Postgres away).
// Handling an event again is always safe.
func (s *Saga) Handle(ctx context.Context, e event.Envelope) error {
	if e.StreamType != event.StreamOrder {
		return nil
	}
	switch e.Type {
	case event.OrderPlaced{}.EventType():
		// Decoded only to refuse an event this build cannot read: the
		// order's lines are read from its stream.
		if _, err := e.Payload(); err != nil {
			return err
		}
		return s.placed(ctx, e.StreamID, e.OccurredAt)
	case event.OrderCancelled{}.EventType():
		return s.cancelled(ctx, e.StreamID)
	}
	return nil
}

func (s *Saga) placed(ctx context.Context, orderID string, placedAt time.Time) error {
	st, started, err := s.store.Start(ctx, orderID, placedAt)
	if err != nil {
		return err
	}
	if started {
		s.m.started.Inc()
	}
	o, err := s.order(ctx, orderID)
	if err != nil {
		return err
	}
	return s.drive(ctx, o, st.Reason)
}

func (s *Saga) cancelled(ctx context.Context, orderID string) error {
	o, err := s.order(ctx, orderID)
	if err != nil {
		return err
	}
	return s.drive(ctx, o, "")
}

// drive takes the order from where it stands to the end of its saga. A
// non-empty reason is a rejection already decided for it.
func (s *Saga) drive(ctx context.Context, o command.Order, reason string) error {
	switch o.Status {
	case command.StatusConfirmed:
		return s.close(ctx, o.ID, StatusConfirmed)
	case command.StatusRejected, command.StatusCancelled:
		return s.compensate(ctx, o)
	case command.StatusPending:
	default:
		return fmt.Errorf("%w: order %s has status %q", ErrUnprocessable, o.ID, o.Status)
	}
	if reason == "" {
		refusal, err := s.reserve(ctx, o)
		if err != nil {
			return err
		}
		if refusal == "" {
			return s.confirm(ctx, o)
		}
		if reason, err = s.store.Decide(ctx, o.ID, refusal); err != nil {
			return err
		}
	}
	return s.reject(ctx, o, reason)
}

// reserve reserves every line in order and returns "" when all are held, or
// why the first line that is refused cannot be. Lines reserved before a
// refusal stay reserved until the order is rejected: releasing them while
// the order is still PENDING could let a retry confirm it without them.
func (s *Saga) reserve(ctx context.Context, o command.Order) (refusal string, err error) {
	for _, l := range o.Lines {
		_, err := s.cmd.ChangeProduct(ctx, l.ProductID,
			meta(o.ID, "reserve:"+l.ProductID), command.ReserveStock{OrderID: o.ID, Quantity: l.Quantity})
		var refused *splitstream.Error
		switch {
		case err == nil:
		case errors.As(err, &refused):
			return refusalReason(l, refused), nil
		default:
			return "", fmt.Errorf("reserve %d of %s for order %s: %w", l.Quantity, l.ProductID, o.ID, err)
		}
	}
	return "", nil
}

// refusalReason is what the customer reads. The product aggregate already
// words its refusals for people ("insufficient stock for Kettle: 1 left, 3
// wanted", "Kettle is discontinued", "product p1 not found").
func refusalReason(l event.OrderLine, e *splitstream.Error) string {
	var reason string
	switch e.Code {
	case splitstream.ENotFound:
		reason = fmt.Sprintf("product %s not found", l.ProductID)
	case splitstream.EInvalid:
		name := l.ProductName
		if name == "" {
			name = l.ProductID
		}
		reason = fmt.Sprintf("cannot reserve %d of %s: %s", l.Quantity, name, e.Message)
	default:
		reason = e.Message
	}
	return clip(reason)
}

// maxReasonRunes keeps a reason well within what RejectOrder accepts: a
// product id is the client's text, of any length, and a reason the order
// refused would leave it PENDING for good.
const maxReasonRunes = 300

func clip(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if utf8.RuneCountInString(s) <= maxReasonRunes {
		return s
	}
	return string([]rune(s)[:maxReasonRunes-1]) + "…"
}

func (s *Saga) confirm(ctx context.Context, o command.Order) error {
	_, err := s.cmd.ChangeOrder(ctx, o.ID, meta(o.ID, "confirm"), command.ConfirmOrder{})
	if err == nil {
		return s.close(ctx, o.ID, StatusConfirmed)
	}
	// Refused: the deadline or a cancel got there first.
	return s.afterRefusal(ctx, o.ID, "confirm", err)
}

// reject rejects the order with reason, then gives back its stock.
func (s *Saga) reject(ctx context.Context, o command.Order, reason string) error {
	_, err := s.cmd.ChangeOrder(ctx, o.ID, meta(o.ID, "reject"), command.RejectOrder{Reason: reason})
	if err != nil {
		// Refused: confirmed by another copy of the saga (then nothing is
		// given back), or cancelled (then everything is).
		return s.afterRefusal(ctx, o.ID, "reject", err)
	}
	o.Status = command.StatusRejected
	return s.compensate(ctx, o)
}

// afterRefusal continues from the order's status when the order refused a
// transition, which means it is no longer PENDING.
func (s *Saga) afterRefusal(ctx context.Context, orderID, what string, err error) error {
	var refused *splitstream.Error
	if !errors.As(err, &refused) {
		return fmt.Errorf("%s order %s: %w", what, orderID, err)
	}
	o, lerr := s.order(ctx, orderID)
	if lerr != nil {
		return lerr
	}
	if o.Status == command.StatusPending {
		return fmt.Errorf("%w: %s of PENDING order %s refused: %w", ErrUnprocessable, what, orderID, err)
	}
	return s.drive(ctx, o, "")
}

// compensate releases every line of an order that is REJECTED or CANCELLED
// and closes its saga.
func (s *Saga) compensate(ctx context.Context, o command.Order) error {
	for _, l := range o.Lines {
		if err := s.release(ctx, o.ID, l.ProductID); err != nil {
			return err
		}
	}
	outcome := StatusRejected
	if o.Status == command.StatusCancelled {
		outcome = StatusCancelled
	}
	return s.close(ctx, o.ID, outcome)
}

// release gives back the order's reservation on one product, if it holds
// one; see the package comment for why it looks first.
func (s *Saga) release(ctx context.Context, orderID, productID string) error {
	p, err := s.product(ctx, productID)
	if err != nil {
		return err
	}
	if _, held := p.Reserved[orderID]; !held {
		return nil
	}
	_, err = s.cmd.ChangeProduct(ctx, productID, meta(orderID, "release:"+productID),
		command.ReleaseStock{OrderID: orderID})
	if err != nil {
		return fmt.Errorf("release %s for order %s: %w", productID, orderID, err)
	}
	s.m.compensations.Inc()
	return nil
}

func (s *Saga) close(ctx context.Context, orderID, outcome string) error {
	wasOpen, placedAt, err := s.store.Close(ctx, orderID, outcome)
	if err != nil {
		return err
	}
	if wasOpen {
		s.m.completed.WithLabelValues(outcome).Inc()
		s.m.age.Observe(max(s.cfg.Now().Sub(placedAt).Seconds(), 0))
		s.log.Debug("saga completed", "order", orderID, "outcome", outcome)
	}
	return nil
}

// RunDeadlines rejects orders still PENDING past the deadline, every Tick,
// until ctx ends. Failures are logged and retried on the next tick (a
// claimed order after its lease).
func (s *Saga) RunDeadlines(ctx context.Context) error {
	t := time.NewTicker(s.cfg.Tick)
	defer t.Stop()
	failing := false
	for {
		n, err := s.ExpireDue(ctx)
		if cerr := s.census(ctx); err == nil {
			err = cerr
		}
		switch {
		case ctx.Err() != nil:
			return nil
		case err != nil && !failing:
			s.log.Warn("saga deadlines failing; retrying", "err", err)
		case err == nil && failing:
			s.log.Info("saga deadlines recovered")
		}
		failing = err != nil
		if n > 0 {
			s.log.Info("orders past their deadline handled", "count", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// ExpireDue handles the open sagas past their deadline once, and returns
// how many it handled.
func (s *Saga) ExpireDue(ctx context.Context) (int, error) {
	ids, err := s.store.ClaimExpired(ctx, s.cfg.Deadline, s.cfg.Lease, s.cfg.Batch)
	if err != nil {
		return 0, err
	}
	var errs []error
	done := 0
	for _, id := range ids {
		if err := s.expire(ctx, id); err != nil {
			errs = append(errs, err)
			continue
		}
		done++
	}
	return done, errors.Join(errs...)
}

// census refreshes the open and past-deadline gauges when the store can
// count.
func (s *Saga) census(ctx context.Context) error {
	c, ok := s.store.(Counter)
	if !ok {
		return nil
	}
	n, err := c.Count(ctx, s.cfg.Deadline)
	if err != nil {
		return err
	}
	s.m.open.Set(float64(n.Open))
	s.m.pastDeadline.Set(float64(n.PastDeadline))
	return nil
}

func (s *Saga) expire(ctx context.Context, orderID string) error {
	o, err := s.order(ctx, orderID)
	if err != nil {
		return err
	}
	if o.Status != command.StatusPending {
		// Done, or its saga stopped half-way: finish it.
		return s.drive(ctx, o, "")
	}
	reason, err := s.store.Decide(ctx, orderID, fmt.Sprintf("not confirmed within %s", s.cfg.Deadline))
	if err != nil {
		return err
	}
	if err := s.reject(ctx, o, reason); err != nil {
		return err
	}
	s.m.expiries.Inc()
	return nil
}

// order loads an order's current state.
func (s *Saga) order(ctx context.Context, id string) (command.Order, error) {
	h, err := s.load(ctx, id)
	if err != nil {
		return command.Order{}, err
	}
	if len(h) == 0 || h[0].StreamType != event.StreamOrder {
		return command.Order{}, fmt.Errorf("%w: order %s has no stream", ErrUnprocessable, id)
	}
	ps, err := event.Payloads(h)
	if err != nil {
		return command.Order{}, err
	}
	return command.FoldOrder(id, ps), nil
}

// product loads a product's current state; an unknown id (or another
// aggregate's) is a product that does not exist and holds nothing.
func (s *Saga) product(ctx context.Context, id string) (command.Product, error) {
	snap, h, err := s.streams.LoadSince(ctx, id, command.ProductFoldVersion)
	if err != nil {
		return command.Product{}, fmt.Errorf("load %s: %w", id, err)
	}
	return command.RestoreProduct(id, snap, h)
}

func (s *Saga) load(ctx context.Context, id string) ([]event.Envelope, error) {
	h, err := s.streams.Load(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", id, err)
	}
	return h, nil
}

// meta gives a saga command its deterministic id, "saga:<order>:<step>",
// in the server's own id space (a client's commandId "saga:..." is another
// id), and correlates it with the order.
func meta(orderID, step string) command.Meta {
	return command.Meta{CommandID: "saga:" + orderID + ":" + step, CorrelationID: orderID, Actor: "saga", Internal: true}
}

type metrics struct {
	started       prometheus.Counter
	completed     *prometheus.CounterVec
	compensations prometheus.Counter
	expiries      prometheus.Counter
	age           prometheus.Histogram
	open          prometheus.Gauge // registered only when the store counts
	pastDeadline  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer, counts bool) (metrics, error) {
	m := metrics{
		started: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "splitstream_saga_started_total",
			Help: "Order sagas started (first OrderPlaced handled for an order).",
		}),
		completed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "splitstream_saga_completed_total",
			Help: "Order sagas completed, by outcome (confirmed, rejected, cancelled).",
		}, []string{"outcome"}),
		compensations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "splitstream_saga_compensations_total",
			Help: "Reservations released: on rejection, on cancellation, and after a lost race with the deadline or a cancel.",
		}),
		expiries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "splitstream_saga_deadline_expiries_total",
			Help: "Orders rejected because they were still PENDING at their deadline.",
		}),
		age: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "splitstream_saga_age_seconds",
			Help:    "Time from an order's placement to the completion of its saga.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 15),
		}),
		open: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "splitstream_saga_open",
			Help: "Order sagas still open (their order PENDING), as the deadline loop last counted.",
		}),
		pastDeadline: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "splitstream_saga_past_deadline",
			Help: "Open order sagas placed more than the deadline ago, which the deadline loop has not rejected yet.",
		}),
	}
	cs := []prometheus.Collector{m.started, m.completed, m.compensations, m.expiries, m.age}
	if counts {
		cs = append(cs, m.open, m.pastDeadline)
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			return metrics{}, fmt.Errorf("saga metrics: %w", err)
		}
	}
	for _, o := range []string{StatusConfirmed, StatusRejected, StatusCancelled} {
		m.completed.WithLabelValues(o)
	}
	return m, nil
}
