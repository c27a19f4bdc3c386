package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/rabbitmq"
	"github.com/splitstream/splitstream/tracing"
	"github.com/splitstream/splitstream/tracing/provider"
)

// tracingGoal is the most throughput tracing may cost.
const tracingGoal = 0.95

// discard is a span exporter that drops every span: what the benches
// measure is the cost of making spans and handing them to the batch span
// processor, not a collector's.
type discard struct{}

func (discard) ExportSpans(context.Context, []sdktrace.ReadOnlySpan) error { return nil }
func (discard) Shutdown(context.Context) error                             { return nil }

// benchTracer is the provider a traced run uses: the production one
// (batch span processor, our limits) exporting to discard.
func benchTracer(ctx context.Context, version string) (*sdktrace.TracerProvider, error) {
	return provider.New(ctx, discard{}, version)
}

func tracingResult(name string, on, off float64, unit string) Result {
	r := Rate(name, on, off, unit, tracingGoal)
	r.Goal = fmt.Sprintf("≥ %.2f × tracing off", tracingGoal)
	return r
}

// benchWriteTracing measures createProduct through two command services
// this process starts on loopback, one with tracing off and one with it on,
// side by side at 8 and 32 clients each.
func benchWriteTracing(ctx context.Context, st Stack, env Env) ([]Result, error) {
	tp, err := benchTracer(ctx, st.Version)
	if err != nil {
		return nil, err
	}
	defer tp.Shutdown(context.WithoutCancel(ctx))
	urls := map[bool]string{}
	for _, on := range []bool{false, true} {
		var tpOn trace.TracerProvider
		if on {
			tpOn = tp
		}
		u, stop, err := st.CommandServer(ctx, tpOn)
		if err != nil {
			return nil, err
		}
		defer stop()
		urls[on] = u
	}
	var out []Result
	for _, clients := range []int{8, 32} {
		env.Progress.Write([]byte(fmt.Sprintf("bench: write: tracing off and on side by side, %d clients each, 3 × %s\n", clients, benchDuration(env))))
		rates, err := sideBySide(3, func(on bool) (func() (float64, error), func(), error) {
			g := env.Command
			g.URL = urls[on]
			return func() (float64, error) {
				rate, _, err := Load(ctx, clients, benchDuration(env), func(ctx context.Context, c, i int) error {
					return g.Do(ctx, `mutation($in: CreateProductInput!) { createProduct(input: $in) { id } }`, map[string]any{"in": map[string]any{
						"name": fmt.Sprintf("Traced %d-%d", c, i), "description": "A benchmark product.", "category": "bench",
						"priceCents": 1999, "currency": "EUR", "stock": 100}}, nil)
				})
				return rate, err
			}, func() {}, nil
		})
		if err != nil {
			return nil, err
		}
		env.Progress.Write([]byte(fmt.Sprintf("bench: write: %d clients: tracing on %.0f/s, off %.0f/s\n", clients, rates[true], rates[false])))
		out = append(out, tracingResult(fmt.Sprintf("write.c%d.tracing", clients), rates[true], rates[false], "ops/s"))
	}
	return out, nil
}

// sideBySide prepares a run with tracing off and one with it on, then
// runs both at the same time, so both meet the same load from the rest of
// the machine; rounds times. It returns each side's mean rate.
func sideBySide(rounds int, prepare func(on bool) (run func() (float64, error), cleanup func(), err error)) (map[bool]float64, error) {
	sum := map[bool]float64{}
	for range rounds {
		runs := map[bool]func() (float64, error){}
		for _, on := range []bool{false, true} {
			run, cleanup, err := prepare(on)
			if err != nil {
				return nil, err
			}
			defer cleanup()
			runs[on] = run
		}
		var (
			wg   sync.WaitGroup
			mu   sync.Mutex
			errs []error
		)
		for on, run := range runs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rate, err := run()
				mu.Lock()
				defer mu.Unlock()
				sum[on] += rate
				errs = append(errs, err)
			}()
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
	}
	return map[bool]float64{false: sum[false] / float64(rounds), true: sum[true] / float64(rounds)}, nil
}

func benchDuration(env Env) time.Duration {
	if env.Quick {
		return 4 * time.Second
	}
	return 10 * time.Second
}

// benchProjectorTracing drains the same backlog with the real consumer and
// projector, tracing off and on side by side, each on a scratch vhost and
// scratch indices of its own. Every event carries a trace context of its own, the
// worst case for the batch span's links.
func benchProjectorTracing(ctx context.Context, st Stack, env Env, mgmt string) ([]Result, error) {
	n := 50_000
	if env.Quick {
		n = 10_000
	}
	if err := env.EnsureProducts(ctx, n); err != nil {
		return nil, err
	}
	pool, err := st.Postgres(ctx)
	if err != nil {
		return nil, err
	}
	records, err := projectorBench{st: st, env: env}.records(ctx, pool, n)
	if err != nil {
		return nil, err
	}
	if len(records) == 0 {
		return nil, errors.New("the event log is empty")
	}
	tp, err := benchTracer(ctx, st.Version)
	if err != nil {
		return nil, err
	}
	defer tp.Shutdown(context.WithoutCancel(ctx))
	tr := tracing.Tracer(tp)
	for i := range records {
		sctx, span := tr.Start(ctx, "append")
		records[i].Envelope.Metadata = tracing.Stamp(sctx, records[i].Envelope.Metadata)
		span.End()
	}
	fmt.Fprintf(env.Progress, "bench: projector: draining %d events with tracing off and on side by side, 2 rounds\n", len(records))
	rates, err := sideBySide(2, func(on bool) (func() (float64, error), func(), error) {
		var t trace.Tracer
		if on {
			t = tr
		}
		return prepareDrain(ctx, st, env, mgmt, records, t)
	})
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(env.Progress, "bench: projector: tracing on %.0f events/s, off %.0f events/s\n", rates[true], rates[false])
	return []Result{tracingResult("projector.drain.tracing", rates[true], rates[false], "events/s")}, nil
}

// prepareDrain publishes records to a scratch vhost and makes scratch
// indices; run times the real consumer and projector (t nil: tracing off)
// draining them; cleanup removes the scratch resources.
func prepareDrain(ctx context.Context, st Stack, env Env, mgmt string, records []event.Record, t trace.Tracer) (run func() (float64, error), cleanup func(), err error) {
	tag := strings.ToLower(uuid.NewString()[:8])
	pb := projectorBench{st: st, env: env, mgmt: mgmt, tag: "tracing-" + tag}
	conn, drop, err := pb.scratchVhost(ctx)
	if err != nil {
		return nil, nil, err
	}
	prefix := st.IndexPrefix + "-bench-tracing-" + tag
	cleanup = func() { drop(); deleteIndices(env, prefix) }
	pub, err := rabbitmq.NewPublisher(conn)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	defer pub.Close()
	for i := 0; i < len(records); i += 1000 {
		if err := pub.Publish(ctx, records[i:min(i+1000, len(records))]); err != nil {
			cleanup()
			return nil, nil, err
		}
	}
	if err := elastic.NewIndices(env.ES, prefix, st.Refresh).Ensure(ctx); err != nil {
		cleanup()
		return nil, nil, err
	}
	pool, err := st.Postgres(ctx)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	history, err := postgres.NewEventStore(pool)
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	p, err := projector.New(projector.Config{Store: elastic.NewDocStore(env.ES, prefix), History: history, Log: st.Log,
		DeadLetters: projector.NewMemoryDeadLetters(), Registerer: prometheus.NewRegistry()})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	var h rabbitmq.ProjectorHandler = p
	if t != nil {
		h = st.TraceProjector(p, t)
	}
	consumer, err := rabbitmq.NewProjectorConsumer(conn, h, rabbitmq.ConsumerConfig{Log: st.Log})
	if err != nil {
		cleanup()
		return nil, nil, err
	}
	return func() (float64, error) { return pb.run(ctx, consumer, p, records) }, cleanup, nil
}
