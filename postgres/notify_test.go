package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
)

// Listen wakes once it listens and after each notice the CommitNotifier
// sends; it pings its connection after a quiet spell and keeps listening on
// the same session; it returns when its session is terminated.
func TestListenWakesOnNoticesAndSurvivesItsPings(t *testing.T) {
	dbURL, pool := testenv.Postgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The listener gets a pool of its own, named, so the test can find its session.
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set("application_name", "listen-test")
	u.RawQuery = q.Encode()
	lpool, err := postgres.Open(ctx, u.String(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer lpool.Close()
	src := testenv.RelaySource(t, lpool)
	src.SetListenPing(20 * time.Millisecond)
	wakes := make(chan struct{}, 100)
	done := make(chan error, 1)
	go func() { done <- src.Listen(ctx, func() { wakes <- struct{}{} }) }()
	n := testenv.CommitNotifier(t, pool)
	go func() { _ = n.Run(ctx) }()

	woken := func(what string) {
		t.Helper()
		select {
		case <-wakes:
		case err := <-done:
			t.Fatalf("Listen returned %v, waiting for %s", err, what)
		case <-time.After(30 * time.Second):
			t.Fatalf("no wake for %s", what)
		}
	}
	woken("the start of listening")
	// The listening session has pinged (its last statement is the ping),
	// and it is still the session that listens: the notices below wake it.
	var pid int
	for deadline := time.Now().Add(30 * time.Second); ; {
		err := pool.QueryRow(ctx, `SELECT pid FROM pg_stat_activity
			WHERE datname = current_database() AND application_name = 'listen-test' AND query = '-- ping'`).Scan(&pid)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listening session never pinged: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	for i := range 3 {
		n.Committed()
		woken(fmt.Sprintf("notice %d", i+1))
	}
	if _, err := pool.Exec(ctx, `SELECT pg_terminate_backend($1)`, pid); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil || errors.Is(err, context.Canceled) {
			t.Fatalf("Listen returned %v after its session was terminated, want the error", err)
		}
		t.Logf("after terminate: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("Listen did not return after its session was terminated")
	}
}

// Every change through a NotifyingStore is announced on EventsChannel
// after its commit.
func TestNotifyingStoreAnnouncesEachCommit(t *testing.T) {
	dbURL, pool := testenv.Postgres(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	listener, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close(context.Background())
	if _, err := listener.Exec(ctx, "LISTEN "+postgres.EventsChannel); err != nil {
		t.Fatal(err)
	}
	n := testenv.CommitNotifier(t, pool)
	go func() { _ = n.Run(ctx) }()
	svc, err := command.NewService(postgres.NotifyingStore{EventStore: testenv.EventStore(t, pool), Notifier: n})
	if err != nil {
		t.Fatal(err)
	}
	res, err := svc.CreateProduct(ctx, command.Meta{}, command.CreateProduct{Name: "Kettle", Category: "kitchen", PriceCents: 100, Currency: "EUR", Stock: 1})
	if err != nil {
		t.Fatal(err)
	}
	heard := func(what string) {
		t.Helper()
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		note, err := listener.WaitForNotification(wctx)
		if err != nil {
			t.Fatalf("no notice after %s: %v", what, err)
		}
		if note.Channel != postgres.EventsChannel {
			t.Fatalf("notice on %q", note.Channel)
		}
	}
	heard("the create")
	if _, err := svc.ChangeProduct(ctx, res.ID, command.Meta{}, command.RenameProduct{Name: "Kettle 2"}); err != nil {
		t.Fatal(err)
	}
	heard("the rename")
}
