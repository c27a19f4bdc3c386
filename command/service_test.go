package command

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/event"
)

// countingStore counts what the service asks of the store.
type countingStore struct {
	memStore
	loads, changes int
}

func (c *countingStore) LoadSince(ctx context.Context, id string, v int) (*Snapshot, []event.Envelope, error) {
	c.loads++
	return c.memStore.LoadSince(ctx, id, v)
}

func (c *countingStore) Change(ctx context.Context, ch Change) (Result, error) {
	c.changes++
	return c.memStore.Change(ctx, ch)
}

// Input out of bounds is refused with BAD_USER_INPUT and its field before
// the service loads or changes anything; an order's limits come before any
// of its products is loaded.
func TestValidationComesFirst(t *testing.T) {
	store := &countingStore{memStore: memStore{streams: map[string][]event.Envelope{}}}
	svc, err := NewService(store)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	lines := func(n int) []event.OrderLine {
		out := make([]event.OrderLine, n)
		for i := range out {
			out[i] = event.OrderLine{ProductID: fmt.Sprintf("p%d", i), Quantity: 1}
		}
		return out
	}
	long := strings.Repeat("x", maxIDBytes+1)
	cases := []struct {
		field string
		run   func() (Result, error)
	}{
		{"lines", func() (Result, error) {
			return svc.PlaceOrder(ctx, Meta{}, PlaceOrder{CustomerID: "c", Lines: lines(maxOrderLines + 1)})
		}},
		{"lines[99].quantity", func() (Result, error) {
			l := lines(maxOrderLines)
			l[99].Quantity = maxLineQuantity + 1
			return svc.PlaceOrder(ctx, Meta{}, PlaceOrder{CustomerID: "c", Lines: l})
		}},
		{"lines[3].productId", func() (Result, error) {
			l := lines(4)
			l[3].ProductID = long
			return svc.PlaceOrder(ctx, Meta{}, PlaceOrder{CustomerID: "c", Lines: l})
		}},
		{"customerId", func() (Result, error) {
			return svc.PlaceOrder(ctx, Meta{}, PlaceOrder{CustomerID: long, Lines: lines(1)})
		}},
		{"commandId", func() (Result, error) {
			return svc.AddReview(ctx, Meta{CommandID: long}, AddReview{ProductID: "p", Author: "a", Rating: 1})
		}},
		{"productId", func() (Result, error) {
			return svc.AddReview(ctx, Meta{}, AddReview{ProductID: long, Author: "a", Rating: 1})
		}},
		{"id", func() (Result, error) {
			return svc.ChangeProduct(ctx, "a\x00b", Meta{}, RenameProduct{Name: "x"})
		}},
		{"expectedVersion", func() (Result, error) {
			v := -1
			return svc.RemoveReview(ctx, "r", Meta{ExpectedVersion: &v})
		}},
		{"orderId", func() (Result, error) {
			return svc.ChangeProduct(ctx, "p", Meta{Internal: true}, ReserveStock{OrderID: long, Quantity: 1})
		}},
		{"reason", func() (Result, error) {
			return svc.ChangeOrder(ctx, "o", Meta{}, CancelOrder{Reason: strings.Repeat("é", maxReasonRunes+1)})
		}},
	}
	for _, c := range cases {
		_, err := c.run()
		e, ok := err.(*splitstream.Error)
		if !ok || e.Code != splitstream.EInvalid || e.Field != c.field {
			t.Errorf("%s: got %v, want BAD_USER_INPUT on %s", c.field, err, c.field)
		}
	}
	if store.loads != 0 || store.changes != 0 {
		t.Fatalf("refused commands made %d loads and %d changes, want none", store.loads, store.changes)
	}
	// A valid order loads each of its products once.
	if _, err := svc.PlaceOrder(ctx, Meta{}, PlaceOrder{CustomerID: "c", Lines: lines(3)}); err != nil {
		t.Fatal(err)
	}
	if store.loads != 3 {
		t.Fatalf("a 3-line order made %d loads, want 3", store.loads)
	}
}

// Replaying reservations costs linear time: the fold changes its own map
// in place (go test -bench FoldProduct shows ns/op growing with n, not n²).
func BenchmarkFoldProductReservations(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		history := []event.Payload{event.ProductCreated{Name: "K", Category: "k", PriceCents: 1, Currency: "EUR", Stock: 1_000_000}}
		for i := range n {
			history = append(history, event.StockReserved{OrderID: fmt.Sprintf("o%d", i), Quantity: 1, Stock: 1_000_000 - i - 1})
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				FoldProduct("p", history)
			}
		})
	}
}
