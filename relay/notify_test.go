package relay_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
	"github.com/splitstream/splitstream/relay"
)

// notifying replaces the env's command service with one whose commits are
// announced on postgres.EventsChannel, as the command role's are.
func (e *env) notifying() {
	e.t.Helper()
	n := testenv.CommitNotifier(e.t, e.pool)
	svc, err := command.NewService(postgres.NotifyingStore{EventStore: testenv.EventStore(e.t, e.pool), Notifier: n})
	if err != nil {
		e.t.Fatal(err)
	}
	e.svc, e.notifier = svc, n
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = n.Run(ctx)
	}()
	e.t.Cleanup(func() { cancel(); <-done })
}

// listener returns the pid of the backend listening on the events channel
// in this test's database; 0 when there is none.
func (e *env) listener() int {
	e.t.Helper()
	var pid int
	err := e.pool.QueryRow(context.Background(), `SELECT coalesce(max(pid), 0) FROM pg_stat_activity
		WHERE datname = current_database() AND query = 'LISTEN '||$1`, postgres.EventsChannel).Scan(&pid)
	if err != nil {
		e.t.Fatal(err)
	}
	return pid
}

func (e *env) create(name string) {
	e.t.Helper()
	if _, err := e.svc.CreateProduct(context.Background(), command.Meta{}, command.CreateProduct{
		Name: name, Category: "kitchen", PriceCents: 100, Currency: "EUR", Stock: 1}); err != nil {
		e.t.Fatal(err)
	}
}

// published waits until n events are published, announcing the commits
// again while it waits, as the next commit would. The relay reads below the
// transaction horizon, and on this shared server another session's
// transaction may hold the horizon past the first notice (xids are
// cluster-wide), and nothing but a poll or a later notice then wakes the
// relay. Only notices wake it here: its poll interval is an hour. (That
// the store sends a notice per commit is postgres's
// TestNotifyingStoreAnnouncesEachCommit.)
func (e *env) published(c *consumer, n int) {
	e.t.Helper()
	wait(e.t, func() error {
		if got := len(c.deliveries()); got < n {
			e.notifier.Committed()
			return fmt.Errorf("%d events published, want %d", got, n)
		}
		return nil
	})
}

// pollHour is a poll interval no test waits out: an event published within
// a test's waits was published because a commit notice woke the relay.
const pollHour = time.Hour

// TestRelayWakesOnCommit: with a poll interval of an hour, events appended
// while the relay idles are published at once, woken by the NOTIFY sent
// after each commit.
func TestRelayWakesOnCommit(t *testing.T) {
	e := setup(t)
	e.notifying()
	c := e.consume()
	e.start(relay.Config{PollInterval: pollHour}, nil)
	wait(t, func() error {
		if e.listener() == 0 {
			return fmt.Errorf("the relay does not listen on %s", postgres.EventsChannel)
		}
		return nil
	})
	for i := 1; i <= 3; i++ {
		e.create(fmt.Sprintf("Kettle %d", i))
		e.published(c, i)
	}
	e.waitAll(c, 10*time.Second)
}

// TestRelayListensAgainAfterItsConnectionIsKilled: when the listening
// session is terminated, the relay listens again on a new one, and events
// appended after that are still published at once.
func TestRelayListensAgainAfterItsConnectionIsKilled(t *testing.T) {
	e := setup(t)
	e.notifying()
	c := e.consume()
	r := e.start(relay.Config{PollInterval: pollHour}, nil)
	var first int
	wait(t, func() error {
		if first = e.listener(); first == 0 {
			return fmt.Errorf("the relay does not listen on %s", postgres.EventsChannel)
		}
		return nil
	})
	e.create("Kettle before")
	e.published(c, 1)

	var killed bool
	if err := e.pool.QueryRow(context.Background(), `SELECT pg_terminate_backend($1)`, first).Scan(&killed); err != nil || !killed {
		t.Fatalf("terminate the listening session %d: %v, %v", first, killed, err)
	}
	wait(t, func() error {
		if n := r.metric(t, "splitstream_relay_errors_total"); n == 0 {
			return fmt.Errorf("the relay did not count the lost listen connection")
		}
		if pid := e.listener(); pid == 0 || pid == first {
			return fmt.Errorf("no new listening session (pid %d, the killed one was %d)", pid, first)
		}
		return nil
	})
	e.create("Kettle after")
	e.published(c, 2)
	e.waitAll(c, 10*time.Second)
}
