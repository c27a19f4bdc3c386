package command

import (
	"fmt"
	"slices"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/event"
)

// Order statuses, as the read schema's OrderStatus names them.
const (
	StatusPending   = "PENDING"
	StatusConfirmed = "CONFIRMED"
	StatusRejected  = "REJECTED"
	StatusCancelled = "CANCELLED"
)

// Order is the state of an order stream.
type Order struct {
	ID         string
	Version    int
	Exists     bool
	CustomerID string
	Status     string
	Lines      []event.OrderLine
	TotalCents int64
	Currency   string
	Reason     string // why it was rejected or cancelled
}

// OrderCommand is a command on an order. Commands are passed as values.
type OrderCommand interface {
	isOrderCommand()
	Namer
	// Validate checks the command's input alone, before anything is loaded.
	Validate() error
}

type (
	// PlaceOrder lines carry ProductName and UnitPriceCents filled by the
	// handler from each product's state; zero when the product is unknown,
	// which the saga then rejects. Currency may be empty only then.
	PlaceOrder struct {
		CustomerID string
		Lines      []event.OrderLine
		Currency   string
	}
	ConfirmOrder struct{}
	RejectOrder  struct{ Reason string }
	CancelOrder  struct{ Reason string }
)

func (PlaceOrder) isOrderCommand()   {}
func (ConfirmOrder) isOrderCommand() {}
func (RejectOrder) isOrderCommand()  {}
func (CancelOrder) isOrderCommand()  {}

// FoldOrder rebuilds an order from its history.
func FoldOrder(id string, history []event.Payload) Order {
	return fold(Order{ID: id}, history)
}

// OrderFoldVersion names the order fold for snapshots; bump it whenever
// Apply or Order's shape changes.
const OrderFoldVersion = 1

// Apply returns o with e applied; every event counts as one version.
func (o Order) Apply(e event.Payload) Order { return o.foldEvent(e) }

// foldEvent is Apply: Order holds nothing a fold could share.
func (o Order) foldEvent(e event.Payload) Order {
	o.Version++
	switch e := e.(type) {
	case event.OrderPlaced:
		o.Exists = true
		o.CustomerID, o.Status = e.CustomerID, StatusPending
		o.Lines = slices.Clone(e.Lines) // the event's slice stays the event's
		o.TotalCents, o.Currency = e.TotalCents, e.Currency
	case event.OrderConfirmed:
		o.Status = StatusConfirmed
	case event.OrderRejected:
		o.Status, o.Reason = StatusRejected, e.Reason
	case event.OrderCancelled:
		o.Status, o.Reason = StatusCancelled, e.Reason
	}
	return o
}

// DecideOrder returns the events cmd causes on o, none when o is already
// where cmd would take it, or a *splitstream.Error saying why it is refused.
func DecideOrder(o Order, cmd OrderCommand) ([]event.Payload, error) {
	switch c := cmd.(type) {
	case PlaceOrder:
		return o.place(c)
	case ConfirmOrder:
		return o.transition(StatusConfirmed, event.OrderConfirmed{}, StatusPending)
	case RejectOrder:
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return o.transition(StatusRejected, event.OrderRejected{Reason: c.Reason}, StatusPending)
	case CancelOrder:
		if err := c.Validate(); err != nil {
			return nil, err
		}
		return o.transition(StatusCancelled, event.OrderCancelled{Reason: c.Reason}, StatusPending, StatusConfirmed)
	default:
		return nil, fmt.Errorf("decide order %s: unknown command %T", o.ID, cmd)
	}
}

// transition moves o to status with e when o is in one of from. Being in
// status already is a no-op, so the saga may repeat itself.
func (o Order) transition(status string, e event.Payload, from ...string) ([]event.Payload, error) {
	if !o.Exists {
		return nil, splitstream.NotFound("order %s not found", o.ID)
	}
	if o.Status == status {
		return nil, nil
	}
	if !slices.Contains(from, o.Status) {
		return nil, splitstream.Conflict(o.Version, "order is %s", o.Status)
	}
	return []event.Payload{e}, nil
}

func (o Order) place(c PlaceOrder) ([]event.Payload, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var total int64
	for i, l := range c.Lines {
		// Zero means the product is unknown; the cap keeps the total far
		// from overflowing (100 lines x 1,000 x 1e9 < 2^63).
		if l.UnitPriceCents < 0 || l.UnitPriceCents > maxPriceCents {
			return nil, splitstream.Invalid(fmt.Sprintf("lines[%d].unitPriceCents", i),
				"unit price must be between 0 and %d, got %d", maxPriceCents, l.UnitPriceCents)
		}
		total += int64(l.Quantity) * l.UnitPriceCents
	}
	// An order of unknown products has no price and so no currency yet.
	if c.Currency != "" || total > 0 {
		if err := checkCurrency("currency", c.Currency); err != nil {
			return nil, err
		}
	}
	if o.Exists {
		return nil, splitstream.Conflict(o.Version, "order already exists")
	}
	return []event.Payload{event.OrderPlaced{
		CustomerID: c.CustomerID, Lines: slices.Clone(c.Lines), TotalCents: total, Currency: c.Currency,
	}}, nil
}

// The order mutations' inputs, as the write schema delivers them
// (input.go).
type (
	PlaceOrderInput struct {
		CustomerID string
		Lines      []OrderLineInput
		Once
	}
	OrderLineInput struct {
		ProductID string
		Quantity  int
	}
	CancelOrderInput struct {
		ID     string
		Reason *string
		Versioned
	}
)

func (in PlaceOrderInput) runner() runner {
	lines := make([]event.OrderLine, len(in.Lines))
	for i, l := range in.Lines {
		lines[i] = event.OrderLine{ProductID: l.ProductID, Quantity: l.Quantity}
	}
	return placeOrder(PlaceOrder{CustomerID: in.CustomerID, Lines: lines})
}

func (in CancelOrderInput) runner() runner {
	return changeOrder(in.ID, CancelOrder{Reason: deref(in.Reason)})
}
