// Command splitstream is the one binary of Splitstream: every role (command,
// relay, projector, saga, query) and every tool (migrate, rebuild, seed,
// bench). main reads the configuration, builds each dependency once and runs
// the roles asked for.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"strings"
	"syscall"

	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/tracing"
	"github.com/splitstream/splitstream/tracing/provider"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

type subcommand struct {
	name, summary string
	// flags adds the subcommand's own flags; run does the work.
	flags func(fs *flag.FlagSet) func(ctx context.Context, a *app) error
}

func subcommands() []subcommand {
	roles := func(names ...string) func(*flag.FlagSet) func(context.Context, *app) error {
		return func(*flag.FlagSet) func(context.Context, *app) error {
			return func(ctx context.Context, a *app) error { return a.runRoles(ctx, names...) }
		}
	}
	return []subcommand{
		{"all", "every role in one process (command, relay, projector, saga, query, gateway)", roles(roleCommand, roleRelay, roleProjector, roleSaga, roleQuery, roleGateway)},
		{"command", "the command service: write schema on " + ":8080", roles(roleCommand)},
		{"relay", "publish committed events to RabbitMQ", roles(roleRelay)},
		{"projector", "project events into Elasticsearch", roles(roleProjector)},
		{"saga", "run the order fulfilment process manager", roles(roleSaga)},
		{"query", "the query service: read schema and subscriptions on :8090", roles(roleQuery)},
		{"gateway", "one GraphQL endpoint over both services on :8000", roles(roleGateway)},
		{"migrate", "bring the Postgres schema up to date and exit", func(*flag.FlagSet) func(context.Context, *app) error {
			return func(ctx context.Context, a *app) error { return a.migrate(ctx) }
		}},
		{"dead", "list, show, replay or drop the projector's dead letters", deadFlags},
		{"rebuild", "rebuild read models from the event store into new indices, then swap aliases", rebuildFlags},
		{"seed", "create demo data through the command layer", seedFlags},
		{"bench", "measure the running stack beside each component's raw ceiling", benchFlags},
		{"token", "print a JWT signed with SPLITSTREAM_JWT_SECRET: --sub ID [--admin] [--ttl 1h]", tokenFlags},
	}
}

// gcPercent is the garbage collector's target (GOGC) when the environment
// sets none. Every role's live heap is small and bounded (batches, caches
// and limits of fixed size), and its CPU goes to garbage made per request
// or per event: at Go's default of 100 the collector's workers alone took
// about a tenth of the CPU in profiles of the projector and the command
// service, with more in allocation assists. 400 collects a quarter as
// often for a heap up to five times the live one (README, "Garbage
// collection"). GOGC and GOMEMLIMIT, when set, are the runtime's as usual.
const gcPercent = 400

// tuneGC sets gcPercent unless GOGC is set.
func tuneGC(env func(string) string) {
	if env("GOGC") == "" {
		debug.SetGCPercent(gcPercent)
	}
}

func main() {
	tuneGC(os.Getenv)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, "splitstream %s — CQRS + GraphQL storefront backend\n\nUsage: splitstream <command> [flags]\n\nCommands:\n", version)
	for _, s := range subcommands() {
		fmt.Fprintf(w, "  %-10s %s\n", s.name, s.summary)
	}
	fmt.Fprintf(w, "  %-10s %s\n\nRun 'splitstream <command> --help' for every setting.\n", "version", "print the version")
}

func run(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer) int {
	return runTraced(ctx, args, env, stdout, stderr, nil)
}

// runTraced is run with tp as the tracer provider; nil means the one the
// OTEL_* environment asks for (none: tracing off).
func runTraced(ctx context.Context, args []string, env func(string) string, stdout, stderr io.Writer, tp trace.TracerProvider) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		return 0
	}
	if args[0] == "version" || args[0] == "--version" {
		fmt.Fprintf(stdout, "splitstream %s\n", version)
		return 0
	}
	var sub *subcommand
	for _, s := range subcommands() {
		if s.name == args[0] {
			sub = &s
			break
		}
	}
	if sub == nil {
		fmt.Fprintf(stderr, "splitstream: unknown command %q\n\n", args[0])
		usage(stderr)
		return 2
	}
	fs := flag.NewFlagSet("splitstream "+sub.name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: splitstream %s [flags]\n\n%s.\n\nEvery flag defaults to its environment variable, then to the built-in default.\n\n", sub.name, sub.summary)
		fs.PrintDefaults()
	}
	config := bindConfig(fs, env)
	do := sub.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	cfg, err := config()
	if err != nil {
		fmt.Fprintf(stderr, "splitstream: configuration: %v\n", err)
		return 2
	}
	log := newLogger(cfg, stderr)
	if tp == nil {
		p, shutdown, err := provider.FromEnv(ctx, env, version)
		if err != nil {
			fmt.Fprintf(stderr, "splitstream: tracing: %v\n", err)
			return 2
		}
		defer flushTraces(log, shutdown)
		tp = p
	}
	a := newApp(cfg, log, stdout, stderr)
	a.tp = tp
	defer a.close()
	if err := do(ctx, a); err != nil {
		// One line a person can act on; details are already in the log.
		fmt.Fprintf(stderr, "splitstream %s: %v\n", sub.name, err)
		return 1
	}
	return 0
}

func newLogger(cfg Config, w io.Writer) *slog.Logger {
	var level slog.Level
	_ = level.UnmarshalText([]byte(strings.ToUpper(cfg.LogLevel)))
	opts := &slog.HandlerOptions{Level: level}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if cfg.LogFormat == "json" {
		h = slog.NewJSONHandler(w, opts)
	}
	// Lines logged with a context carry its trace and request ids.
	return slog.New(tracing.LogHandler(h, tracing.Field{Key: "request_id", Fn: graph.RequestID}))
}
