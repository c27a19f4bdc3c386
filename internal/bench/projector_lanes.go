package bench

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
	"github.com/splitstream/splitstream/rabbitmq"
)

// benchLanes is the number of projector lanes the drain runs with (the
// default of SPLITSTREAM_PROJECTOR_LANES).
const benchLanes = 4

// laneBacklog is records stamped for lanes as the relay stamps them, with
// each lane's cursors in order.
type laneBacklog struct {
	records []event.Record
	cursors [][]event.Cursor // per lane
}

func stampLanes(records []event.Record, lanes int) laneBacklog {
	b := laneBacklog{records: slices.Clone(records), cursors: make([][]event.Cursor, lanes)}
	for i := range b.records {
		r := &b.records[i]
		l := query.LaneOfEnvelope(r.Envelope, lanes)
		prev := event.Cursor{}
		if c := b.cursors[l]; len(c) > 0 {
			prev = c[len(c)-1]
		}
		r.Lanes, r.Lane, r.LanePrev = lanes, l, prev
		b.cursors[l] = append(b.cursors[l], r.Cursor)
	}
	return b
}

// done counts the records of the backlog at or below each lane's checkpoint.
func (b laneBacklog) done(cps []event.Cursor) int {
	n := 0
	for l, cs := range b.cursors {
		n += atOrBelow(cs, cps[l])
	}
	return n
}

// atOrBelow is how many of cs (in order) are at or below at.
func atOrBelow(cs []event.Cursor, at event.Cursor) int {
	i, _ := slices.BinarySearchFunc(cs, at, func(c, at event.Cursor) int {
		switch {
		case c.Less(at):
			return -1
		case at.Less(c):
			return 1
		}
		return 0
	})
	if i < len(cs) && cs[i] == at {
		i++
	}
	return i
}

// drainLanes publishes records, stamped for benchLanes lanes, as a backlog
// on a scratch vhost and drains it with members projector members as the
// projector role runs them (leases in a scratch database, one consumer per
// held lane, each member on a connection of its own), in this process. It
// returns events per second from the moment every lane is held by its
// member of the balanced assignment to the moment every lane's watermark,
// as its notices announce it, reaches its last record.
func (pb projectorBench) drainLanes(ctx context.Context, pool *pgxpool.Pool, records []event.Record, prefix string, members int) (float64, error) {
	st, err := pb.stage(ctx, records, prefix, fmt.Sprintf("lanes%d", members))
	if err != nil {
		return 0, err
	}
	defer st.close()
	notices := newAnnounced(benchLanes)
	runs, err := pb.laneMembers(ctx, pool, st.leasePool, st.amqpURL, prefix, members, notices)
	if err != nil {
		return 0, err
	}
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	for _, m := range runs {
		wg.Go(func() { _ = m.lanes.Run(cctx) })
	}
	defer func() {
		stop()
		wg.Wait()
		for _, m := range runs {
			m.conn.Close()
		}
	}()
	label := fmt.Sprintf("%d members", len(runs))
	return pb.waitLanesDrained(ctx, label, func() (bool, error) { return balanced(runs), nil }, st.backlog, prefix, notices)
}

// laneStage is what a drain runs on: a scratch vhost holding the backlog
// in its lane queues, a scratch database for the leases, fresh indices.
type laneStage struct {
	vhost     string
	amqpURL   string         // the broker's URL on vhost
	conn      *rabbitmq.Conn // on vhost
	dbURL     string
	leasePool *pgxpool.Pool
	backlog   laneBacklog
	undo      []func()
}

// stage sets a drain's scratch resources up, named by name, and publishes
// records there stamped for benchLanes lanes.
func (pb projectorBench) stage(ctx context.Context, records []event.Record, prefix, name string) (*laneStage, error) {
	st := &laneStage{backlog: stampLanes(records, benchLanes), vhost: fmt.Sprintf("splitstream-bench-%s-%s", pb.tag, name)}
	fail := func(err error) (*laneStage, error) {
		st.close()
		return nil, err
	}
	conn, drop, err := scratchVhost(ctx, pb.st, pb.mgmt, st.vhost, "splitstream-bench")
	if err != nil {
		return nil, err
	}
	st.conn, st.undo = conn, append(st.undo, drop)
	u, err := url.Parse(pb.st.AMQPURL)
	if err != nil {
		return fail(err)
	}
	st.amqpURL = onVhost(u, st.vhost)
	if err := pb.publishLanes(ctx, conn, st.backlog.records); err != nil {
		return fail(err)
	}
	dbURL, dropDB, err := scratchDatabase(ctx, pb.st.DatabaseURL, fmt.Sprintf("splitstream_bench_%s_%s", pb.tag, name))
	if err != nil {
		return fail(err)
	}
	st.dbURL, st.undo = dbURL, append(st.undo, dropDB)
	if st.leasePool, err = postgres.Open(ctx, dbURL, 4); err != nil {
		return fail(err)
	}
	st.undo = append(st.undo, st.leasePool.Close)
	if err := postgres.Migrate(ctx, st.leasePool, pb.st.Log); err != nil {
		return fail(err)
	}
	if err := postgres.CheckLanes(ctx, st.leasePool, benchLanes); err != nil {
		return fail(err)
	}
	if err := elastic.NewIndices(pb.env.ES, prefix, pb.st.Refresh).Ensure(ctx); err != nil {
		return fail(err)
	}
	return st, nil
}

// close undoes stage, last step first.
func (st *laneStage) close() {
	for i := len(st.undo) - 1; i >= 0; i-- {
		st.undo[i]()
	}
}

func (pb projectorBench) publishLanes(ctx context.Context, conn *rabbitmq.Conn, records []event.Record) error {
	pub, err := rabbitmq.NewPublisher(conn, rabbitmq.WithLanes(benchLanes))
	if err != nil {
		return err
	}
	defer pub.Close()
	pb.say("publishing a backlog of %d events into %d lanes", len(records), benchLanes)
	for i := 0; i < len(records); i += 1000 {
		if err := pub.Publish(ctx, records[i:min(i+1000, len(records))]); err != nil {
			return err
		}
	}
	return nil
}

// laneMember is one projector member of the drain.
type laneMember struct {
	name  string
	conn  *rabbitmq.Conn
	lanes *projector.Lanes
}

// announced keeps the newest watermark each lane's notices announced, as
// a query instance sees them: a lane projector writes its checkpoint at
// most once a second while busy, so the notices, not the checkpoints, say
// when an event is applied.
type announced struct {
	mu    sync.Mutex
	marks []event.Cursor // by lane
}

func newAnnounced(lanes int) *announced { return &announced{marks: make([]event.Cursor, lanes)} }

// PublishNotice keeps n's watermark; it is the bench projectors' notice
// publisher (they publish to no broker).
func (a *announced) PublishNotice(_ context.Context, n projector.Notice) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if n.Lanes == len(a.marks) && n.Lane >= 0 && n.Lane < len(a.marks) && a.marks[n.Lane].Less(n.Watermark) {
		a.marks[n.Lane] = n.Watermark
	}
	return nil
}

// at is each lane's newest announced watermark.
func (a *announced) at() []event.Cursor {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.marks)
}

// laneMembers builds the members, each with its own connection, projector,
// leases and lane consumers, and has each say it is alive before any
// starts, so that their first round already spreads the lanes.
func (pb projectorBench) laneMembers(ctx context.Context, pool, leasePool *pgxpool.Pool, amqpURL, prefix string, n int, notices projector.NoticePublisher) ([]laneMember, error) {
	history, err := postgres.NewEventStore(pool)
	if err != nil {
		return nil, err
	}
	source, err := postgres.NewRelaySource(pool)
	if err != nil {
		return nil, err
	}
	var out []laneMember
	fail := func(err error) ([]laneMember, error) {
		for _, m := range out {
			m.conn.Close()
		}
		return nil, err
	}
	for i := range n {
		m := laneMember{name: fmt.Sprintf("bench-member-%d", i)}
		if m.conn, err = rabbitmq.Dial(ctx, amqpURL, m.name, pb.st.Log); err != nil {
			return fail(err)
		}
		out = append(out, m)
		reg := prometheus.NewRegistry()
		p, err := projector.New(projector.Config{Store: elastic.NewDocStore(pb.env.ES, prefix), History: history, EventLog: source,
			Notices: notices, Log: pb.st.Log, DeadLetters: projector.NewMemoryDeadLetters(), Registerer: reg})
		if err != nil {
			return fail(err)
		}
		leases, err := postgres.NewLeases(leasePool, m.name, 5*time.Second)
		if err != nil {
			return fail(err)
		}
		if _, err := leases.Heartbeat(ctx); err != nil {
			return fail(err)
		}
		conn := m.conn
		out[i].lanes, err = projector.NewLanes(p, projector.LanesConfig{Lanes: benchLanes, Member: m.name, Leases: leases,
			Registerer: reg, Log: pb.st.Log,
			Consume: func(ctx context.Context, lane int, child *projector.Projector) error {
				c, err := rabbitmq.NewLaneConsumer(conn, child, lane, benchLanes, rabbitmq.ConsumerConfig{Log: pb.st.Log})
				if err != nil {
					return err
				}
				return c.Run(ctx)
			}})
		if err != nil {
			return fail(err)
		}
	}
	return out, nil
}

// balanced says every lane is held, each by its member of the balanced
// assignment (lane i by the (i mod n)-th member in sorted order).
func balanced(runs []laneMember) bool {
	names := make([]string, len(runs))
	for i, m := range runs {
		names[i] = m.name
	}
	slices.Sort(names)
	for _, m := range runs {
		held := m.lanes.Held()
		want := 0
		for lane := range benchLanes {
			if names[lane%len(names)] == m.name {
				want++
				if _, ok := held[lane]; !ok {
					return false
				}
			}
		}
		if len(held) != want {
			return false
		}
	}
	return true
}

// waitLanesDrained times the drain from the moment isBalanced first says
// every lane is held as the balanced assignment wants to the last record
// of every lane; who drains is named by label ("2 members").
func (pb projectorBench) waitLanesDrained(ctx context.Context, label string, isBalanced func() (bool, error), backlog laneBacklog, prefix string, notices *announced) (float64, error) {
	searcher := elastic.NewSearcher(pb.env.ES, prefix)
	// A lane is as far as its checkpoint (what an earlier run left) or its
	// notices say, whichever is further.
	checkpoints := func() ([]event.Cursor, error) {
		cps := notices.at()
		for l := range cps {
			cp, err := searcher.LaneCheckpoint(ctx, l)
			if err != nil {
				return nil, err
			}
			if cps[l].Less(cp) {
				cps[l] = cp
			}
		}
		return cps, nil
	}
	n := len(backlog.records)
	begin := time.Now()
	var start time.Time
	startDone, lastSay := 0, time.Now()
	for {
		cps, err := checkpoints()
		if err != nil {
			return 0, err
		}
		done := backlog.done(cps)
		if start.IsZero() {
			ok, err := isBalanced()
			if err != nil {
				return 0, err
			}
			if ok {
				start, startDone = time.Now(), done
				pb.say("%s hold their lanes after %s, %d of %d events already applied", label, start.Sub(begin).Round(time.Millisecond), done, n)
			}
		}
		if done == n {
			if start.IsZero() || n-startDone < n/2 {
				return 0, errors.New("the backlog was half drained before the lanes were spread; run the full bench (a larger backlog)")
			}
			took := time.Since(start)
			rate := float64(n-startDone) / took.Seconds()
			pb.say("%s drained %d events in %s: %.0f events/s", label, n-startDone, took.Round(time.Millisecond), rate)
			return rate, nil
		}
		if time.Since(lastSay) > 2*time.Second {
			lastSay = time.Now()
			pb.say("draining with %s: %d of %d events", label, done, n)
		}
		if time.Since(begin) > 15*time.Minute {
			return 0, fmt.Errorf("backlog not drained in 15 minutes (%d of %d)", done, n)
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}
