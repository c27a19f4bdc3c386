package rabbitmq_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/rabbitmq"
)

// BenchmarkLaneDrainCPU drains a backlog of b.N product creations, stamped
// and routed as the relay does, through one lane's consumer into a handler
// that acks at once, and reports the CPU the draining costs a message: this
// process's (the AMQP client, the consumer, the decoding) and, when this
// machine runs the broker and its process can be read, the broker's. The
// projector's drain is bounded by what the consumer and the broker leave
// Elasticsearch on shared cores. The ceiling, in the same run: a plain
// amqp091 consumer of the same backlog on a vhost of its own, with the
// same prefetch, that only receives and acks a thousand at a time. On a
// shared VM the CPU the same work takes drifts too, so compare the two.
func BenchmarkLaneDrainCPU(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lanes := func(ch *amqp.Channel) error { return rabbitmq.DeclareLanes(ch, 1) }
	records := productCreations(b.N)
	plain := publishedBacklog(ctx, b, "bench-lane-drain-plain", lanes, records)
	conn := publishedBacklog(ctx, b, "bench-lane-drain", lanes, records)
	broker := brokerPID()
	b.ResetTimer()
	rawSelf, rawBroker := cpuOf(broker, func() { drainPlain(ctx, b, plain, b.N) })
	self, brok := cpuOf(broker, func() { drainLane(ctx, b, conn, b.N) })
	b.StopTimer()
	perMsg := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(perMsg(self), "client-µs/msg")
	b.ReportMetric(perMsg(rawSelf), "plain-client-µs/msg")
	if broker > 0 {
		b.ReportMetric(perMsg(brok), "broker-µs/msg")
		b.ReportMetric(perMsg(rawBroker), "plain-broker-µs/msg")
	}
}

// cpuOf waits for process pid to settle, runs f and returns the CPU time
// this process and process pid took meanwhile. The broker goes on writing
// a quorum queue's log for a while after the publishes that filled it;
// that work is the publishes', not the drain's.
func cpuOf(pid int, f func()) (self, other time.Duration) {
	settled(pid)
	self0, other0 := processCPU(), pidCPU(pid)
	f()
	return processCPU() - self0, pidCPU(pid) - other0
}

// drainLane consumes n messages of lane 0 through the projector's lane
// consumer into a handler that acks them.
func drainLane(ctx context.Context, b *testing.B, conn *rabbitmq.Conn, n int) {
	h := signalHandler{got: make(chan int, 1024)}
	c, err := rabbitmq.NewLaneConsumer(conn, h, 0, 1, rabbitmq.ConsumerConfig{Log: testenv.Logger(b)})
	if err != nil {
		b.Fatal(err)
	}
	cctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = c.Run(cctx) }()
	defer func() { stop(); <-done }()
	for got := 0; got < n; {
		select {
		case k := <-h.got:
			got += k
		case <-time.After(time.Minute):
			b.Fatalf("%d of %d messages after a minute without one", got, n)
		}
	}
}

// drainPlain consumes n messages of lane 0 with amqp091 alone: prefetch
// 2,000 as the lane consumer's, one multiple ack a thousand messages.
func drainPlain(ctx context.Context, b *testing.B, conn *rabbitmq.Conn, n int) {
	ch, err := conn.Channel()
	if err != nil {
		b.Fatal(err)
	}
	defer ch.Close()
	if err := ch.Qos(2000, 0, false); err != nil {
		b.Fatal(err)
	}
	deliveries, err := ch.ConsumeWithContext(ctx, rabbitmq.LaneQueue(0), "", false, false, false, false, nil)
	if err != nil {
		b.Fatal(err)
	}
	// One timer for the whole drain, reset once a thousand: a timer a
	// message would be the ceiling's own cost.
	stall := time.NewTimer(time.Minute)
	defer stall.Stop()
	for got := 1; got <= n; got++ {
		var d amqp.Delivery
		select {
		case dd, ok := <-deliveries:
			if !ok {
				b.Fatalf("deliveries ended after %d of %d messages", got-1, n)
			}
			d = dd
		case <-stall.C:
			b.Fatalf("%d of %d messages after a minute without a thousand", got-1, n)
		}
		if got%1000 == 0 || got == n {
			if err := d.Ack(true); err != nil {
				b.Fatal(err)
			}
			stall.Reset(time.Minute)
		}
	}
}

// productCreations are n creations of distinct products, each in lane 0 of
// one, chained as the relay chains them, with the metadata a mutation gives.
func productCreations(n int) []event.Record {
	records := make([]event.Record, n)
	for i := range records {
		id := fmt.Sprintf("00000000-0000-4000-8000-%012d", i+1)
		data, _ := json.Marshal(event.ProductCreated{
			Name: "Bench product " + id[24:], Description: "A product made for the drain benchmark, " + id,
			Category: "bench", PriceCents: 1999, Currency: "EUR", Stock: 100,
		})
		records[i] = event.Record{
			Envelope: event.Envelope{
				ID: fmt.Sprintf("00000000-0000-4000-9000-%012d", i+1), Position: int64(i + 1), StreamID: id,
				StreamType: event.StreamProduct, Version: 1, Type: event.ProductCreated{}.EventType(), SchemaVersion: 1,
				Data: data, OccurredAt: time.Now(),
				Metadata: event.Metadata{
					CommandID: fmt.Sprintf("00000000-0000-4000-a000-%012d", i+1), CorrelationID: fmt.Sprintf("00000000-0000-4000-b000-%012d", i+1),
					Actor: "admin-1",
				},
			},
			Cursor: event.Cursor{Tx: uint64(1000 + i), Position: int64(i + 1)},
			Prev:   event.Cursor{Tx: uint64(999 + i), Position: int64(i)},
			Lane:   0, Lanes: 1,
			LanePrev: event.Cursor{Tx: uint64(999 + i), Position: int64(i)},
		}
	}
	return records
}

// processCPU is this process's user and system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// brokerPID is the pid of the local RabbitMQ node's Erlang VM, or 0.
func brokerPID() int {
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		comm, err := os.ReadFile("/proc/" + d.Name() + "/comm")
		if err == nil && strings.TrimSpace(string(comm)) == "beam.smp" {
			return pid
		}
	}
	return 0
}

// settled waits, up to 10 s, until process pid used at most 2 % of a core
// over half a second (its CPU is counted in ticks of 10 ms).
func settled(pid int) {
	if pid <= 0 {
		return
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); {
		before := pidCPU(pid)
		time.Sleep(500 * time.Millisecond)
		if pidCPU(pid)-before <= 10*time.Millisecond {
			return
		}
	}
}

// pidCPU is the user and system CPU time of process pid so far (from
// /proc/<pid>/stat, in clock ticks of 10 ms), or 0.
func pidCPU(pid int) time.Duration {
	if pid <= 0 {
		return 0
	}
	raw, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	_, rest, ok := strings.Cut(string(raw), ") ")
	f := strings.Fields(rest)
	if !ok || len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}
