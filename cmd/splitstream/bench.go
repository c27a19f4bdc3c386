package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/bench"
	"github.com/splitstream/splitstream/internal/demo"
	"github.com/splitstream/splitstream/postgres"
)

var benchSuites = []string{"write", "visible", "projector", "query", "subscriptions", "relay", "gateway"}

// standalone suites need only the servers, not a running stack; they run
// only when named.
var standalone = []string{"command-history"}

// benchFlags: splitstream bench [--quick] [--json FILE] [suite...], against
// a running stack; command-history needs only Postgres.
func benchFlags(fs *flag.FlagSet) func(context.Context, *app) error {
	quick := fs.Bool("quick", false, "run every suite at a size that ends within about 3 minutes")
	jsonOut := fs.String("json", "", "also write the results as JSON to this file")
	commandURL := fs.String("command-url", "http://127.0.0.1:8080/graphql", "the command service's GraphQL endpoint")
	queryURL := fs.String("query-url", "http://127.0.0.1:8090/graphql", "the query service's GraphQL endpoint")
	gatewayURL := fs.String("gateway-url", "http://127.0.0.1:8000/graphql", "the gateway's GraphQL endpoint")
	mgmtURL := fs.String("rabbitmq-management-url", "http://guest:guest@127.0.0.1:15672", "RabbitMQ management API (the projector and relay suites make scratch vhosts)")
	relayBacklog := fs.Int("relay-backlog", 100_000, "events in the relay suite's backlog (1000 to 10000000)")
	return func(ctx context.Context, a *app) error {
		suites := fs.Args()
		if len(suites) == 0 {
			suites = benchSuites
		}
		for _, s := range suites {
			if !slices.Contains(benchSuites, s) && !slices.Contains(standalone, s) {
				return fmt.Errorf("unknown suite %q; suites: %s", s, strings.Join(append(slices.Clone(benchSuites), standalone...), ", "))
			}
		}
		// The relay suite, like the standalone ones, runs on scratch resources alone.
		needStack := slices.ContainsFunc(suites, func(s string) bool { return !slices.Contains(standalone, s) && s != "relay" })
		pool, err := a.postgres(ctx)
		if err != nil {
			return err
		}
		httpClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
		// The bench acts as an admin (not rate limited), minted from the
		// stack's secret; with no secret it goes anonymous (SPLITSTREAM_AUTH=off).
		var token string
		if a.cfg.JWTSecret != "" {
			if token, err = auth.Mint([]byte(a.cfg.JWTSecret), "bench", []string{auth.RoleAdmin}, 24*time.Hour, time.Now()); err != nil {
				return err
			}
		}
		env := bench.Env{
			Command:  bench.GraphQL{URL: *commandURL, Client: httpClient, Token: token},
			Query:    bench.GraphQL{URL: *queryURL, Client: httpClient, Token: token},
			Gateway:  bench.GraphQL{URL: *gatewayURL, Client: httpClient, Token: token},
			QueryWS:  "ws" + strings.TrimPrefix(*queryURL, "http"),
			Pool:     pool,
			Prefix:   a.cfg.IndexPrefix,
			Refresh:  a.cfg.RefreshInterval,
			Quick:    *quick,
			Progress: os.Stderr,
		}
		if *relayBacklog < 1000 || *relayBacklog > 10_000_000 {
			return errors.New("--relay-backlog must be between 1000 and 10000000")
		}
		if needStack {
			if env.ES, err = a.elasticsearch(ctx); err != nil {
				return err
			}
			for name, g := range map[string]bench.GraphQL{"command": env.Command, "query": env.Query} {
				if err := g.Do(ctx, `{ __typename }`, nil, nil); err != nil {
					return fmt.Errorf("the %s service does not answer at %s (start the stack with make run): %w", name, g.URL, err)
				}
			}
		}
		env.EnsureProducts = func(ctx context.Context, n int) error { return ensureProducts(ctx, a, env, n) }
		start := time.Now()
		var (
			results    []bench.Result
			visibleP99 time.Duration
		)
		for _, s := range suites {
			var (
				rs  []bench.Result
				err error
			)
			switch s {
			case "write":
				rs, err = bench.Write(ctx, env)
			case "visible":
				rs, visibleP99, err = bench.Visible(ctx, env)
			case "projector":
				rs, err = benchProjector(ctx, a, env, *mgmtURL)
			case "query":
				rs, err = bench.Query(ctx, env)
			case "gateway":
				rs, err = bench.Gateway(ctx, env)
			case "relay":
				rs, err = benchRelay(ctx, a, env, *mgmtURL, *relayBacklog)
			case "command-history":
				rs, err = benchCommandHistory(ctx, a, env)
			case "subscriptions":
				if visibleP99 == 0 {
					var vis []bench.Result
					vis, visibleP99, err = bench.Visible(ctx, env)
					rs = append(rs, vis...)
				}
				if err == nil {
					var subs []bench.Result
					subs, err = bench.Subscriptions(ctx, env, visibleP99)
					rs = append(rs, subs...)
				}
			}
			if err != nil {
				return fmt.Errorf("bench %s: %w", s, err)
			}
			results = append(results, rs...)
		}
		fmt.Fprintf(a.out, "\nsplitstream bench (%s, refresh interval %s, %s)\n\n", map[bool]string{true: "quick", false: "full"}[*quick],
			a.cfg.RefreshInterval, time.Since(start).Round(time.Second))
		bench.Table(a.out, results)
		if *jsonOut != "" {
			b, err := json.MarshalIndent(results, "", "  ")
			if err != nil {
				return err
			}
			if err := os.WriteFile(*jsonOut, append(b, '\n'), 0o644); err != nil {
				return fmt.Errorf("--json: %w", err)
			}
		}
		return nil
	}
}

// ensureProducts creates demo products through the command layer until the
// index holds n, then waits for the projector to catch up. Command ids come
// from a fixed seed, so a second run reuses the same products.
func ensureProducts(ctx context.Context, a *app, env bench.Env, n int) error {
	count := func() (int, error) {
		var res struct{ Count int }
		err := elastic.Do(ctx, env.ES, http.MethodGet, "/"+elastic.Alias(env.Prefix, elastic.Products)+"/_count", "", &res)
		return res.Count, err
	}
	have, err := count()
	if err != nil {
		return err
	}
	if have >= n {
		return nil
	}
	pool, err := a.postgres(ctx)
	if err != nil {
		return err
	}
	svc, err := command.NewService(postgres.NewEventStore(pool))
	if err != nil {
		return err
	}
	plan := demo.Make(4242, n, 0, 0)
	s := &seeder{progress: a.errOut(), svc: svc, seed: 4242, workers: 16, ids: make([]string, n)}
	env.Progress.Write([]byte(fmt.Sprintf("bench: creating up to %d products (have %d)\n", n, have)))
	if err := s.run(ctx, "products", n, func(ctx context.Context, i int) (command.Result, error) {
		p := plan.Products[i]
		return svc.CreateProduct(ctx, s.meta("bench-p", i), command.CreateProduct{Name: p.Name, Description: p.Description,
			Category: p.Category, PriceCents: p.PriceCents, Currency: p.Currency, Stock: p.Stock})
	}); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Minute)
	for {
		got, err := count()
		if err == nil && got >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("products were not projected within 10 minutes")
		}
		fmt.Fprintf(env.Progress, "bench: waiting for the projector: %d of %d products indexed\n", got, n)
		time.Sleep(2 * time.Second)
	}
}
