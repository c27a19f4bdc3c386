//go:build disruptive

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
)

// laneChildEnv carries a projector child process's settings (JSON).
const laneChildEnv = "SPLITSTREAM_TEST_LANE_CHILD"

// TestLanesProjectorProcess is not a test: it is the projector process
// TestDisruptiveLanes starts (the test binary again, running the real
// projector role until it is killed or told to stop).
func TestLanesProjectorProcess(t *testing.T) {
	raw := os.Getenv(laneChildEnv)
	if raw == "" {
		t.Skip("only as a child of TestDisruptiveLanes")
	}
	var env map[string]string
	if err := json.Unmarshal([]byte(raw), &env); err != nil {
		t.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if code := run(ctx, []string{"projector"}, func(k string) string { return env[k] }, io.Discard, os.Stderr); code != 0 && ctx.Err() == nil {
		t.Fatalf("projector exited %d", code)
	}
}

// P = 8 lanes, three projector processes under a mixed write load; one is
// killed with SIGKILL, another started, another killed. Each time the
// lanes are spread evenly over the live processes within 10 s; no lane is
// ever held by two processes at once (from the lease log); and at the end
// every document equals the fold of its events (a rebuild from the log).
func TestDisruptiveLanes(t *testing.T) {
	const lanes = 8
	dbURL, pool := testenv.Postgres(t)
	_, prefix := testenv.Elasticsearch(t)
	env := map[string]string{
		"DATABASE_URL": dbURL, "AMQP_URL": testenv.RabbitMQ(t), "SPLITSTREAM_INDEX_PREFIX": prefix,
		"SPLITSTREAM_COMMAND_ADDR": freeAddr(t), "SPLITSTREAM_ADMIN_ADDR": freeAddr(t), "SPLITSTREAM_REFRESH_INTERVAL": "200ms",
		"SPLITSTREAM_JWT_SECRET": testJWTSecret, "SPLITSTREAM_TOKEN_SECRET": testTokenSecret,
		"SPLITSTREAM_PROJECTOR_LANES": strconv.Itoa(lanes),
	}
	startRoles(t, env, env["SPLITSTREAM_COMMAND_ADDR"], "command")
	for _, role := range []string{"relay", "saga"} { // one role per process, each with its admin listener
		own := maps.Clone(env)
		own["SPLITSTREAM_ADMIN_ADDR"] = freeAddr(t)
		startRoles(t, own, own["SPLITSTREAM_ADMIN_ADDR"], role)
	}
	commandURL := "http://" + env["SPLITSTREAM_COMMAND_ADDR"] + "/graphql"
	ids := createLamps(t, commandURL)

	f := &laneFleet{t: t, env: env, pool: pool, killed: map[int]time.Time{}}
	ctx, stopLoad := context.WithCancel(context.Background())
	load := &rebuildLoad{}
	var wg sync.WaitGroup
	wg.Go(func() { load.write(ctx, commandURL, ids) })
	start := time.Now()
	a, b, c := f.start(), f.start(), f.start()
	measured := []string{fmt.Sprintf("start of 3: %.1fs", f.waitBalanced(start, a, b, c))}
	at := f.kill(b)
	measured = append(measured, fmt.Sprintf("kill -9 of one: %.1fs", f.waitBalanced(at, a, c)))
	at = time.Now()
	d := f.start()
	measured = append(measured, fmt.Sprintf("join of one: %.1fs", f.waitBalanced(at, a, c, d)))
	at = f.kill(a)
	measured = append(measured, fmt.Sprintf("kill -9 of another: %.1fs", f.waitBalanced(at, c, d)))
	stopLoad()
	wg.Wait()
	t.Logf("rebalanced within: %s; %d mutations", strings.Join(measured, ", "), load.mutations.Load())

	f.checkLeaseLog()
	es, _ := testenv.Elasticsearch(t)
	waitForRelayHead(t, pool, es, prefix)
	indices := elastic.NewIndices(es, prefix, 200*time.Millisecond)
	r := rebuilder{pool: pool, es: es, indices: indices, log: testenv.Logger(t), progress: io.Discard, batch: 500}
	compareWithLive(t, es, indices, &r)
}

// laneFleet is the projector processes of TestDisruptiveLanes.
type laneFleet struct {
	t      *testing.T
	env    map[string]string
	pool   *pgxpool.Pool
	killed map[int]time.Time // pid -> when it was killed
}

// start runs one projector process and returns its pid.
func (f *laneFleet) start() int {
	f.t.Helper()
	env := maps.Clone(f.env)
	env["SPLITSTREAM_ADMIN_ADDR"] = freeAddr(f.t)
	raw, _ := json.Marshal(env)
	cmd := exec.Command(os.Args[0], "-test.run=^TestLanesProjectorProcess$")
	cmd.Env = append(os.Environ(), laneChildEnv+"="+string(raw))
	cmd.Stderr = io.Discard
	if dir := os.Getenv("SPLITSTREAM_TEST_LANE_LOGS"); dir != "" {
		if f, err := os.Create(fmt.Sprintf("%s/projector-%d.log", dir, time.Now().UnixNano())); err == nil {
			cmd.Stderr = f
			defer f.Close() // the child holds its own descriptor
		}
	}
	if err := cmd.Start(); err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
		}
	})
	return cmd.Process.Pid
}

// kill sends SIGKILL to pid and returns when.
func (f *laneFleet) kill(pid int) time.Time {
	f.t.Helper()
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		f.t.Fatal(err)
	}
	now := time.Now()
	f.killed[pid] = now
	return now
}

// waitBalanced waits until every lane is held, unexpired, by one of the
// live processes, each holding its even share, and returns the seconds
// since from; more than 10 s fails the test.
func (f *laneFleet) waitBalanced(from time.Time, live ...int) float64 {
	f.t.Helper()
	for {
		if f.balanced(live) {
			secs := time.Since(from).Seconds()
			if secs > 10 {
				f.t.Fatalf("lanes rebalanced over %v after %.1fs, more than 10s", live, secs)
			}
			return secs
		}
		if time.Since(from) > 20*time.Second {
			f.t.Fatalf("lanes not balanced over %v after 20s", live)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *laneFleet) balanced(live []int) bool {
	rows, err := f.pool.Query(context.Background(), `SELECT holder FROM projector_leases WHERE holder IS NOT NULL AND expires_at > now()`)
	if err != nil {
		f.t.Fatal(err)
	}
	defer rows.Close()
	per := map[int]int{}
	n := 0
	for rows.Next() {
		var holder string
		if err := rows.Scan(&holder); err != nil {
			f.t.Fatal(err)
		}
		pid := memberPID(holder)
		if !slices.Contains(live, pid) {
			return false
		}
		per[pid]++
		n++
	}
	if n != 8 || len(per) != len(live) {
		return false
	}
	for _, c := range per {
		if c < 8/len(live) || c > (8+len(live)-1)/len(live) {
			return false
		}
	}
	return true
}

// memberPID reads the pid out of a member name (memberName: host-pid-rand).
func memberPID(member string) int {
	parts := strings.Split(member, "-")
	if len(parts) < 3 {
		return 0
	}
	pid, _ := strconv.Atoi(parts[len(parts)-2])
	return pid
}

// checkLeaseLog replays projector_lease_log lane by lane: every claim is
// the next epoch, and comes after the previous holder's release or, when
// the previous holder was killed, after its lease could have run out (at
// least TTL less one renewal after the kill).
func (f *laneFleet) checkLeaseLog() {
	f.t.Helper()
	log, err := postgres.LeaseLog(context.Background(), f.pool)
	if err != nil {
		f.t.Fatal(err)
	}
	type holding struct {
		member   string
		epoch    int64
		released bool
		at       time.Time
	}
	cur := map[int]*holding{}
	for _, e := range log {
		h := cur[e.Lane]
		switch e.Action {
		case "release":
			if h == nil || h.member != e.Member || h.epoch != e.Epoch || h.released {
				f.t.Fatalf("lane %d: release by %s epoch %d, but the holder is %+v", e.Lane, e.Member, e.Epoch, h)
			}
			h.released, h.at = true, e.At
		case "claim":
			if h != nil {
				if e.Epoch != h.epoch+1 {
					f.t.Fatalf("lane %d: claim epoch %d after epoch %d", e.Lane, e.Epoch, h.epoch)
				}
				if !h.released {
					killedAt, ok := f.killed[memberPID(h.member)]
					if !ok {
						f.t.Fatalf("lane %d: %s claimed it while %s (never killed) held it", e.Lane, e.Member, h.member)
					}
					if e.At.Sub(killedAt) < leaseTTL-leaseRenew-500*time.Millisecond {
						f.t.Fatalf("lane %d: claimed %s after its holder was killed, before its lease could expire", e.Lane, e.At.Sub(killedAt))
					}
				} else if e.At.Before(h.at) {
					f.t.Fatalf("lane %d: claimed at %s before the release at %s", e.Lane, e.At, h.at)
				}
			}
			cur[e.Lane] = &holding{member: e.Member, epoch: e.Epoch, at: e.At}
		}
	}
	if len(cur) != 8 {
		f.t.Fatalf("lease log covers %d lanes, want 8", len(cur))
	}
}
