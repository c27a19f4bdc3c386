package projector

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Leases are the lanes' claims in a store every projector process shares
// (postgres.Leases). Expiry is the store's business, by its clock.
type Leases interface {
	// Heartbeat says this member is alive and returns the live members,
	// sorted, itself included.
	Heartbeat(ctx context.Context) ([]string, error)
	// Claim takes a lane nobody holds (or whose lease expired) under a new
	// epoch; ok is false when another member holds it.
	Claim(ctx context.Context, lane int) (epoch int64, ok bool, err error)
	// Renew extends the leases still held under their epochs and returns
	// those it extended.
	Renew(ctx context.Context, held map[int]int64) (map[int]int64, error)
	// Release gives a lane up, if still held under epoch.
	Release(ctx context.Context, lane int, epoch int64) error
	// Leave takes the member out of the live ones.
	Leave(ctx context.Context) error
}

// LanesConfig is what Lanes needs; zero durations mean their defaults.
type LanesConfig struct {
	Lanes  int    // P, 1..255
	Member string // this process's name among the members
	Leases Leases
	// Consume consumes lane's queue into p until ctx ends
	// (rabbitmq.NewLaneConsumer(...).Run).
	Consume func(ctx context.Context, lane int, p *Projector) error
	// Renew is how often leases are renewed and the lanes rebalanced (1s);
	// TTL how long a lease lasts unless renewed (5s, the store's setting
	// must be the same); Margin how much before the TTL a holder stops
	// working on a lease it could not renew (1s): clock rates and the
	// renewal's own latency eat into the TTL, never past the margin.
	Renew, TTL, Margin time.Duration
	Registerer         prometheus.Registerer
	Log                *slog.Logger
}

// Lanes runs the lanes this process holds: every Renew it heartbeats,
// renews its leases, and moves towards the balanced assignment, lane i to
// the (i mod n)-th of the n live members in sorted order. It releases a
// lane only after its consumer has stopped, and claims a free or expired
// one; each claim is a new epoch, fencing the lane's previous holder.
type Lanes struct {
	p   *Projector
	cfg LanesConfig
	log *slog.Logger

	mu   sync.Mutex
	held map[int]*laneRun

	heldG, epochG *prometheus.GaugeVec
	membersG      prometheus.Gauge
	moves         *prometheus.CounterVec
}

// laneRun is one held lane.
type laneRun struct {
	epoch int64
	until time.Time // the lease is safe to work under until then
	stop  context.CancelFunc
	done  chan struct{}
	child *Projector
}

// NewLanes returns the lane runner of p.
func NewLanes(p *Projector, cfg LanesConfig) (*Lanes, error) {
	switch {
	case p == nil || cfg.Leases == nil || cfg.Consume == nil || cfg.Registerer == nil || cfg.Log == nil:
		return nil, errors.New("projector lanes: nil projector, leases, consumer, registerer or logger")
	case cfg.Lanes < 1 || cfg.Lanes > 255:
		return nil, fmt.Errorf("projector lanes: %d lanes, want 1..255", cfg.Lanes)
	case cfg.Member == "":
		return nil, errors.New("projector lanes: empty member name")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.Renew, time.Second)
	def(&cfg.TTL, 5*time.Second)
	def(&cfg.Margin, time.Second)
	if cfg.Renew+cfg.Margin >= cfg.TTL {
		return nil, fmt.Errorf("projector lanes: renew %s plus margin %s must be below the TTL %s", cfg.Renew, cfg.Margin, cfg.TTL)
	}
	l := &Lanes{p: p, cfg: cfg, log: cfg.Log.With("member", cfg.Member), held: map[int]*laneRun{},
		heldG: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "splitstream_projector_lane_held",
			Help: "1 for each lane this process holds the lease of and consumes.",
		}, []string{"lane"}),
		epochG: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "splitstream_projector_lane_epoch",
			Help: "The lease epoch under which this process holds each lane (every claim is a new epoch).",
		}, []string{"lane"}),
		membersG: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "splitstream_projector_lane_members",
			Help: "Live projector processes, as this one last saw them.",
		}),
		moves: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "splitstream_projector_lane_moves_total",
			Help: "Lane claims, releases and losses (a lease that expired before it was renewed) by this process.",
		}, []string{"action"}),
	}
	for _, c := range []prometheus.Collector{l.heldG, l.epochG, l.membersG, l.moves} {
		if err := cfg.Registerer.Register(c); err != nil {
			return nil, fmt.Errorf("projector lane metrics: %w", err)
		}
	}
	for i := range cfg.Lanes {
		l.heldG.WithLabelValues(strconv.Itoa(i)).Set(0)
	}
	return l, nil
}

// Run holds and consumes lanes until ctx ends; then it stops every
// consumer, releases the leases and leaves, so the others take the lanes
// over at their next renewal rather than after the TTL.
func (l *Lanes) Run(ctx context.Context) error {
	t := time.NewTicker(l.cfg.Renew)
	defer t.Stop()
	for {
		l.tick(ctx)
		select {
		case <-ctx.Done():
			l.shutdown()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// Held returns the lanes held now, for tests and the console.
func (l *Lanes) Held() map[int]int64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[int]int64, len(l.held))
	for n, r := range l.held {
		out[n] = r.epoch
	}
	return out
}

// tick is one round: heartbeat and renew, drop what is lost, release what
// belongs to another member, claim what is ours and free.
func (l *Lanes) tick(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, l.cfg.Renew)
	defer cancel()
	sent := time.Now()
	members, err := l.cfg.Leases.Heartbeat(rctx)
	var renewed map[int]int64
	if err == nil {
		renewed, err = l.cfg.Leases.Renew(rctx, l.Held())
	}
	if err != nil {
		if ctx.Err() == nil {
			l.log.Warn("projector lanes: heartbeat or renewal failed; lanes stop when their leases run out", "err", err)
		}
		l.dropExpired(time.Now())
		return
	}
	l.membersG.Set(float64(len(members)))
	l.renewed(renewed, sent)
	mine := l.targets(members)
	for n, epoch := range l.Held() {
		if !mine[n] {
			l.release(ctx, n, epoch)
		}
	}
	for n := range mine {
		if _, ok := l.Held()[n]; !ok {
			l.claim(rctx, n, sent)
		}
	}
}

// targets are the lanes the balanced assignment gives this member.
func (l *Lanes) targets(members []string) map[int]bool {
	mine := map[int]bool{}
	for i := range l.cfg.Lanes {
		if len(members) > 0 && members[i%len(members)] == l.cfg.Member {
			mine[i] = true
		}
	}
	return mine
}

// renewed extends the held lanes that were renewed and stops those that
// were not (another member claimed them after they expired).
func (l *Lanes) renewed(renewed map[int]int64, sent time.Time) {
	until := sent.Add(l.cfg.TTL - l.cfg.Margin)
	var lost []int
	l.mu.Lock()
	for n, r := range l.held {
		if e, ok := renewed[n]; ok && e == r.epoch {
			r.until = until
		} else {
			lost = append(lost, n)
		}
	}
	l.mu.Unlock()
	for _, n := range lost {
		l.log.Warn("projector lane lost: the lease was not renewed", "lane", n)
		l.moves.WithLabelValues("lost").Inc()
		l.stop(n)
	}
}

// dropExpired stops the lanes whose leases are no longer safe by now.
func (l *Lanes) dropExpired(now time.Time) {
	var lost []int
	l.mu.Lock()
	for n, r := range l.held {
		if !now.Before(r.until) {
			lost = append(lost, n)
		}
	}
	l.mu.Unlock()
	for _, n := range lost {
		l.log.Warn("projector lane dropped: its lease ran out unrenewed", "lane", n)
		l.moves.WithLabelValues("lost").Inc()
		l.stop(n)
	}
}

// claim takes lane n when it is free and starts consuming it.
func (l *Lanes) claim(ctx context.Context, n int, sent time.Time) {
	epoch, ok, err := l.cfg.Leases.Claim(ctx, n)
	if err != nil || !ok {
		if err != nil && ctx.Err() == nil {
			l.log.Warn("projector lane claim failed", "lane", n, "err", err)
		}
		return
	}
	r := &laneRun{epoch: epoch, until: sent.Add(l.cfg.TTL - l.cfg.Margin), done: make(chan struct{})}
	valid := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		return time.Now().Before(r.until)
	}
	child, err := l.p.ForLane(n, l.cfg.Lanes, epoch, valid)
	if err != nil {
		l.log.Error("projector lane", "lane", n, "err", err)
		return
	}
	r.child = child
	lctx, stop := context.WithCancel(context.Background())
	r.stop = stop
	l.mu.Lock()
	l.held[n] = r
	l.mu.Unlock()
	go func() {
		defer close(r.done)
		if err := l.cfg.Consume(lctx, n, child); err != nil && lctx.Err() == nil {
			l.log.Warn("projector lane consumer ended", "lane", n, "err", err)
		}
	}()
	l.heldG.WithLabelValues(strconv.Itoa(n)).Set(1)
	l.epochG.WithLabelValues(strconv.Itoa(n)).Set(float64(epoch))
	l.moves.WithLabelValues("claim").Inc()
	l.log.Info("projector lane claimed", "lane", n, "epoch", epoch)
}

// stop ends lane n's consumer and waits for it; the lease is left as it is.
func (l *Lanes) stop(n int) (epoch int64, ok bool) {
	l.mu.Lock()
	r, ok := l.held[n]
	delete(l.held, n)
	l.mu.Unlock()
	if !ok {
		return 0, false
	}
	r.stop()
	<-r.done
	// What the last batches applied past the checkpoint is written now,
	// while the lease is still ours: a lost lease writes nothing (Flush's
	// one error, ErrDeposed), and a failed write is logged by Flush; the
	// next holder then reads the lag from the log.
	fctx, cancel := context.WithTimeout(context.Background(), l.cfg.TTL)
	_ = r.child.Flush(fctx)
	cancel()
	r.child.Close(l.p)
	l.heldG.WithLabelValues(strconv.Itoa(n)).Set(0)
	return r.epoch, true
}

// release stops lane n and then gives its lease up, so the next holder
// never overlaps with this one.
func (l *Lanes) release(ctx context.Context, n int, epoch int64) {
	if _, ok := l.stop(n); !ok {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), l.cfg.TTL)
	defer cancel()
	if err := l.cfg.Leases.Release(rctx, n, epoch); err != nil {
		// It expires by itself within the TTL.
		l.log.Warn("projector lane release failed", "lane", n, "err", err)
		return
	}
	l.moves.WithLabelValues("release").Inc()
	l.log.Info("projector lane released", "lane", n, "epoch", epoch)
}

// shutdown releases every lane and leaves the members.
func (l *Lanes) shutdown() {
	ctx := context.Background()
	for n, epoch := range l.Held() {
		l.release(ctx, n, epoch)
	}
	lctx, cancel := context.WithTimeout(ctx, l.cfg.TTL)
	defer cancel()
	if err := l.cfg.Leases.Leave(lctx); err != nil {
		l.log.Warn("projector lanes: leave", "err", err)
	}
}

// Unrouted is the handler of the lanes' unrouted intake (the projector
// queue once there are lanes): whatever arrives there had no lane a queue
// takes, so it is dead-lettered with that reason; the lane it belongs to
// fills the hole from the event log.
type Unrouted struct{}

// Handle dead-letters every message.
func (Unrouted) Handle(_ context.Context, msgs []Message) ([]Verdict, error) {
	out := make([]Verdict, len(msgs))
	for i := range msgs {
		out[i] = Verdict{Action: DeadLetter, Reason: "no projector lane queue took this message (no lane header, or a lane beyond SPLITSTREAM_PROJECTOR_LANES); its lane fills the hole from the event log"}
	}
	return out, nil
}

// Idle does nothing.
func (Unrouted) Idle(context.Context) {}

// Consuming does nothing.
func (Unrouted) Consuming(bool) {}
