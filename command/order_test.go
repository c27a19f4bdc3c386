package command_test

import (
	"fmt"
	"reflect"
	"testing"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
)

func orderLine(productID string, quantity int, unitPriceCents int64) event.OrderLine {
	return event.OrderLine{ProductID: productID, ProductName: "Product " + productID, Quantity: quantity, UnitPriceCents: unitPriceCents}
}

// orderLines returns n lines of distinct products, one unit at 1 cent each.
func orderLines(n int) []event.OrderLine {
	ls := make([]event.OrderLine, n)
	for i := range ls {
		ls[i] = orderLine(fmt.Sprintf("p%d", i), 1, 1)
	}
	return ls
}

func TestDecideOrder(t *testing.T) {
	cases := append(orderPlaceCases(), orderLifecycleCases()...)
	runDecideCases(t, "o1", cases, command.FoldOrder, command.DecideOrder)
}

// placedOrder is what placeOrder(nil) decides: two lines, 6498 cents.
func placedOrder() event.OrderPlaced {
	lines := []event.OrderLine{orderLine("p1", 2, 2999), orderLine("p2", 1, 500)}
	return event.OrderPlaced{CustomerID: "c1", Lines: lines, TotalCents: 6498, Currency: "EUR"}
}

// placeOrder is the command that places placedOrder, changed by edit.
func placeOrder(edit func(*command.PlaceOrder)) command.PlaceOrder {
	c := command.PlaceOrder{CustomerID: "c1", Lines: placedOrder().Lines, Currency: "EUR"}
	if edit != nil {
		edit(&c)
	}
	return c
}

func orderPlaceCases() []decideCase[command.OrderCommand] {
	placed, place := placedOrder(), placeOrder
	return []decideCase[command.OrderCommand]{
		// PlaceOrder
		{name: "place", when: place(nil), then: past(placed)},
		{name: "place existing", given: past(placed), when: place(nil), err: conflict(1, "order already exists")},
		{name: "place without customer", when: place(func(c *command.PlaceOrder) { c.CustomerID = " " }), err: invalid("customerId")},
		{name: "place without lines", when: place(func(c *command.PlaceOrder) { c.Lines = nil }), err: invalid("lines")},
		{name: "place 100 lines", when: place(func(c *command.PlaceOrder) { c.Lines = orderLines(100) }),
			then: past(event.OrderPlaced{CustomerID: "c1", Lines: orderLines(100), TotalCents: 100, Currency: "EUR"})},
		{name: "place 101 lines", when: place(func(c *command.PlaceOrder) { c.Lines = orderLines(101) }), err: invalid("lines")},
		{name: "place quantity 0", when: place(func(c *command.PlaceOrder) { c.Lines[0].Quantity = 0 }), err: invalid("lines[0].quantity")},
		{name: "place quantity -1", when: place(func(c *command.PlaceOrder) { c.Lines[1].Quantity = -1 }), err: invalid("lines[1].quantity")},
		{name: "place quantity 1000", when: place(func(c *command.PlaceOrder) { c.Lines = []event.OrderLine{orderLine("p1", 1000, 2999)} }),
			then: past(event.OrderPlaced{CustomerID: "c1", Lines: []event.OrderLine{orderLine("p1", 1000, 2999)}, TotalCents: 2_999_000, Currency: "EUR"})},
		{name: "place quantity 1001", when: place(func(c *command.PlaceOrder) { c.Lines[1].Quantity = 1001 }), err: invalid("lines[1].quantity")},
		{name: "place without product id", when: place(func(c *command.PlaceOrder) { c.Lines[1].ProductID = "" }), err: invalid("lines[1].productId")},
		{name: "place a product twice",
			when: place(func(c *command.PlaceOrder) { c.Lines = append(c.Lines, orderLine("p1", 1, 2999)) }),
			err:  invalid("lines[2].productId")},
		{name: "place negative unit price", when: place(func(c *command.PlaceOrder) { c.Lines[0].UnitPriceCents = -1 }),
			err: invalid("lines[0].unitPriceCents")},
		{name: "place largest order",
			when: place(func(c *command.PlaceOrder) {
				c.Lines = orderLines(100)
				for i := range c.Lines {
					c.Lines[i].Quantity, c.Lines[i].UnitPriceCents = 1000, 1_000_000_000
				}
			}),
			then: past(event.OrderPlaced{CustomerID: "c1", Lines: func() []event.OrderLine {
				ls := orderLines(100)
				for i := range ls {
					ls[i].Quantity, ls[i].UnitPriceCents = 1000, 1_000_000_000
				}
				return ls
			}(), TotalCents: 100 * 1000 * 1_000_000_000, Currency: "EUR"})},
		{name: "place bad currency", when: place(func(c *command.PlaceOrder) { c.Currency = "eur" }), err: invalid("currency")},
		{name: "place priced lines without currency", when: place(func(c *command.PlaceOrder) { c.Currency = "" }), err: invalid("currency")},
		{name: "place unknown products without currency",
			when: place(func(c *command.PlaceOrder) {
				c.Currency = ""
				c.Lines = []event.OrderLine{{ProductID: "p404", Quantity: 1}}
			}),
			then: past(event.OrderPlaced{CustomerID: "c1", Lines: []event.OrderLine{{ProductID: "p404", Quantity: 1}}})},
	}
}

func orderLifecycleCases() []decideCase[command.OrderCommand] {
	placed := placedOrder()
	confirmed := past(placed, event.OrderConfirmed{})
	rejected := past(placed, event.OrderRejected{Reason: "insufficient stock for Kettle: 0 left, 2 wanted"})
	cancelled := past(placed, event.OrderCancelled{Reason: "changed my mind"})
	return []decideCase[command.OrderCommand]{
		// ConfirmOrder
		{name: "confirm", given: past(placed), when: command.ConfirmOrder{}, then: past(event.OrderConfirmed{})},
		{name: "confirm confirmed", given: confirmed, when: command.ConfirmOrder{}},
		{name: "confirm rejected", given: rejected, when: command.ConfirmOrder{}, err: conflict(2, "order is REJECTED")},
		{name: "confirm cancelled", given: cancelled, when: command.ConfirmOrder{}, err: conflict(2, "order is CANCELLED")},
		{name: "confirm missing", when: command.ConfirmOrder{}, err: notFound("order o1 not found")},

		// RejectOrder
		{name: "reject", given: past(placed), when: command.RejectOrder{Reason: "Kettle is discontinued"},
			then: past(event.OrderRejected{Reason: "Kettle is discontinued"})},
		{name: "reject rejected", given: rejected, when: command.RejectOrder{Reason: "again"}},
		{name: "reject confirmed", given: confirmed, when: command.RejectOrder{Reason: "late"}, err: conflict(2, "order is CONFIRMED")},
		{name: "reject cancelled", given: cancelled, when: command.RejectOrder{Reason: "late"}, err: conflict(2, "order is CANCELLED")},
		{name: "reject missing", when: command.RejectOrder{Reason: "x"}, err: notFound("order o1 not found")},
		{name: "reject reason 1000 runes", given: past(placed), when: command.RejectOrder{Reason: text(1000)},
			then: past(event.OrderRejected{Reason: text(1000)})},
		{name: "reject reason 1001 runes", given: past(placed), when: command.RejectOrder{Reason: text(1001)}, err: invalid("reason")},

		// CancelOrder
		{name: "cancel pending", given: past(placed), when: command.CancelOrder{Reason: "changed my mind"},
			then: past(event.OrderCancelled{Reason: "changed my mind"})},
		{name: "cancel confirmed", given: confirmed, when: command.CancelOrder{},
			then: past(event.OrderCancelled{})},
		{name: "cancel cancelled", given: cancelled, when: command.CancelOrder{Reason: "again"}},
		{name: "cancel rejected", given: rejected, when: command.CancelOrder{}, err: conflict(2, "order is REJECTED")},
		{name: "cancel missing", when: command.CancelOrder{}, err: notFound("order o1 not found")},
		{name: "cancel reason 1001 runes", given: past(placed), when: command.CancelOrder{Reason: text(1001)}, err: invalid("reason")},
	}
}

func TestPlaceOrderDoesNotAliasLines(t *testing.T) {
	lines := []event.OrderLine{orderLine("p1", 1, 100)}
	evs, err := command.DecideOrder(command.FoldOrder("o1", nil), command.PlaceOrder{CustomerID: "c1", Lines: lines, Currency: "EUR"})
	if err != nil {
		t.Fatal(err)
	}
	o := command.FoldOrder("o1", evs)
	lines[0].Quantity = 99
	if got := evs[0].(event.OrderPlaced).Lines[0].Quantity; got != 1 {
		t.Errorf("event changed with the command's lines: quantity %d", got)
	}
	if o.Lines[0].Quantity != 1 {
		t.Errorf("state changed with the command's lines: quantity %d", o.Lines[0].Quantity)
	}
}

func TestFoldOrder(t *testing.T) {
	lines := []event.OrderLine{orderLine("p1", 2, 2999)}
	o := command.FoldOrder("o1", past(
		event.OrderPlaced{CustomerID: "c1", Lines: lines, TotalCents: 5998, Currency: "EUR"},
		event.OrderConfirmed{},
		event.OrderCancelled{Reason: "changed my mind"},
	))
	want := command.Order{ID: "o1", Version: 3, Exists: true, CustomerID: "c1", Status: command.StatusCancelled,
		Lines: lines, TotalCents: 5998, Currency: "EUR", Reason: "changed my mind"}
	if !reflect.DeepEqual(o, want) {
		t.Fatalf("got  %+v\nwant %+v", o, want)
	}
	if p := command.FoldOrder("o1", past(event.OrderPlaced{CustomerID: "c1", Lines: lines})); p.Status != command.StatusPending {
		t.Fatalf("placed order status %q, want PENDING", p.Status)
	}
}

func TestDecideOrderUnknownCommand(t *testing.T) {
	if _, err := command.DecideOrder(command.Order{}, nil); err == nil || splitstream.ErrorCode(err) != splitstream.EInternal {
		t.Fatalf("nil command: error = %v, want an internal error", err)
	}
	if _, err := command.DecideReview(command.Review{}, nil); err == nil || splitstream.ErrorCode(err) != splitstream.EInternal {
		t.Fatalf("nil command: error = %v, want an internal error", err)
	}
}
