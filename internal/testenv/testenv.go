// Package testenv gives integration tests real servers, isolated per test:
// a fresh Postgres database, a fresh RabbitMQ vhost and a unique index
// prefix, each removed when the test ends. Under CI=true a server that does
// not answer fails the test; elsewhere it skips with the command that starts
// the servers.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/rabbitmq"
)

// The server URLs' defaults are the external contract's (../shared/ARCHITECTURE.md,
// beside the repository; the management URL is RabbitMQ's own default); the
// environment overrides them.
func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// DatabaseURL is the server tests create their databases on.
func DatabaseURL() string {
	return env("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/splitstream?sslmode=disable")
}

// AMQPURL is the broker tests create their vhosts on.
func AMQPURL() string { return env("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/") }

// ManagementURL is RabbitMQ's management API, used to create vhosts.
func ManagementURL() string {
	return env("RABBITMQ_MANAGEMENT_URL", "http://guest:guest@127.0.0.1:15672")
}

// ElasticsearchURL is the node tests create their indices on.
func ElasticsearchURL() string { return env("ELASTICSEARCH_URL", "http://127.0.0.1:9200") }

// Unavailable fails the test under CI and skips it elsewhere.
func Unavailable(t testing.TB, what string, err error) {
	t.Helper()
	msg := fmt.Sprintf("%s unavailable: %v (start the servers with: make services)", what, err)
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// Name returns a unique lower-case name with prefix, for databases, vhosts
// and index prefixes.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + "_" + hex.EncodeToString(b)
}

// Logger returns a logger that writes to the test's log.
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Postgres creates a fresh, migrated database and returns its URL and a pool
// on it; both go away when the test ends.
func Postgres(t testing.TB) (string, *pgxpool.Pool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	admin, err := pgx.Connect(ctx, DatabaseURL())
	if err != nil {
		Unavailable(t, "postgres", err)
	}
	defer admin.Close(context.Background())
	name := Name("splitstream_test")
	if _, err := admin.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database %s: %v", name, err)
	}
	u, _ := url.Parse(DatabaseURL())
	u.Path = "/" + name
	dbURL := u.String()
	pool, err := postgres.Open(ctx, dbURL, 50)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() {
		pool.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, DatabaseURL())
		if err != nil {
			t.Logf("drop database %s: %v", name, err)
			return
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Logf("drop database %s: %v", name, err)
		}
	})
	if err := postgres.Migrate(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migrate %s: %v", name, err)
	}
	return dbURL, pool
}

// RabbitMQ creates a fresh vhost and returns an AMQP URL for it; the vhost is
// deleted when the test ends.
func RabbitMQ(t testing.TB) string {
	t.Helper()
	vhost := Name("splitstream_test")
	if err := rabbitmq.Management(context.Background(), ManagementURL(), http.MethodPut, "/api/vhosts/"+vhost, ""); err != nil {
		Unavailable(t, "rabbitmq management API", err)
	}
	user := "guest"
	if u, err := url.Parse(AMQPURL()); err == nil && u.User != nil {
		user = u.User.Username()
	}
	perm := `{"configure":".*","write":".*","read":".*"}`
	if err := rabbitmq.Management(context.Background(), ManagementURL(), http.MethodPut, "/api/permissions/"+vhost+"/"+user, perm); err != nil {
		t.Fatalf("grant %s on %s: %v", user, vhost, err)
	}
	t.Cleanup(func() {
		if err := rabbitmq.Management(context.Background(), ManagementURL(), http.MethodDelete, "/api/vhosts/"+vhost, ""); err != nil {
			t.Logf("delete vhost %s: %v", vhost, err)
		}
	})
	u, _ := url.Parse(AMQPURL())
	u.Path = "/" + vhost
	return u.String()
}

// Elasticsearch returns a client and a unique index prefix; every index and
// alias under the prefix is deleted when the test ends.
func Elasticsearch(t testing.TB) (*elasticsearch.Client, string) {
	t.Helper()
	es, err := elasticsearch.NewClient(elasticsearch.Config{Addresses: []string{ElasticsearchURL()}})
	if err != nil {
		t.Fatalf("elasticsearch client: %v", err)
	}
	res, err := es.Info()
	if err != nil {
		Unavailable(t, "elasticsearch", err)
	}
	res.Body.Close()
	prefix := strings.ReplaceAll(Name("test"), "_", "-")
	t.Cleanup(func() {
		res, err := es.Indices.Delete([]string{prefix + "-*"}, es.Indices.Delete.WithAllowNoIndices(true))
		if err != nil {
			t.Logf("delete %s-*: %v", prefix, err)
			return
		}
		res.Body.Close()
	})
	return es, prefix
}

// Run runs a command for a test (for example to stop a server) and fails the
// test with its output if it fails.
func Run(t testing.TB, name string, args ...string) {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

// Must returns v, failing t when err is set: constructors return
// (x, error) and refuse nil, and tests build many of them.
func Must[T any](t testing.TB, v T, err error) T {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// EventStore is postgres.NewEventStore on pool, for a test.
func EventStore(t testing.TB, pool *pgxpool.Pool) *postgres.EventStore {
	t.Helper()
	s, err := postgres.NewEventStore(pool)
	return Must(t, s, err)
}

// RelaySource is postgres.NewRelaySource on pool, for a test.
func RelaySource(t testing.TB, pool *pgxpool.Pool) *postgres.RelaySource {
	t.Helper()
	s, err := postgres.NewRelaySource(pool)
	return Must(t, s, err)
}

// SagaStore is postgres.NewSagaStore on pool, for a test.
func SagaStore(t testing.TB, pool *pgxpool.Pool) *postgres.SagaStore {
	t.Helper()
	s, err := postgres.NewSagaStore(pool)
	return Must(t, s, err)
}

// CommitNotifier is postgres.NewCommitNotifier on pool, for a test.
func CommitNotifier(t testing.TB, pool *pgxpool.Pool) *postgres.CommitNotifier {
	t.Helper()
	n, err := postgres.NewCommitNotifier(pool)
	return Must(t, n, err)
}
