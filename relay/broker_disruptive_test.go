//go:build disruptive

package relay_test

import (
	"os/exec"
	"testing"
	"time"

	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/relay"
)

// TestBrokerDownMutationsSucceedAndArriveLater stops the RabbitMQ
// application under a running relay: 100 mutations still succeed (they only
// need Postgres), the backlog gauge shows them waiting, and once the broker
// is back the relay's connection heals by itself and all 100 arrive.
//
// It stops the broker for every test on this machine, so it runs only with
// -tags disruptive, serially (make test's second pass).
func TestDisruptiveBrokerDownMutationsSucceedAndArriveLater(t *testing.T) {
	e := setup(t)
	c := e.consume()
	r := e.start(relay.Config{BacklogInterval: 200 * time.Millisecond}, nil)
	w := &writer{svc: e.svc}
	w.run(t, 1, 1)() // the relay has a channel open when the broker goes
	e.waitAll(c, 10*time.Second)

	// Registered after the relay and the vhost, so it runs before them.
	t.Cleanup(func() {
		if out, err := exec.Command("rabbitmqctl", "start_app").CombinedOutput(); err != nil {
			t.Errorf("rabbitmqctl start_app: %v\n%s", err, out)
		}
		if out, err := exec.Command("rabbitmqctl", "await_startup").CombinedOutput(); err != nil {
			t.Errorf("rabbitmqctl await_startup: %v\n%s", err, out)
		}
	})
	testenv.Run(t, "rabbitmqctl", "stop_app")
	start := time.Now()
	w.run(t, 4, 25)()
	t.Logf("100 mutations with the broker down took %v", time.Since(start).Round(time.Millisecond))
	if n := len(e.stored()); n != 101 {
		t.Fatalf("%d events stored, want 101", n)
	}
	deadline := time.Now().Add(10 * time.Second)
	for r.metric(t, "splitstream_relay_backlog_events") < 100 || r.metric(t, "splitstream_relay_backlog_oldest_age_seconds") <= 0 {
		if time.Now().After(deadline) {
			t.Fatalf("backlog gauges %v events, %vs old; want 100 waiting",
				r.metric(t, "splitstream_relay_backlog_events"), r.metric(t, "splitstream_relay_backlog_oldest_age_seconds"))
		}
		time.Sleep(50 * time.Millisecond)
	}

	testenv.Run(t, "rabbitmqctl", "start_app")
	testenv.Run(t, "rabbitmqctl", "await_startup")
	up := time.Now()
	e.waitAll(c, 60*time.Second)
	t.Logf("backlog delivered %v after the broker came back", time.Since(up).Round(time.Millisecond))
	if got := r.metric(t, "splitstream_relay_errors_total"); got == 0 {
		t.Error("the relay counted no errors while the broker was down")
	}
}
