package bench

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/schollz/progressbar/v3"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/postgres"
)

// historyLengths are the stream lengths bench command-history compares.
var historyLengths = []int{10, 1_000, 10_000}

// CommandHistory measures restockProduct through the command layer
// (service and Postgres event store, no HTTP) on products whose streams are
// 10, 1,000 and 10,000 events long, in a scratch database on the same
// server, dropped afterwards. A command's cost should not depend on the
// length: the goal is p50 at 10,000 within 1.5 × p50 at 10.
//
// Samples are interleaved (one per length in turn) so that noise on a
// shared machine falls on every length alike. The long streams take every
// sample themselves and grow by the sample count; the length-10 samples go
// each to their own 10-event product, so that length stays 10.
func CommandHistory(ctx context.Context, st Stack, env Env) ([]Result, error) {
	samples := 300
	if env.Quick {
		samples = 100
	}
	say := func(format string, args ...any) {
		fmt.Fprintf(env.Progress, "bench: command-history: "+format+"\n", args...)
	}

	dbURL, drop, err := scratchDatabase(ctx, st.DatabaseURL, "splitstream_bench_"+strings.ReplaceAll(uuid.NewString()[:8], "-", ""))
	if err != nil {
		return nil, err
	}
	defer drop()
	pool, err := postgres.Open(ctx, dbURL, 4)
	if err != nil {
		return nil, err
	}
	defer pool.Close()
	if err := postgres.Migrate(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		return nil, err
	}
	store, err := postgres.NewEventStore(pool)
	if err != nil {
		return nil, err
	}
	svc, err := command.NewService(store)
	if err != nil {
		return nil, err
	}
	create := func() (string, error) {
		res, err := svc.CreateProduct(ctx, command.Meta{}, command.CreateProduct{Name: "Bench kettle", Category: "bench",
			PriceCents: 1999, Currency: "EUR", Stock: 0})
		return res.ID, err
	}
	restock := func(id string) error {
		_, err := svc.ChangeProduct(ctx, id, command.Meta{}, command.RestockProduct{Quantity: 1})
		return err
	}

	short, long, err := growHistories(ctx, env, samples, create, restock)
	if err != nil {
		return nil, err
	}
	say("measuring %d restocks at each length", samples)
	lat, err := sampleRestocks(samples, short, long, restock)
	if err != nil {
		return nil, err
	}
	base := Percentile(lat[0], 50)
	var out []Result
	for l, n := range historyLengths {
		p50, p99 := Percentile(lat[l], 50), Percentile(lat[l], 99)
		name := fmt.Sprintf("history.restock.len%d", n)
		if l == 0 {
			out = append(out, Latency(name+".p50", p50, base, "reported (the base)", time.Hour))
		} else {
			out = append(out, Latency(name+".p50", p50, base, "≤ 1.5 × p50 at length 10", base*3/2))
		}
		out = append(out, Latency(name+".p99", p99, Percentile(lat[0], 99), "reported beside p99 at length 10", time.Hour))
	}
	return out, nil
}

// growHistories grows, through the command layer as production would,
// samples products of the shortest length (one per sample, so that length
// stays put) and one product of each longer length.
func growHistories(ctx context.Context, env Env, samples int, create func() (string, error), restock func(string) error) (short, long []string, err error) {
	total := samples*historyLengths[0] + historyLengths[1] + historyLengths[2]
	bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(env.Progress), progressbar.OptionSetDescription("history "),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("cmd"),
		progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(env.Progress) }))
	grow := func(n int) (string, error) {
		id, err := create()
		if err != nil {
			return "", err
		}
		_ = bar.Add(1)
		for range n - 1 {
			if err := restock(id); err != nil {
				return "", err
			}
			_ = bar.Add(1)
		}
		return id, nil
	}
	fmt.Fprintf(env.Progress, "bench: command-history: growing %d products of %d events, and one each of %d and %d\n",
		samples, historyLengths[0], historyLengths[1], historyLengths[2])
	short = make([]string, samples)
	for i := range short {
		if short[i], err = grow(historyLengths[0]); err != nil {
			return nil, nil, err
		}
	}
	long = make([]string, len(historyLengths)-1)
	for i, n := range historyLengths[1:] {
		if long[i], err = grow(n); err != nil {
			return nil, nil, err
		}
	}
	_ = bar.Finish()
	return short, long, nil
}

// sampleRestocks times one restock per length in turn, samples times, so
// that noise on a shared machine falls on every length alike.
func sampleRestocks(samples int, short, long []string, restock func(string) error) ([][]time.Duration, error) {
	lat := make([][]time.Duration, len(historyLengths))
	for i := range samples {
		for l := range historyLengths {
			id := short[i]
			if l > 0 {
				id = long[l-1]
			}
			start := time.Now()
			if err := restock(id); err != nil {
				return nil, err
			}
			lat[l] = append(lat[l], time.Since(start))
		}
	}
	return lat, nil
}

// scratchDatabase creates database name on the server of rawURL and
// returns its URL and a function that drops it.
func scratchDatabase(ctx context.Context, rawURL, name string) (string, func(), error) {
	admin, err := pgx.Connect(ctx, rawURL)
	if err != nil {
		return "", nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	defer admin.Close(context.WithoutCancel(ctx))
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
		return "", nil, fmt.Errorf("create scratch database %s: %w", name, err)
	}
	u, err := url.Parse(rawURL)
	if err != nil {
		return "", nil, fmt.Errorf("DATABASE_URL: %w", err)
	}
	u.Path = "/" + name
	drop := func() {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, rawURL)
		if err != nil {
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)")
	}
	return u.String(), drop, nil
}
