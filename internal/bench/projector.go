package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/rabbitmq"
)

// Projector measures, on scratch indices and a scratch vhost of the
// same servers:
//   - projector: draining a backlog of N events already in its queue, the
//     real consumer and projector, broker to Elasticsearch;
//   - rebuild: the rebuild of every model from Postgres;
//   - ceiling: a plain bulk index of the documents those events produce,
//     after each drain and after the rebuild.
func Projector(ctx context.Context, st Stack, env Env, mgmt string) ([]Result, error) {
	n := 100_000
	if env.Quick {
		n = 10_000
	}
	pb := projectorBench{st: st, env: env, mgmt: mgmt, tag: strings.ToLower(uuid.NewString()[:8])}
	if err := env.EnsureProducts(ctx, n); err != nil {
		return nil, err
	}
	pool, err := st.Postgres(ctx)
	if err != nil {
		return nil, err
	}
	records, err := pb.records(ctx, pool, n)
	if err != nil {
		return nil, err
	}
	n = len(records)
	// The drain as the projector role runs it (lanes; one member, then two,
	// in this process; then projector processes), and the rebuild, each
	// beside the plain bulks of the same documents just before and after it
	// (after, for the first drain, whose documents the bulks copy): on a
	// shared VM the same work costs up to a third more a minute later.
	projPrefix := st.IndexPrefix + "-bench-proj-" + pb.tag
	defer deleteIndices(env, projPrefix)
	drainRate, err := pb.drainLanes(ctx, pool, records, projPrefix, 1)
	if err != nil {
		return nil, err
	}
	rawA, err := pb.ceiling(ctx, projPrefix, n, "a")
	if err != nil {
		return nil, err
	}
	proj2Prefix := st.IndexPrefix + "-bench-proj2-" + pb.tag
	defer deleteIndices(env, proj2Prefix)
	drain2Rate, err := pb.drainLanes(ctx, pool, records, proj2Prefix, 2)
	if err != nil {
		return nil, err
	}
	rawB, err := pb.ceiling(ctx, projPrefix, n, "b")
	if err != nil {
		return nil, err
	}
	procRates, rawD, err := pb.processDrains(ctx, records, projPrefix, rawB)
	if err != nil {
		return nil, err
	}

	// The rebuild, from Postgres, into a scratch prefix.
	rebPrefix := st.IndexPrefix + "-bench-rebuild-" + pb.tag
	defer deleteIndices(env, rebPrefix)
	pb.say("rebuilding every model from Postgres")
	events, took, rebuildRate, err := st.Rebuild(ctx, pool, env.ES, rebPrefix, env.Progress)
	if err != nil {
		return nil, err
	}
	// The rate is over the replays alone, as the raw bulk's is over its
	// writes: took also holds the indices' creation, refreshes and swap.
	replay := time.Duration(float64(events) / max(rebuildRate, 1e-9) * float64(time.Second))
	pb.say("rebuilt %d events in %s, %s of it replaying: %.0f events/s", events, took.Round(time.Millisecond), replay.Round(time.Millisecond), rebuildRate)
	rawC, err := pb.ceiling(ctx, projPrefix, n, "c")
	if err != nil {
		return nil, err
	}
	if env.Quick {
		pb.say("ceilings: %.0f after one member, %.0f after two, %.0f after the rebuild (events/s); projector processes: full bench only", rawA, rawB, rawC)
	} else {
		pb.say("ceilings: %.0f after one member, %.0f after two, %.0f after the processes, %.0f after the rebuild (events/s)", rawA, rawB, rawD, rawC)
	}
	out := []Result{
		Rate("projector.drain.members1", drainRate, rawA, "events/s", 0.8),
		Rate("projector.drain.members2", drain2Rate, (rawA+rawB)/2, "events/s", 0.8),
	}
	if len(procRates) == 2 {
		out = append(out,
			Rate("projector.drain.processes1", procRates[0], (rawB+rawD)/2, "events/s", 0.8),
			Rate("projector.drain.processes2", procRates[1], rawD, "events/s", 0.8))
	}
	return append(out, Rate("projector.rebuild", rebuildRate, (rawD+rawC)/2, "events/s", 0.8)), nil
}

// processDrains drains the backlog with projector processes of this
// binary, one and then two, and times the raw bulk after them (rawB, the
// one before, stands in with --quick). Not with --quick: its backlog is
// drained before a second process has its share of the lanes (a member
// that joins takes a lease round or two, 1-2 s).
func (pb projectorBench) processDrains(ctx context.Context, records []event.Record, projPrefix string, rawB float64) ([]float64, float64, error) {
	if pb.env.Quick {
		return nil, rawB, nil
	}
	var rates []float64
	for procs := 1; procs <= 2; procs++ {
		prefix := fmt.Sprintf("%s-bench-procs%d-%s", pb.st.IndexPrefix, procs, pb.tag)
		rate, err := pb.drainProcesses(ctx, records, prefix, procs)
		deleteIndices(pb.env, prefix)
		if err != nil {
			return nil, 0, err
		}
		rates = append(rates, rate)
	}
	rawD, err := pb.ceiling(ctx, projPrefix, len(records), "d")
	return rates, rawD, err
}

// projectorBench holds what the steps of the projector suite share.
type projectorBench struct {
	st   Stack
	env  Env
	mgmt string // RabbitMQ management API, for the scratch vhost
	tag  string // names this run's scratch vhost and indices
}

func (pb projectorBench) say(format string, args ...any) {
	fmt.Fprintf(pb.env.Progress, "bench: projector: "+format+"\n", args...)
}

// records reads the first n records of the store in relay order.
func (pb projectorBench) records(ctx context.Context, pool *pgxpool.Pool, n int) ([]event.Record, error) {
	source, err := postgres.NewRelaySource(pool)
	if err != nil {
		return nil, err
	}
	var records []event.Record
	for cursor := (event.Cursor{}); len(records) < n; {
		recs, err := source.Next(ctx, cursor, min(5000, n-len(records)))
		if err != nil {
			return nil, err
		}
		if len(recs) == 0 {
			break
		}
		records = append(records, recs...)
		cursor = recs[len(recs)-1].Cursor
	}
	return records, nil
}

// scratchVhost makes a vhost of this run's own and connects to it; the
// function it returns closes the connection and drops the vhost.
func (pb projectorBench) scratchVhost(ctx context.Context) (*rabbitmq.Conn, func(), error) {
	return scratchVhost(ctx, pb.st, pb.mgmt, "splitstream-bench-"+pb.tag, "splitstream-bench")
}

// run runs consumer until p's watermark reaches the last record and
// returns events per second.
func (pb projectorBench) run(ctx context.Context, consumer *rabbitmq.ProjectorConsumer, p *projector.Projector, records []event.Record) (float64, error) {
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = consumer.Run(cctx) }()
	defer func() { stop(); wg.Wait() }()
	start := time.Now()
	if err := pb.waitDrained(ctx, p, records, start); err != nil {
		return 0, err
	}
	drain := time.Since(start)
	rate := float64(len(records)) / drain.Seconds()
	pb.say("drained %d events in %s: %.0f events/s", len(records), drain.Round(time.Millisecond), rate)
	return rate, nil
}

// waitDrained waits until the projector's watermark reaches the last record.
func (pb projectorBench) waitDrained(ctx context.Context, p *projector.Projector, records []event.Record, start time.Time) error {
	last := records[len(records)-1].Cursor
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	lastSay := time.Now()
	for p.Watermark().Less(last) {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		if time.Since(lastSay) > 2*time.Second {
			lastSay = time.Now()
			pb.say("draining: position %d of %d (%.0f events/s)", p.Watermark().Position, last.Position, float64(p.Watermark().Position-records[0].Cursor.Position)/time.Since(start).Seconds())
		}
		if time.Since(start) > 15*time.Minute {
			return fmt.Errorf("backlog not drained in 15 minutes")
		}
	}
	return nil
}

// ceiling is the raw bulk: it copies every document under from (what the
// n events produced) into fresh indices of their own with plain bulk index
// requests, times the writing alone, drops those indices again and returns
// events per second.
func (pb projectorBench) ceiling(ctx context.Context, from string, n int, name string) (float64, error) {
	to := pb.st.IndexPrefix + "-bench-raw-" + name + "-" + pb.tag
	defer deleteIndices(pb.env, to)
	took, docs, err := rawBulk(ctx, pb.env, from, to, pb.st.Refresh)
	if err != nil {
		return 0, err
	}
	rate := float64(n) / took.Seconds()
	pb.say("raw bulk of the same %d documents: %s (%.0f events/s equivalent)", docs, took.Round(time.Millisecond), rate)
	return rate, nil
}

// rawBulk copies every document under from into fresh indices under to
// with plain bulk index requests and times the writing alone.
func rawBulk(ctx context.Context, env Env, from, to string, refresh time.Duration) (time.Duration, int, error) {
	if err := elastic.NewIndices(env.ES, to, refresh).Ensure(ctx); err != nil {
		return 0, 0, err
	}
	var bodies []string
	docs := 0
	for _, m := range elastic.Models {
		if err := elastic.NewIndices(env.ES, from, refresh).Refresh(ctx, m); err != nil {
			return 0, 0, err
		}
		bs, n, err := bulkBodies(ctx, env, elastic.Alias(from, m), elastic.Alias(to, m))
		if err != nil {
			return 0, 0, err
		}
		bodies, docs = append(bodies, bs...), docs+n
	}
	start := time.Now()
	if err := sendBulk(ctx, env, bodies); err != nil {
		return 0, 0, err
	}
	return time.Since(start), docs, nil
}

// bulkBodies reads every document of alias from and returns bulk bodies of
// 2,000 index actions each that write them into alias to.
func bulkBodies(ctx context.Context, env Env, from, to string) ([]string, int, error) {
	var (
		bodies []string
		after  []any
		b      strings.Builder
		count  int
	)
	for {
		q := map[string]any{"size": 5000, "sort": []any{map[string]any{"_doc": "asc"}}}
		if after != nil {
			q["search_after"] = after
		}
		body, _ := json.Marshal(q)
		var res struct {
			Hits struct {
				Hits []struct {
					ID     string          `json:"_id"`
					Source json.RawMessage `json:"_source"`
					Sort   []any           `json:"sort"`
				} `json:"hits"`
			} `json:"hits"`
		}
		if err := elastic.Do(ctx, env.ES, http.MethodPost, "/"+from+"/_search", string(body), &res); err != nil {
			return nil, 0, err
		}
		if len(res.Hits.Hits) == 0 {
			break
		}
		for _, h := range res.Hits.Hits {
			fmt.Fprintf(&b, `{"index":{"_index":%q,"_id":%q}}`+"\n%s\n", to, h.ID, h.Source)
			count++
			if count%2000 == 0 {
				bodies = append(bodies, b.String())
				b.Reset()
			}
		}
		after = res.Hits.Hits[len(res.Hits.Hits)-1].Sort
	}
	if b.Len() > 0 {
		bodies = append(bodies, b.String())
	}
	return bodies, count, nil
}

// sendBulk sends bodies with two requests in flight, as many as the node
// has cores, and fails on the first error or item error.
func sendBulk(ctx context.Context, env Env, bodies []string) error {
	next := make(chan string)
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			for body := range next {
				var res struct {
					Errors bool `json:"errors"`
				}
				if err := elastic.DoNDJSON(ctx, env.ES, "/_bulk", body, &res); err != nil {
					errs <- err
					return
				}
				if res.Errors {
					errs <- fmt.Errorf("raw bulk had item errors")
					return
				}
			}
			errs <- nil
		}()
	}
	var failed error
	for _, body := range bodies {
		select {
		case next <- body:
		case failed = <-errs:
		}
		if failed != nil {
			break
		}
	}
	close(next)
	for range 2 {
		if failed != nil {
			break
		}
		failed = <-errs
	}
	return failed
}

func deleteIndices(env Env, prefix string) {
	_ = elastic.Do(context.Background(), env.ES, http.MethodDelete, "/"+prefix+"-*", "", nil)
}
