package query

import (
	"time"

	"github.com/splitstream/splitstream/event"
)

// Orders declares order documents: one per order stream, in the "orders"
// read model; an order is a family of its own.
var Orders = declare(Kind{
	Name:    event.StreamOrder,
	Index:   "orders",
	Streams: []string{event.StreamOrder},
	Rebuilt: true,
	Family:  func(e event.Envelope, _ event.Payload) string { return string(event.StreamOrder) + ":" + e.StreamID },
	Topic:   func(c Change) string { return c.ID },
	Owner:   func(d any) string { return d.(*Order).CustomerID },
	Refs: []Ref{{To: event.StreamCustomer,
		ID:  func(d any) string { return d.(*Order).CustomerID },
		Set: func(d any, name string) { d.(*Order).CustomerName = name }}},
}, ApplyOrder, func(o *Order) int { return o.Version })

// OrderStatus is an order's state in the read model, the read schema's
// OrderStatus enum.
type OrderStatus = string

// Order statuses in the read model.
const (
	OrderPending   OrderStatus = "PENDING"
	OrderConfirmed OrderStatus = "CONFIRMED"
	OrderRejected  OrderStatus = "REJECTED"
	OrderCancelled OrderStatus = "CANCELLED"
)

// OrderLine is one line of an order, with the name and price at ordering time.
type OrderLine struct {
	ProductID      string `json:"productId"`
	ProductName    string `json:"productName" search:"text,keyword"`
	Quantity       int    `json:"quantity"`
	UnitPriceCents int64  `json:"unitPriceCents"`
}

// Order is the orders index document.
type Order struct {
	ID         string `json:"id"`
	CustomerID string `json:"customerId"`
	// CustomerName is the customer's current display name, filled at read
	// time from the customer document (Refs) and never stored, so it
	// follows renames; "" when the customer never registered.
	CustomerName    string      `json:"customerName,omitempty" search:"text,keyword"`
	Status          string      `json:"status"`
	Lines           []OrderLine `json:"lines"`
	TotalCents      int64       `json:"totalCents"`
	Currency        string      `json:"currency"`
	RejectionReason string      `json:"rejectionReason,omitempty" search:"text"`
	CancelReason    string      `json:"cancelReason,omitempty" search:"text"`
	Version         int         `json:"version"`
	Position        int64       `json:"position"`
	CreatedAt       time.Time   `json:"createdAt"`
	UpdatedAt       time.Time   `json:"updatedAt"`
}

// ApplyOrder applies one of the order's own events.
func ApplyOrder(o *Order, e event.Envelope, pl event.Payload) Outcome {
	if out, ok := stepOf(o.Version, e); !ok {
		return out
	}
	o.ID = e.StreamID
	switch pl := pl.(type) {
	case event.OrderPlaced:
		o.CustomerID, o.Status, o.TotalCents, o.Currency = pl.CustomerID, OrderPending, pl.TotalCents, pl.Currency
		o.Lines = make([]OrderLine, len(pl.Lines))
		for i, l := range pl.Lines {
			o.Lines[i] = OrderLine{ProductID: l.ProductID, ProductName: l.ProductName, Quantity: l.Quantity, UnitPriceCents: l.UnitPriceCents}
		}
		o.CreatedAt = e.OccurredAt
	case event.OrderConfirmed:
		o.Status = OrderConfirmed
	case event.OrderRejected:
		o.Status, o.RejectionReason = OrderRejected, pl.Reason
	case event.OrderCancelled:
		o.Status, o.CancelReason = OrderCancelled, pl.Reason
	}
	o.Version, o.Position, o.UpdatedAt = e.Version, e.Position, e.OccurredAt
	return Applied
}
