package bench

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/projector"
	"github.com/splitstream/splitstream/rabbitmq"
)

// drainProcesses is drainLanes with each member a `splitstream projector`
// process of this binary, as a deployment runs them: its own runtime, its
// connections, its leases in the scratch database. The bench reads their
// notices from the scratch vhost, as a query instance does, and their
// leases from the database. Each process's output goes to a file in the
// temporary directory, named and kept when the drain fails.
func (pb projectorBench) drainProcesses(ctx context.Context, records []event.Record, prefix string, procs int) (float64, error) {
	exe, err := os.Executable()
	if err != nil {
		return 0, err
	}
	st, err := pb.stage(ctx, records, prefix, fmt.Sprintf("procs%d", procs))
	if err != nil {
		return 0, err
	}
	defer st.close()
	notices := newAnnounced(benchLanes)
	nctx, stopNotices := context.WithCancel(ctx)
	bound, consumed := make(chan struct{}), make(chan struct{})
	var once sync.Once
	go func() {
		defer close(consumed)
		_ = rabbitmq.ConsumeNotices(nctx, st.conn, pb.st.Log, func(ctx context.Context, n projector.Notice) { _ = notices.PublishNotice(ctx, n) },
			rabbitmq.OnNoticeStream(func(up bool) {
				if up {
					once.Do(func() { close(bound) })
				}
			}))
	}()
	defer func() { stopNotices(); <-consumed }()
	select {
	case <-bound:
	case <-time.After(30 * time.Second):
		return 0, errors.New("the notice queue was not bound within 30s")
	}
	env := append(os.Environ(), "DATABASE_URL="+st.dbURL, "AMQP_URL="+st.amqpURL,
		"ELASTICSEARCH_URL="+pb.st.ElasticsearchURL, "SPLITSTREAM_INDEX_PREFIX="+prefix,
		"SPLITSTREAM_PROJECTOR_LANES="+strconv.Itoa(benchLanes), "SPLITSTREAM_ADMIN_ADDR=127.0.0.1:0")
	// A process that ends before it is stopped ends the drain at once.
	dctx, died := context.WithCancelCause(ctx)
	defer died(nil)
	var logs []string
	for i := range procs {
		logPath := filepath.Join(os.TempDir(), fmt.Sprintf("splitstream-bench-%s-projector-%d-of-%d.log", pb.tag, i+1, procs))
		out, err := os.Create(logPath)
		if err != nil {
			return 0, err
		}
		defer out.Close()
		cmd := exec.Command(exe, "projector")
		cmd.Env, cmd.Stdout, cmd.Stderr = env, out, out
		if err := cmd.Start(); err != nil {
			return 0, fmt.Errorf("start projector process: %w", err)
		}
		logs = append(logs, logPath)
		exited := make(chan struct{})
		go func() {
			err := cmd.Wait()
			close(exited)
			died(fmt.Errorf("projector process %d of %d ended: %v", i+1, procs, err))
		}()
		defer stopProcess(cmd, exited)
	}
	label := "1 projector process"
	if procs > 1 {
		label = fmt.Sprintf("%d projector processes", procs)
	}
	rate, err := pb.waitLanesDrained(dctx, label, func() (bool, error) { return leasesBalanced(dctx, st.leasePool, procs) }, st.backlog, prefix, notices)
	if err != nil {
		if cause := context.Cause(dctx); cause != nil && ctx.Err() == nil {
			err = cause
		}
		return 0, fmt.Errorf("%w (the processes' logs: %v)", err, logs)
	}
	for _, l := range logs {
		_ = os.Remove(l) // kept only when the drain fails
	}
	return rate, nil
}

// leasesBalanced says every lane is held by a live lease and the holders
// are procs members with as many lanes each as the balanced assignment
// gives (lane i to the (i mod procs)-th member: counts differ by one at
// most).
func leasesBalanced(ctx context.Context, pool *pgxpool.Pool, procs int) (bool, error) {
	var holders, held, spread int
	err := pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(c), 0), coalesce(max(c) - min(c), 0)
		FROM (SELECT count(*) AS c FROM projector_leases
		      WHERE holder IS NOT NULL AND expires_at > now() GROUP BY holder) s`).Scan(&holders, &held, &spread)
	if err != nil {
		return false, fmt.Errorf("read the leases: %w", err)
	}
	return holders == procs && held == benchLanes && spread <= 1, nil
}

// stopProcess ends a projector process as an orchestrator would (SIGTERM,
// then SIGKILL after 10 s) and waits until exited is closed.
func stopProcess(cmd *exec.Cmd, exited <-chan struct{}) {
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-exited
	}
}
