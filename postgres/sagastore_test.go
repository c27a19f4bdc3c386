package postgres_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/saga"
)

// sagaOrders places n orders through the command service and returns their
// ids, oldest first.
func sagaOrders(t *testing.T, ctx context.Context, pool *pgxpool.Pool, n int) []string {
	t.Helper()
	svc, err := command.NewService(testenv.EventStore(t, pool))
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, n)
	for i := range ids {
		res, err := svc.PlaceOrder(ctx, command.Meta{}, command.PlaceOrder{
			CustomerID: "c1", Lines: []event.OrderLine{{ProductID: "p1", Quantity: 1}},
		})
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.ID
	}
	return ids
}

func TestSagaStoreRegistersPlacedOrders(t *testing.T) {
	ctx := context.Background()
	_, pool := testenv.Postgres(t)
	svc, err := command.NewService(testenv.EventStore(t, pool))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateProduct(ctx, command.Meta{}, command.CreateProduct{
		Name: "Kettle", Category: "kitchen", PriceCents: 100, Currency: "EUR", Stock: 1,
	}); err != nil {
		t.Fatal(err)
	}
	id := sagaOrders(t, ctx, pool, 1)[0]
	var count int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM sagas`).Scan(&count); err != nil {
		t.Fatal(err)
	}
	if count != 1 {
		t.Fatalf("%d sagas, want 1 (the order's, none for the product)", count)
	}

	store := testenv.SagaStore(t, pool)
	st, started, err := store.Start(ctx, id, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if !started || st.Status != saga.StatusOpen || st.Reason != "" || st.PlacedAt.IsZero() {
		t.Fatalf("first start: %+v started=%v", st, started)
	}
	if _, started, err = store.Start(ctx, id, time.Now()); err != nil || started {
		t.Fatalf("second start: started=%v err=%v", started, err)
	}
	// An order the trigger did not see (placed before the migration).
	st, started, err = store.Start(ctx, "older-order", time.Now().Add(-time.Hour))
	if err != nil || !started || st.Status != saga.StatusOpen {
		t.Fatalf("start of an unregistered order: %+v started=%v err=%v", st, started, err)
	}
}

func TestSagaStoreDecideKeepsTheFirstReason(t *testing.T) {
	ctx := context.Background()
	_, pool := testenv.Postgres(t)
	id := sagaOrders(t, ctx, pool, 1)[0]
	store := testenv.SagaStore(t, pool)
	for _, r := range []string{"insufficient stock for Kettle: 1 left, 3 wanted", "not confirmed within 30s"} {
		got, err := store.Decide(ctx, id, r)
		if err != nil {
			t.Fatal(err)
		}
		if want := "insufficient stock for Kettle: 1 left, 3 wanted"; got != want {
			t.Fatalf("decided %q, want %q", got, want)
		}
	}
	if st, _, err := store.Start(ctx, id, time.Now()); err != nil || st.Reason == "" {
		t.Fatalf("start after decide: %+v, %v", st, err)
	}
	if _, err := store.Decide(ctx, "no-such-order", "x"); err == nil {
		t.Fatal("decide on a missing saga: no error")
	}
}

func TestSagaStoreCloseTransitions(t *testing.T) {
	ctx := context.Background()
	_, pool := testenv.Postgres(t)
	ids := sagaOrders(t, ctx, pool, 2)
	store := testenv.SagaStore(t, pool)
	steps := []struct {
		order, outcome string
		wasOpen        bool
		status         string
	}{
		{ids[0], saga.StatusConfirmed, true, saga.StatusConfirmed},
		{ids[0], saga.StatusConfirmed, false, saga.StatusConfirmed},
		{ids[0], saga.StatusRejected, false, saga.StatusConfirmed}, // a confirmed order is never rejected
		{ids[0], saga.StatusCancelled, false, saga.StatusCancelled},
		{ids[0], saga.StatusConfirmed, false, saga.StatusCancelled},
		{ids[1], saga.StatusRejected, true, saga.StatusRejected},
		{ids[1], saga.StatusCancelled, false, saga.StatusRejected},
	}
	for i, s := range steps {
		wasOpen, placedAt, err := store.Close(ctx, s.order, s.outcome)
		if err != nil {
			t.Fatal(err)
		}
		var status string
		if err := pool.QueryRow(ctx, `SELECT status FROM sagas WHERE order_id = $1`, s.order).Scan(&status); err != nil {
			t.Fatal(err)
		}
		if wasOpen != s.wasOpen || status != s.status || placedAt.IsZero() {
			t.Errorf("step %d: close as %s: wasOpen=%v status=%s placedAt=%v; want %v, %s", i, s.outcome, wasOpen, status, placedAt, s.wasOpen, s.status)
		}
	}
	if wasOpen, _, err := store.Close(ctx, "no-such-order", saga.StatusConfirmed); err != nil || wasOpen {
		t.Errorf("close of a missing saga: wasOpen=%v err=%v", wasOpen, err)
	}
}

func TestSagaStoreClaimExpired(t *testing.T) {
	ctx := context.Background()
	_, pool := testenv.Postgres(t)
	ids := sagaOrders(t, ctx, pool, 30)
	store := testenv.SagaStore(t, pool)
	if _, _, err := store.Close(ctx, ids[0], saga.StatusConfirmed); err != nil {
		t.Fatal(err)
	}

	if got, err := store.ClaimExpired(ctx, time.Hour, time.Minute, 100); err != nil || len(got) != 0 {
		t.Fatalf("nothing is an hour old, claimed %v (%v)", got, err)
	}

	// Four processes claim at once, a few at a time: each open saga is
	// claimed by exactly one of them.
	var (
		mu      sync.Mutex
		claimed []string
		wg      sync.WaitGroup
	)
	for range 4 {
		wg.Go(func() {
			for {
				got, err := store.ClaimExpired(ctx, 0, time.Minute, 3)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				claimed = append(claimed, got...)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.Sort(claimed)
	want := slices.Clone(ids[1:])
	slices.Sort(want)
	if !slices.Equal(claimed, want) {
		t.Fatalf("claimed %d sagas %v,\nwant each open one once: %v", len(claimed), claimed, want)
	}

	// While the lease lasts nobody claims them again; after it, they come back.
	if got, err := store.ClaimExpired(ctx, 0, time.Minute, 100); err != nil || len(got) != 0 {
		t.Fatalf("claimed again under lease: %v (%v)", got, err)
	}
	if _, err := pool.Exec(ctx, `UPDATE sagas SET claimed_until = now() - interval '1 second' WHERE order_id = $1`, ids[1]); err != nil {
		t.Fatal(err)
	}
	if got, err := store.ClaimExpired(ctx, 0, time.Minute, 100); err != nil || !slices.Equal(got, []string{ids[1]}) {
		t.Fatalf("after the lease: claimed %v (%v), want [%s]", got, err, ids[1])
	}
	// A closed saga is never claimed.
	if _, _, err := store.Close(ctx, ids[1], saga.StatusRejected); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `UPDATE sagas SET claimed_until = NULL`); err != nil {
		t.Fatal(err)
	}
	got, err := store.ClaimExpired(ctx, 0, time.Minute, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(ids)-2 || slices.Contains(got, ids[0]) || slices.Contains(got, ids[1]) {
		t.Fatalf("claimed %v; want every saga but the two closed ones", got)
	}
	// Oldest first.
	if got[0] != ids[2] {
		t.Errorf("first claimed %s, want the oldest open one, %s", got[0], ids[2])
	}
}

// Count sees open sagas, and those placed longer ago than the deadline;
// closed ones are not counted.
func TestSagaStoreCount(t *testing.T) {
	ctx := context.Background()
	_, pool := testenv.Postgres(t)
	ids := sagaOrders(t, ctx, pool, 3)
	store := testenv.SagaStore(t, pool)
	if _, err := pool.Exec(ctx, `UPDATE sagas SET placed_at = now() - interval '1 hour' WHERE order_id = ANY($1)`, ids[:2]); err != nil {
		t.Fatal(err)
	}
	if _, _, err := store.Close(ctx, ids[0], saga.StatusRejected); err != nil {
		t.Fatal(err)
	}
	c, err := store.Count(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if c != (saga.Counts{Open: 2, PastDeadline: 1}) {
		t.Fatalf("count = %+v, want 2 open, 1 past the deadline", c)
	}
}
