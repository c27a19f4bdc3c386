package saga_test

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
)

// TestSoak places 500 random orders over 50 products with scarce stock,
// cancels some of them at random moments, and stops (as a kill would: work
// in flight cut short, unacked messages back to the queue) and restarts the
// saga role (two copies of it) twice while orders keep coming. In the end every order is
// CONFIRMED, REJECTED or CANCELLED, and the stock adds up:
//
//	initial stock − current stock = units in the product's CONFIRMED orders
//
// with no stock ever negative, no line reserved twice, and no reservation
// held for an order that is not CONFIRMED.
//
// It runs twice: with the default deadline, which no order reaches, and
// with a deadline shorter than the backlog a restart leaves, so that the
// deadline loop rejects and releases orders while the consumer is still
// reserving stock for them.
func TestSoak(t *testing.T) {
	if testing.Short() {
		t.Skip("soak test")
	}
	t.Run("deadline 30s", func(t *testing.T) { soak(t, 30*time.Second) })
	t.Run("deadline 1s", func(t *testing.T) { soak(t, time.Second) })
}

func soak(t *testing.T, sagaDeadline time.Duration) {
	const (
		products    = 50
		orders      = 500
		placers     = 6
		cancelShare = 0.12
	)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, seed>>7))
	began := time.Now()

	s := newStack(t, slog.LevelWarn)
	ids := make([]string, products)
	initial := make(map[string]int, products)
	for i := range ids {
		stock := rng.IntN(31) // 0 to 30; the orders want about three times as much
		ids[i] = s.createProduct(fmt.Sprintf("Product %02d", i), stock)
		initial[ids[i]] = stock
	}
	plans := soakPlans(rng, ids, orders, cancelShare)

	// Two copies of the role, as two processes: an order's OrderPlaced and
	// OrderCancelled may then be handled at the same time, and the deadline
	// of one copy may fire while the other is reserving.
	opts := sagaOpts{deadline: sagaDeadline, consumer: true, deadlines: true}
	copies := []*runningSaga{s.startSaga(opts), s.startSaga(opts)}
	pl := startPlacing(t, s, plans, placers)

	// Two restarts while orders are still coming.
	for restart := 1; restart <= 2; restart++ {
		for pl.placed.Load() < int64(restart*orders/3) {
			time.Sleep(5 * time.Millisecond)
		}
		for _, c := range copies {
			c.stop()
		}
		t.Logf("%s: saga role stopped after %d orders placed", since(began), pl.placed.Load())
		time.Sleep(300 * time.Millisecond)
		copies = []*runningSaga{s.startSaga(opts), s.startSaga(opts)}
		t.Logf("%s: saga role restarted (%d placed)", since(began), pl.placed.Load())
	}
	pl.placing.Wait()
	pl.cancels.Wait()
	if t.Failed() {
		t.FailNow()
	}
	t.Logf("%s: all %d orders placed; %d cancels accepted, %d refused (order already rejected)",
		since(began), len(pl.orderIDs), pl.cancelled.Load(), pl.cancelFail.Load())

	settleSoak(t, s, began, pl.orderIDs, ids, initial)
	logSagaTotals(t, copies)
}

// soakPlan is one order of the soak: its lines, when (if ever) it is
// cancelled, and how long its placer waits before placing it.
type soakPlan struct {
	lines       []line
	cancelAfter time.Duration // < 0: never
	pause       time.Duration
}

// soakPlans draws the orders up front, so the placers share no random source.
func soakPlans(rng *rand.Rand, ids []string, orders int, cancelShare float64) []soakPlan {
	plans := make([]soakPlan, orders)
	for i := range plans {
		n := 1 + rng.IntN(3)
		perm := rng.Perm(len(ids))[:n]
		p := soakPlan{cancelAfter: -1, pause: time.Duration(rng.IntN(30)) * time.Millisecond}
		for _, j := range perm {
			p.lines = append(p.lines, line{ids[j], 1 + rng.IntN(3)})
		}
		if rng.Float64() < cancelShare {
			p.cancelAfter = time.Duration(rng.IntN(400)) * time.Millisecond
		}
		plans[i] = p
	}
	return plans
}

// soakPlacing is the placers at work: read orderIDs only after placing and
// cancels are done.
type soakPlacing struct {
	placed     atomic.Int64
	next       atomic.Int64
	mu         sync.Mutex
	orderIDs   []string
	placing    sync.WaitGroup
	cancels    sync.WaitGroup
	cancelled  atomic.Int64
	cancelFail atomic.Int64
}

// startPlacing starts placers goroutines that place the plans in order and
// cancel those that ask for it.
func startPlacing(t *testing.T, s *stack, plans []soakPlan, placers int) *soakPlacing {
	pl := &soakPlacing{}
	for range placers {
		pl.placing.Go(func() {
			for {
				i := int(pl.next.Add(1)) - 1
				if i >= len(plans) {
					return
				}
				p := plans[i]
				time.Sleep(p.pause)
				id, err := s.placeOrder(p.lines...)
				if err != nil {
					t.Errorf("order %d: %v", i, err)
					return
				}
				pl.mu.Lock()
				pl.orderIDs = append(pl.orderIDs, id)
				pl.mu.Unlock()
				pl.placed.Add(1)
				if p.cancelAfter >= 0 {
					pl.cancels.Go(func() { pl.cancel(t, s, id, p.cancelAfter) })
				}
			}
		})
	}
	return pl
}

func (pl *soakPlacing) cancel(t *testing.T, s *stack, id string, after time.Duration) {
	time.Sleep(after)
	err := s.cancelOrder(id)
	switch {
	case err == nil:
		pl.cancelled.Add(1)
	case splitstream.ErrorCode(err) == splitstream.EConflict:
		pl.cancelFail.Add(1) // already REJECTED
	default:
		t.Errorf("cancel %s: %v", id, err)
	}
}

// settleSoak waits for the system to settle: every order done, nothing
// appended for a while, and the invariants holding.
func settleSoak(t *testing.T, s *stack, began time.Time, orderIDs, ids []string, initial map[string]int) {
	var (
		problems []string
		lastPos  int64 = -1
		stableAt time.Time
		lastLog  time.Time
	)
	deadline := time.Now().Add(45 * time.Second)
	for {
		var pos int64
		if err := s.pool.QueryRow(s.ctx, `SELECT COALESCE(max(position), 0) FROM events`).Scan(&pos); err != nil {
			t.Fatal(err)
		}
		if pos != lastPos {
			lastPos, stableAt = pos, time.Now()
		}
		var tally map[string]int
		problems, tally = checkSoak(s, orderIDs, ids, initial)
		if len(problems) == 0 && time.Since(stableAt) > time.Second {
			t.Logf("%s: settled: %v", since(began), tally)
			return
		}
		if time.Since(lastLog) > 3*time.Second {
			t.Logf("%s: settling: %v, %d problems", since(began), tally, len(problems))
			lastLog = time.Now()
		}
		if time.Now().After(deadline) {
			if len(problems) > 20 {
				problems = problems[:20]
			}
			t.Fatalf("not settled after 45s:\n%s", strings.Join(problems, "\n"))
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// logSagaTotals logs the saga role's counters, summed over the copies.
func logSagaTotals(t *testing.T, copies []*runningSaga) {
	total := func(name, label string) (n float64) {
		for _, c := range copies {
			n += metric(t, c.reg, name, label)
		}
		return n
	}
	t.Logf("since the last restart: sagas started %v, confirmed %v, rejected %v, cancelled %v, compensations %v, expiries %v",
		total("splitstream_saga_started_total", ""),
		total("splitstream_saga_completed_total", "confirmed"),
		total("splitstream_saga_completed_total", "rejected"),
		total("splitstream_saga_completed_total", "cancelled"),
		total("splitstream_saga_compensations_total", ""),
		total("splitstream_saga_deadline_expiries_total", ""))
}

// checkSoak returns what is wrong with the end state, and how many orders
// are in each status.
func checkSoak(s *stack, orderIDs, productIDs []string, initial map[string]int) ([]string, map[string]int) {
	var problems []string
	tally := map[string]int{}
	status := make(map[string]string, len(orderIDs))
	confirmedUnits := map[string]int{}
	lines := map[string]map[string]int{} // order -> product -> quantity
	for _, id := range orderIDs {
		o := s.order(id)
		tally[o.Status]++
		status[id] = o.Status
		lines[id] = map[string]int{}
		for _, l := range o.Lines {
			lines[id][l.ProductID] = l.Quantity
		}
		switch o.Status {
		case command.StatusConfirmed:
			for _, l := range o.Lines {
				confirmedUnits[l.ProductID] += l.Quantity
			}
		case command.StatusRejected, command.StatusCancelled:
		default:
			problems = append(problems, fmt.Sprintf("order %s is %s", id, o.Status))
		}
	}
	sort.Strings(productIDs)
	products := make(map[string]command.Product, len(productIDs))
	for _, pid := range productIDs {
		h := s.history(pid)
		p := command.FoldProduct(pid, h)
		products[pid] = p
		reservedBy := map[string]int{}
		for _, e := range h {
			switch e := e.(type) {
			case event.StockReserved:
				reservedBy[e.OrderID]++
				if e.Stock < 0 {
					problems = append(problems, fmt.Sprintf("%s: stock %d after reserving for %s", p.Name, e.Stock, e.OrderID))
				}
			case event.StockReleased:
				if e.Stock < 0 {
					problems = append(problems, fmt.Sprintf("%s: stock %d after releasing for %s", p.Name, e.Stock, e.OrderID))
				}
			}
		}
		for o, n := range reservedBy {
			if n > 1 {
				problems = append(problems, fmt.Sprintf("%s: reserved %d times for order %s", p.Name, n, o))
			}
		}
		if got, want := initial[pid]-p.Stock, confirmedUnits[pid]; got != want {
			problems = append(problems, fmt.Sprintf("%s: initial %d − current %d = %d, confirmed orders hold %d",
				p.Name, initial[pid], p.Stock, got, want))
		}
		for o, q := range p.Reserved {
			if status[o] != command.StatusConfirmed {
				problems = append(problems, fmt.Sprintf("%s: holds %d for %s order %s", p.Name, q, status[o], o))
			} else if lines[o][pid] != q {
				problems = append(problems, fmt.Sprintf("%s: holds %d for order %s, which wants %d", p.Name, q, o, lines[o][pid]))
			}
		}
	}
	for id, st := range status {
		if st != command.StatusConfirmed {
			continue
		}
		for pid, q := range lines[id] {
			if p := products[pid]; p.Reserved[id] != q {
				problems = append(problems, fmt.Sprintf("confirmed order %s: %s holds %d, want %d", id, p.Name, p.Reserved[id], q))
			}
		}
	}
	return problems, tally
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }
