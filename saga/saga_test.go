package saga_test

import (
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
)

// Every test here runs on a real Postgres and RabbitMQ: orders are placed
// through the command service, the relay publishes the events, and the saga
// consumes them from "saga.orders". Results are read back from the event
// store.

func TestLastUnitGoesToOneOrder(t *testing.T) {
	s := newStack(t, slog.LevelInfo)
	s.startSaga(sagaOpts{consumer: true, deadlines: true})
	kettle := s.createProduct("Kettle", 1)

	ids := make([]string, 2)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { ids[i] = s.mustPlace(line{kettle, 1}) })
	}
	wg.Wait()
	orders := s.waitDone(20*time.Second, ids...)

	var confirmed, rejected []command.Order
	for _, o := range orders {
		switch o.Status {
		case command.StatusConfirmed:
			confirmed = append(confirmed, o)
		case command.StatusRejected:
			rejected = append(rejected, o)
		}
	}
	if len(confirmed) != 1 || len(rejected) != 1 {
		t.Fatalf("want one CONFIRMED and one REJECTED, got %+v", orders)
	}
	if want := "insufficient stock for Kettle: 0 left, 1 wanted"; rejected[0].Reason != want {
		t.Errorf("rejection reason %q, want %q", rejected[0].Reason, want)
	}
	eventually(t, 5*time.Second, func() error {
		p := s.product(kettle)
		if p.Stock != 0 || len(p.Reserved) != 1 || p.Reserved[confirmed[0].ID] != 1 {
			return fmt.Errorf("kettle: stock %d, reserved %v; want 0 and only the confirmed order", p.Stock, p.Reserved)
		}
		return nil
	})
}

func TestRefusedLineRejectsAndReleasesTheOthers(t *testing.T) {
	s := newStack(t, slog.LevelInfo)
	rs := s.startSaga(sagaOpts{consumer: true, deadlines: true})
	kettle := s.createProduct("Kettle", 5)
	toaster := s.createProduct("Toaster", 1)
	gone := s.createProduct("Gramophone", 3)
	if _, err := s.svc.ChangeProduct(s.ctx, gone, command.Meta{}, command.DiscontinueProduct{}); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name   string
		lines  []line
		reason string
	}{
		{"insufficient stock", []line{{kettle, 2}, {toaster, 3}}, "insufficient stock for Toaster: 1 left, 3 wanted"},
		{"unknown product", []line{{kettle, 2}, {"no-such-product", 1}}, "product no-such-product not found"},
		{"discontinued", []line{{kettle, 2}, {gone, 1}}, "Gramophone is discontinued"},
		// The longest id the command layer accepts still makes a reason
		// RejectOrder takes (longer ones are refused at placeOrder).
		{"longest product id", []line{{kettle, 2}, {strings.Repeat("x", 128), 1}}, "product " + strings.Repeat("x", 128) + " not found"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			id := s.mustPlace(c.lines...)
			o := s.waitDone(20*time.Second, id)[id]
			if o.Status != command.StatusRejected || o.Reason != c.reason {
				t.Fatalf("order is %s (%q), want REJECTED (%q)", o.Status, o.Reason, c.reason)
			}
			eventually(t, 5*time.Second, func() error { return s.released(kettle, 5) })
		})
	}
	if err := s.released(toaster, 1); err != nil {
		t.Error(err)
	}
	eventually(t, 5*time.Second, func() error {
		if got := metric(t, rs.reg, "splitstream_saga_completed_total", "rejected"); got != 4 {
			return fmt.Errorf("rejected sagas counted %v, want 4", got)
		}
		return nil
	})
}

func TestFortyOrdersForTwentyFiveUnits(t *testing.T) {
	s := newStack(t, slog.LevelInfo)
	s.startSaga(sagaOpts{consumer: true, deadlines: true})
	mug := s.createProduct("Mug", 25)

	ids := make([]string, 40)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() { ids[i] = s.mustPlace(line{mug, 1}) })
	}
	wg.Wait()
	orders := s.waitDone(30*time.Second, ids...)

	count := map[string]int{}
	for _, o := range orders {
		count[o.Status]++
		if o.Status == command.StatusRejected && !strings.HasPrefix(o.Reason, "insufficient stock for Mug: 0 left") {
			t.Errorf("order %s rejected for %q", o.ID, o.Reason)
		}
	}
	if count[command.StatusConfirmed] != 25 || count[command.StatusRejected] != 15 {
		t.Fatalf("got %v, want 25 CONFIRMED and 15 REJECTED", count)
	}
	p := s.product(mug)
	if p.Stock != 0 || len(p.Reserved) != 25 {
		t.Fatalf("mug: stock %d, %d reservations; want 0 and 25", p.Stock, len(p.Reserved))
	}
	for id := range p.Reserved {
		if orders[id].Status != command.StatusConfirmed {
			t.Errorf("mug holds stock for %s order %s", orders[id].Status, id)
		}
	}
}

func TestCancellingAConfirmedOrderReleasesItsStock(t *testing.T) {
	s := newStack(t, slog.LevelInfo)
	rs := s.startSaga(sagaOpts{consumer: true, deadlines: true})
	kettle := s.createProduct("Kettle", 4)
	mug := s.createProduct("Mug", 10)

	id := s.mustPlace(line{kettle, 3}, line{mug, 2})
	if o := s.waitDone(20*time.Second, id)[id]; o.Status != command.StatusConfirmed {
		t.Fatalf("order is %s (%q), want CONFIRMED", o.Status, o.Reason)
	}
	if p := s.product(kettle); p.Stock != 1 {
		t.Fatalf("kettle stock %d after confirmation, want 1", p.Stock)
	}
	if err := s.cancelOrder(id); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, func() error {
		if err := s.released(kettle, 4); err != nil {
			return err
		}
		return s.released(mug, 10)
	})
	if o := s.order(id); o.Status != command.StatusCancelled {
		t.Fatalf("order is %s, want CANCELLED", o.Status)
	}
	eventually(t, 5*time.Second, func() error {
		if got := metric(t, rs.reg, "splitstream_saga_compensations_total", ""); got != 2 {
			return fmt.Errorf("compensations %v, want 2", got)
		}
		return nil
	})
}

// The saga's consumer is down; the order's saga was registered by the
// trigger when the order was placed, and one line was reserved by a saga
// that died right after. The deadline alone rejects the order and gives the
// line back.
func TestDeadlineRejectsAnOrderNobodyFinished(t *testing.T) {
	s := newStack(t, slog.LevelInfo)
	kettle := s.createProduct("Kettle", 5)
	mug := s.createProduct("Mug", 5)
	id := s.mustPlace(line{kettle, 2}, line{mug, 1})
	// What the dead saga managed, with the saga's own command id.
	if _, err := s.svc.ChangeProduct(s.ctx, kettle, command.Meta{CommandID: "saga:" + id + ":reserve:" + kettle, Internal: true},
		command.ReserveStock{OrderID: id, Quantity: 2}); err != nil {
		t.Fatal(err)
	}
	if p := s.product(kettle); p.Stock != 3 {
		t.Fatalf("kettle stock %d, want 3", p.Stock)
	}

	begin := time.Now()
	rs := s.startSaga(sagaOpts{deadline: 300 * time.Millisecond, deadlines: true})
	o := s.waitDone(10*time.Second, id)[id]
	if o.Status != command.StatusRejected || o.Reason != "not confirmed within 300ms" {
		t.Fatalf("order is %s (%q), want REJECTED (not confirmed within 300ms)", o.Status, o.Reason)
	}
	t.Logf("rejected %s after the saga started", time.Since(begin).Round(time.Millisecond))
	eventually(t, 5*time.Second, func() error { return s.released(kettle, 5) })
	if err := s.released(mug, 5); err != nil {
		t.Error(err)
	}
	eventually(t, 5*time.Second, func() error {
		if got := metric(t, rs.reg, "splitstream_saga_deadline_expiries_total", ""); got != 1 {
			return fmt.Errorf("deadline expiries %v, want 1", got)
		}
		return nil
	})

	// When the consumer comes back, the queued OrderPlaced finds the order
	// rejected and changes nothing.
	rs.stop()
	rs = s.startSaga(sagaOpts{deadline: 300 * time.Millisecond, consumer: true, deadlines: true})
	eventually(t, 10*time.Second, func() error {
		if got := metric(t, rs.reg, "splitstream_saga_started_total", ""); got != 1 {
			return fmt.Errorf("sagas started %v, want 1", got)
		}
		return nil
	})
	if err := s.released(kettle, 5); err != nil {
		t.Error(err)
	}
	if o := s.order(id); o.Status != command.StatusRejected || o.Version != 2 {
		t.Errorf("order is %s at version %d, want REJECTED at 2", o.Status, o.Version)
	}
}

// Handling the same OrderPlaced many times at once, as redeliveries and
// copies of the saga may, reserves each line once and confirms once.
func TestRepeatedHandlingReservesOnce(t *testing.T) {
	s := newStack(t, slog.LevelInfo)
	kettle := s.createProduct("Kettle", 5)
	mug := s.createProduct("Mug", 5)
	id := s.mustPlace(line{kettle, 2}, line{mug, 1})
	h, err := s.events.Load(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	placed := h[0]

	rs := s.startSaga(sagaOpts{})
	var wg sync.WaitGroup
	errs := make([]error, 8)
	for i := range errs {
		wg.Go(func() { errs[i] = rs.saga.Handle(s.ctx, placed) })
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := rs.saga.Handle(s.ctx, placed); err != nil {
		t.Fatal(err)
	}
	if o := s.order(id); o.Status != command.StatusConfirmed || o.Version != 2 {
		t.Fatalf("order is %s at version %d, want CONFIRMED at 2", o.Status, o.Version)
	}
	for _, p := range []string{kettle, mug} {
		reserved := 0
		for _, e := range s.history(p) {
			if r, ok := e.(event.StockReserved); ok && r.OrderID == id {
				reserved++
			}
		}
		if reserved != 1 {
			t.Errorf("%s: %d StockReserved for the order, want 1", p, reserved)
		}
	}
	if p := s.product(kettle); p.Stock != 3 {
		t.Errorf("kettle stock %d, want 3", p.Stock)
	}
	if got := metric(t, rs.reg, "splitstream_saga_started_total", ""); got != 1 {
		t.Errorf("started %v, want 1", got)
	}
	if got := metric(t, rs.reg, "splitstream_saga_completed_total", "confirmed"); got != 1 {
		t.Errorf("confirmed %v, want 1", got)
	}

	// A cancel handled twice releases once.
	if err := s.cancelOrder(id); err != nil {
		t.Fatal(err)
	}
	h, err = s.events.Load(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := rs.saga.Handle(s.ctx, h[len(h)-1]); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.released(kettle, 5); err != nil {
		t.Error(err)
	}
	if got := metric(t, rs.reg, "splitstream_saga_compensations_total", ""); got != 2 {
		t.Errorf("compensations %v, want 2", got)
	}
	var status string
	if err := s.pool.QueryRow(s.ctx, `SELECT status FROM sagas WHERE order_id = $1`, id).Scan(&status); err != nil {
		t.Fatal(err)
	}
	if status != "cancelled" {
		t.Errorf("saga status %q, want cancelled", status)
	}
}

// A client that sends the saga's command ids first, for other commands,
// claims nothing: client commandIds and the saga's ids are separate spaces,
// so the order still settles.
func TestClientCannotClaimTheSagasCommandIDs(t *testing.T) {
	s := newStack(t, slog.LevelInfo)
	kettle := s.createProduct("Kettle", 5)
	id := s.mustPlace(line{kettle, 2})
	client := func(step string) command.Meta {
		return command.Meta{CommandID: "saga:" + id + ":" + step, Actor: "mallory"}
	}
	if _, err := s.svc.ChangeProduct(s.ctx, kettle, client("reserve:"+kettle), command.RestockProduct{Quantity: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.svc.ChangeProduct(s.ctx, kettle, client("confirm"), command.RenameProduct{Name: "Kettle"}); err != nil {
		t.Fatal(err)
	}
	s.startSaga(sagaOpts{consumer: true, deadlines: true})
	if o := s.waitDone(20*time.Second, id)[id]; o.Status != command.StatusConfirmed {
		t.Fatalf("order is %s (%q), want CONFIRMED", o.Status, o.Reason)
	}
	if p := s.product(kettle); p.Stock != 4 || p.Reserved[id] != 2 {
		t.Fatalf("kettle stock %d reserved %v, want 4 and 2 for the order", p.Stock, p.Reserved)
	}
	// And the client's own ids still replay as the client's.
	res, err := s.svc.ChangeProduct(s.ctx, kettle, client("reserve:"+kettle), command.RestockProduct{Quantity: 1})
	if err != nil || res.Version != 2 {
		t.Fatalf("client replay = %+v, %v; want its first result (version 2)", res, err)
	}
}
