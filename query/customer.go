package query

import (
	"context"
	"time"

	"github.com/splitstream/splitstream/event"
)

// Customers declares customer documents: one per customer stream, in the
// "customers" read model, readable by that customer and admins (Owner).
// Orders show a customer by its display name (Title); customerChanged
// subscribers wait on the customer.
var Customers = declare(Kind{
	Name:    event.StreamCustomer,
	Index:   "customers",
	Streams: []string{event.StreamCustomer},
	Rebuilt: true,
	Family:  func(e event.Envelope, _ event.Payload) string { return string(event.StreamCustomer) + ":" + e.StreamID },
	Topic:   func(c Change) string { return c.ID },
	Owner:   func(d any) string { return d.(*Customer).ID },
	Title:   &Title{Field: "displayName", Of: func(d any) string { return d.(*Customer).DisplayName }},
}, ApplyCustomer, func(c *Customer) int { return c.Version })

// Customer is the customers index document.
type Customer struct {
	ID              string    `json:"id"`
	DisplayName     string    `json:"displayName" search:"text,keyword"`
	Email           string    `json:"email"`
	ShippingAddress string    `json:"shippingAddress" search:"text"`
	Version         int       `json:"version"`
	Position        int64     `json:"position"`
	CreatedAt       time.Time `json:"createdAt"`
	UpdatedAt       time.Time `json:"updatedAt"`
}

// ApplyCustomer applies one of the customer's own events.
func ApplyCustomer(c *Customer, e event.Envelope, pl event.Payload) Outcome {
	if out, ok := stepOf(c.Version, e); !ok {
		return out
	}
	c.ID = e.StreamID
	switch pl := pl.(type) {
	case event.CustomerRegistered:
		c.DisplayName, c.Email, c.ShippingAddress, c.CreatedAt = pl.DisplayName, pl.Email, pl.ShippingAddress, e.OccurredAt
	case event.CustomerRenamed:
		c.DisplayName = pl.DisplayName
	case event.CustomerAddressChanged:
		c.ShippingAddress = pl.ShippingAddress
	}
	c.Version, c.Position, c.UpdatedAt = e.Version, e.Position, e.OccurredAt
	return Applied
}

// Customer returns a customer, or nil when there is none or the caller
// is another customer.
func (s *Service) Customer(ctx context.Context, id string, token *string) (*Customer, error) {
	return get[Customer](ctx, s, Customers, "customer", id, token)
}

// CustomerChanged streams the customer after each change, to that
// customer and admins only.
func (h *Hub) CustomerChanged(ctx context.Context, id string) (<-chan *Customer, error) {
	return subscribe[Customer](ctx, h, Customers, "customerChanged", id, checkID("id", id), nil)
}
