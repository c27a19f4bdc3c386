package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/bench"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/rabbitmq"
)

// benchProjector measures, on scratch indices and a scratch vhost of the
// same servers:
//   - projector: draining a backlog of N events already in its queue, the
//     real consumer and projector, broker to Elasticsearch;
//   - rebuild: the rebuild of every model from Postgres;
//   - ceiling: a plain bulk index of the documents those events produce.
func benchProjector(ctx context.Context, a *app, env bench.Env, mgmt string) ([]bench.Result, error) {
	n := 100_000
	if env.Quick {
		n = 10_000
	}
	say := func(format string, args ...any) { fmt.Fprintf(env.Progress, "bench: projector: "+format+"\n", args...) }
	if err := env.EnsureProducts(ctx, n); err != nil {
		return nil, err
	}
	pool, err := a.postgres(ctx)
	if err != nil {
		return nil, err
	}
	source := postgres.NewRelaySource(pool)
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
	n = len(records)
	tag := strings.ToLower(uuid.NewString()[:8])

	// A scratch vhost holding the backlog.
	vhost := "splitstream-bench-" + tag
	if err := rabbitmq.Management(ctx, mgmt, http.MethodPut, "/api/vhosts/"+vhost, ""); err != nil {
		return nil, fmt.Errorf("create vhost (RabbitMQ management API at RABBITMQ_MANAGEMENT_URL): %w", err)
	}
	defer rabbitmq.Management(context.WithoutCancel(ctx), mgmt, http.MethodDelete, "/api/vhosts/"+vhost, "")
	amqpURL, _ := url.Parse(a.cfg.AMQPURL)
	if err := rabbitmq.Management(ctx, mgmt, http.MethodPut, "/api/permissions/"+vhost+"/"+amqpURL.User.Username(),
		`{"configure":".*","write":".*","read":".*"}`); err != nil {
		return nil, err
	}
	amqpURL.Path = "/" + vhost
	conn, err := rabbitmq.Dial(ctx, amqpURL.String(), "splitstream-bench", a.log)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	pub, err := rabbitmq.NewPublisher(conn)
	if err != nil {
		return nil, err
	}
	say("publishing a backlog of %d events", n)
	for i := 0; i < n; i += 1000 {
		if err := pub.Publish(ctx, records[i:min(i+1000, n)]); err != nil {
			return nil, err
		}
	}
	pub.Close()

	// Drain it with the real consumer and projector into scratch indices.
	projPrefix := a.cfg.IndexPrefix + "-bench-proj-" + tag
	defer deleteIndices(a, env, projPrefix)
	if err := elastic.NewIndices(env.ES, projPrefix, a.cfg.RefreshInterval).Ensure(ctx); err != nil {
		return nil, err
	}
	p, err := projector.New(projector.Config{Store: elastic.NewDocStore(env.ES, projPrefix), History: postgres.NewEventStore(pool), Log: a.log,
		DeadLetters: projector.NewMemoryDeadLetters(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		return nil, err
	}
	consumer, err := rabbitmq.NewProjectorConsumer(conn, p, rabbitmq.ConsumerConfig{Log: a.log})
	if err != nil {
		return nil, err
	}
	last := records[n-1].Cursor
	cctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); _ = consumer.Run(cctx) }()
	start := time.Now()
	tick := time.NewTicker(50 * time.Millisecond)
	lastSay := time.Now()
	for p.Watermark().Less(last) {
		select {
		case <-ctx.Done():
			stop()
			return nil, ctx.Err()
		case <-tick.C:
		}
		if time.Since(lastSay) > 2*time.Second {
			lastSay = time.Now()
			say("draining: position %d of %d (%.0f events/s)", p.Watermark().Position, last.Position, float64(p.Watermark().Position-records[0].Cursor.Position)/time.Since(start).Seconds())
		}
		if time.Since(start) > 15*time.Minute {
			stop()
			return nil, fmt.Errorf("backlog not drained in 15 minutes")
		}
	}
	drain := time.Since(start)
	tick.Stop()
	stop()
	wg.Wait()
	drainRate := float64(n) / drain.Seconds()
	say("drained %d events in %s: %.0f events/s", n, drain.Round(time.Millisecond), drainRate)

	// The ceiling: the same documents, bulk-indexed plainly.
	rawPrefix := a.cfg.IndexPrefix + "-bench-raw-" + tag
	defer deleteIndices(a, env, rawPrefix)
	rawTook, docs, err := rawBulk(ctx, env, projPrefix, rawPrefix, a)
	if err != nil {
		return nil, err
	}
	ceiling := float64(n) / rawTook.Seconds()
	say("raw bulk of the same %d documents: %s (%.0f events/s equivalent)", docs, rawTook.Round(time.Millisecond), ceiling)

	// The rebuild, from Postgres, into a scratch prefix.
	rebPrefix := a.cfg.IndexPrefix + "-bench-rebuild-" + tag
	defer deleteIndices(a, env, rebPrefix)
	say("rebuilding every model from Postgres")
	r := rebuilder{pool: pool, es: env.ES, indices: elastic.NewIndices(env.ES, rebPrefix, a.cfg.RefreshInterval),
		log: a.log, progress: env.Progress, batch: 5000}
	stats, err := r.run(ctx, elastic.Models, false)
	if err != nil {
		return nil, err
	}
	say("rebuilt %d events in %s: %.0f events/s", stats.events, stats.took.Round(time.Millisecond), stats.rate())
	return []bench.Result{
		bench.Rate("projector.drain", drainRate, ceiling, "events/s", 0.5),
		bench.Rate("projector.rebuild", stats.rate(), ceiling, "events/s", 0.6),
	}, nil
}

// rawBulk copies every document under from into fresh indices under to
// with plain bulk index requests and times the writing alone.
func rawBulk(ctx context.Context, env bench.Env, from, to string, a *app) (time.Duration, int, error) {
	if err := elastic.NewIndices(env.ES, to, a.cfg.RefreshInterval).Ensure(ctx); err != nil {
		return 0, 0, err
	}
	var bodies []string
	docs := 0
	for _, m := range elastic.Models {
		if err := elastic.NewIndices(env.ES, from, a.cfg.RefreshInterval).Refresh(ctx, m); err != nil {
			return 0, 0, err
		}
		var after []any
		var b strings.Builder
		count := 0
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
			if err := elastic.Do(ctx, env.ES, http.MethodPost, "/"+elastic.Alias(from, m)+"/_search", string(body), &res); err != nil {
				return 0, 0, err
			}
			if len(res.Hits.Hits) == 0 {
				break
			}
			for _, h := range res.Hits.Hits {
				fmt.Fprintf(&b, `{"index":{"_index":%q,"_id":%q}}`+"\n%s\n", elastic.Alias(to, m), h.ID, h.Source)
				count++
				docs++
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
	}
	// Two requests in flight, as many as the node has cores.
	start := time.Now()
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
	if failed != nil {
		return 0, 0, failed
	}
	return time.Since(start), docs, nil
}

func deleteIndices(a *app, env bench.Env, prefix string) {
	_ = elastic.Do(context.Background(), env.ES, http.MethodDelete, "/"+prefix+"-*", "", nil)
}
