package bench

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime/pprof"
	"slices"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/demo"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/query"
	"github.com/splitstream/splitstream/rabbitmq"
)

// Suites run by default, against a running stack (relay only on scratch
// resources of the same servers).
var Suites = []string{"write", "visible", "projector", "query", "subscriptions", "relay", "gateway"}

// standalone suites need only the servers, not a running stack; they run
// only when named.
var standalone = []string{"command-history"}

// Stack is what the process hands the bench: the servers as it is
// configured for them, opened its own way, and the rebuild it runs.
type Stack struct {
	DatabaseURL string // scratch databases are made on this server
	AMQPURL     string // scratch vhosts are made on this broker, for this user
	// ElasticsearchURL is handed to the projector processes the projector
	// suite starts (projector_procs.go).
	ElasticsearchURL string
	JWTSecret        string // the bench mints itself an admin token from it; "" goes anonymous
	IndexPrefix      string
	Refresh          time.Duration
	Log              *slog.Logger

	Postgres      func(context.Context) (*pgxpool.Pool, error)
	Elasticsearch func(context.Context) (*elasticsearch.Client, error)
	// Rebuild rebuilds every read model from pool's events into fresh
	// indices under prefix: how many events, how long in all, and events
	// per second of the replay.
	Rebuild func(ctx context.Context, pool *pgxpool.Pool, es *elasticsearch.Client, prefix string, progress io.Writer) (events int64, took time.Duration, rate float64, err error)

	// For --tracing: the binary's version (the traced runs' resource), a
	// command role of the process's own served on loopback (tracing with
	// tp; nil is off) with its GraphQL URL, and the projector role's batch
	// span around a handler.
	Version        string
	CommandServer  func(ctx context.Context, tp trace.TracerProvider) (url string, stop func(), err error)
	TraceProjector func(p *projector.Projector, t trace.Tracer) rabbitmq.ProjectorHandler
}

// Flags are splitstream bench's options.
type Flags struct {
	jsonOut, commandURL, queryURL, gatewayURL, mgmtURL *string
	queryMetrics, cpuProfile                           *string
	relayBacklog, subscribers                          *int
	isQuick, traced                                    *bool
}

// BindFlags adds bench's flags to fs: splitstream bench [flags] [suite...].
func BindFlags(fs *flag.FlagSet) *Flags {
	return &Flags{
		isQuick:      fs.Bool("quick", false, "run every suite at a size that ends within about 3 minutes"),
		jsonOut:      fs.String("json", "", "also write the results as JSON to this file"),
		commandURL:   fs.String("command-url", "http://127.0.0.1:8080/graphql", "the command service's GraphQL endpoint"),
		queryURL:     fs.String("query-url", "http://127.0.0.1:8090/graphql", "the query service's GraphQL endpoint"),
		gatewayURL:   fs.String("gateway-url", "http://127.0.0.1:8000/graphql", "the gateway's GraphQL endpoint"),
		mgmtURL:      fs.String("rabbitmq-management-url", "http://guest:guest@127.0.0.1:15672", "RabbitMQ management API (the projector and relay suites make scratch vhosts)"),
		traced:       fs.Bool("tracing", false, "write and projector also run with tracing on (a no-op exporter behind the batch span processor) beside off"),
		relayBacklog: fs.Int("relay-backlog", 100_000, "events in the relay suite's backlog (1000 to 10000000)"),
		queryMetrics: fs.String("query-metrics-url", "http://127.0.0.1:8070/metrics", "the query instance's /metrics (admin listener): the subscriptions suite reads its resident memory and goroutines before and after opening the subscribers; empty or unreachable: not measured"),
		cpuProfile:   fs.String("cpuprofile", "", "write a CPU profile of the bench process to this file (the projector suite's member drains and the relay suite run those roles inside it; its projector processes are apart)"),
		subscribers:  fs.Int("subscribers", 1000, "WebSocket subscribers the subscriptions suite opens on the query instance, one connection each (100 to 50000; above about 4000 start the stack with SPLITSTREAM_HTTP_MAX_CONNS raised)"),
	}
}

// Run runs the named suites (all of Suites when none) and prints the table
// to out, and to the --json file when asked.
func Run(ctx context.Context, f *Flags, suites []string, st Stack, out io.Writer) error {
	if len(suites) == 0 {
		suites = Suites
	}
	for _, s := range suites {
		if !slices.Contains(Suites, s) && !slices.Contains(standalone, s) {
			return fmt.Errorf("unknown suite %q; suites: %s", s, strings.Join(append(slices.Clone(Suites), standalone...), ", "))
		}
	}
	env, err := newEnv(ctx, f, suites, st)
	if err != nil {
		return err
	}
	if *f.cpuProfile != "" {
		pf, err := os.Create(*f.cpuProfile)
		if err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pf.Close()
		if err := pprof.StartCPUProfile(pf); err != nil {
			return fmt.Errorf("--cpuprofile: %w", err)
		}
		defer pprof.StopCPUProfile()
	}
	start := time.Now()
	results, err := runSuites(ctx, f, suites, st, env)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "\nsplitstream bench (%s, refresh interval %s, %s)\n\n", map[bool]string{true: "quick", false: "full"}[*f.isQuick],
		st.Refresh, time.Since(start).Round(time.Second))
	Table(out, results)
	if *f.jsonOut != "" {
		b, err := json.MarshalIndent(results, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*f.jsonOut, append(b, '\n'), 0o644); err != nil {
			return fmt.Errorf("--json: %w", err)
		}
	}
	return nil
}

// newEnv opens what the suites need and checks that the stack answers when
// a suite needs it.
func newEnv(ctx context.Context, f *Flags, suites []string, st Stack) (Env, error) {
	// The relay suite, like the standalone ones, runs on scratch resources alone.
	needStack := slices.ContainsFunc(suites, func(s string) bool { return !slices.Contains(standalone, s) && s != "relay" })
	pool, err := st.Postgres(ctx)
	if err != nil {
		return Env{}, err
	}
	httpClient := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	// The bench acts as an admin (not rate limited), minted from the
	// stack's secret; with no secret it goes anonymous (SPLITSTREAM_AUTH=off).
	var token string
	if st.JWTSecret != "" {
		if token, err = auth.Mint([]byte(st.JWTSecret), "bench", []string{auth.RoleAdmin}, 24*time.Hour, time.Now()); err != nil {
			return Env{}, err
		}
	}
	env := Env{
		Command:      GraphQL{URL: *f.commandURL, Client: httpClient, Token: token},
		Query:        GraphQL{URL: *f.queryURL, Client: httpClient, Token: token},
		Gateway:      GraphQL{URL: *f.gatewayURL, Client: httpClient, Token: token},
		QueryWS:      "ws" + strings.TrimPrefix(*f.queryURL, "http"),
		Pool:         pool,
		Prefix:       st.IndexPrefix,
		Refresh:      st.Refresh,
		Quick:        *f.isQuick,
		Progress:     os.Stderr,
		Subscribers:  *f.subscribers,
		QueryMetrics: *f.queryMetrics,
	}
	if *f.subscribers < 100 || *f.subscribers > 50_000 {
		return Env{}, errors.New("--subscribers must be between 100 and 50000")
	}
	if *f.relayBacklog < 1000 || *f.relayBacklog > 10_000_000 {
		return Env{}, errors.New("--relay-backlog must be between 1000 and 10000000")
	}
	if needStack {
		if env.ES, err = st.Elasticsearch(ctx); err != nil {
			return Env{}, err
		}
		for name, g := range map[string]GraphQL{"command": env.Command, "query": env.Query} {
			if err := g.Do(ctx, `{ __typename }`, nil, nil); err != nil {
				return Env{}, fmt.Errorf("the %s service does not answer at %s (start the stack with make run): %w", name, g.URL, err)
			}
		}
	}
	env.EnsureProducts = func(ctx context.Context, n int) error { return ensureProducts(ctx, env, n) }
	return env, nil
}

// runSuites runs each suite in turn; subscriptions measures visibility
// first when the visible suite did not run before it.
func runSuites(ctx context.Context, f *Flags, suites []string, st Stack, env Env) ([]Result, error) {
	var (
		results    []Result
		visibleP99 time.Duration
	)
	for _, s := range suites {
		var (
			rs  []Result
			err error
		)
		switch s {
		case "write":
			rs, err = Write(ctx, env)
			if err == nil && *f.traced {
				var more []Result
				more, err = benchWriteTracing(ctx, st, env)
				rs = append(rs, more...)
			}
		case "visible":
			rs, visibleP99, err = Visible(ctx, env)
		case "projector":
			rs, err = Projector(ctx, st, env, *f.mgmtURL)
			if err == nil && *f.traced {
				var more []Result
				more, err = benchProjectorTracing(ctx, st, env, *f.mgmtURL)
				rs = append(rs, more...)
			}
		case "query":
			rs, err = Query(ctx, env)
		case "gateway":
			rs, err = Gateway(ctx, env)
		case "relay":
			rs, err = Relay(ctx, st, env, *f.mgmtURL, *f.relayBacklog)
		case "command-history":
			rs, err = CommandHistory(ctx, st, env)
		case "subscriptions":
			if visibleP99 == 0 {
				var vis []Result
				vis, visibleP99, err = Visible(ctx, env)
				rs = append(rs, vis...)
			}
			if err == nil {
				var subs []Result
				subs, err = Subscriptions(ctx, env, visibleP99)
				rs = append(rs, subs...)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("bench %s: %w", s, err)
		}
		results = append(results, rs...)
	}
	return results, nil
}

// ensureProducts creates demo products through the command layer until the
// index holds n, then waits for the projector to catch up. Command ids come
// from a fixed seed, so a second run reuses the same products.
func ensureProducts(ctx context.Context, env Env, n int) error {
	count := func() (int, error) {
		var res struct{ Count int }
		err := elastic.Do(ctx, env.ES, http.MethodGet, "/"+elastic.Alias(env.Prefix, query.Products.Index)+"/_count", "", &res)
		return res.Count, err
	}
	have, err := count()
	if err != nil {
		return err
	}
	if have >= n {
		return nil
	}
	store, err := postgres.NewEventStore(env.Pool)
	if err != nil {
		return err
	}
	svc, err := command.NewService(store)
	if err != nil {
		return err
	}
	plan := demo.Make(4242, n, 0, 0)
	s := &demo.Seeder{Progress: env.Progress, Seed: 4242, Workers: 16}
	env.say("creating up to %d products (have %d)", n, have)
	if err := s.Run(ctx, "products", n, func(ctx context.Context, i int) (command.Result, error) {
		p := plan.Products[i]
		return svc.CreateProduct(ctx, s.Meta("bench-p", i), command.CreateProduct{Name: p.Name, Description: p.Description,
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
		env.say("waiting for the projector: %d of %d products indexed", got, n)
		time.Sleep(2 * time.Second)
	}
}
