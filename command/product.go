// Package command owns the write model: pure aggregates that decide which
// events a command produces (Decide*) and fold events back into state
// (Apply, Fold*). Nothing here does I/O, reads a clock or takes a context.
// Beside each aggregate are its mutations' inputs, which the write schema
// binds to and which translate themselves into commands (input.go).
package command

import (
	"fmt"
	"maps"
	"strings"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/event"
)

// Product is the state of a product stream as the write side needs it.
type Product struct {
	ID           string
	Version      int
	Exists       bool
	Name         string
	Description  string
	Category     string
	PriceCents   int64
	Currency     string
	Stock        int // available to reserve; reserved units are not in it
	Discontinued bool
	Reserved     map[string]int // order ID -> quantity reserved now
}

// ProductCommand is a command on a product. Commands are passed as values.
type ProductCommand interface {
	isProductCommand()
	Namer
	// Validate checks the command's input alone, before anything is loaded.
	Validate() error
}

type (
	CreateProduct struct {
		Name        string
		Description string
		Category    string
		PriceCents  int64
		Currency    string
		Stock       int
	}
	RenameProduct            struct{ Name string }
	ChangeProductDescription struct{ Description string }
	ChangeProductPrice       struct{ PriceCents int64 }
	RestockProduct           struct{ Quantity int }
	DiscontinueProduct       struct{}
	// ReserveStock and ReleaseStock come from the order saga, which may
	// deliver them more than once; both are idempotent per order.
	ReserveStock struct {
		OrderID  string
		Quantity int
	}
	ReleaseStock struct{ OrderID string }
)

func (CreateProduct) isProductCommand()            {}
func (RenameProduct) isProductCommand()            {}
func (ChangeProductDescription) isProductCommand() {}
func (ChangeProductPrice) isProductCommand()       {}
func (RestockProduct) isProductCommand()           {}
func (DiscontinueProduct) isProductCommand()       {}
func (ReserveStock) isProductCommand()             {}
func (ReleaseStock) isProductCommand()             {}

// ProductFoldVersion names the product fold (Apply and Product's shape) for
// snapshots: bump it whenever either changes, and every saved product
// snapshot is ignored and replaced by one of the new fold.
const ProductFoldVersion = 1

// FoldProduct rebuilds a product from its history.
func FoldProduct(id string, history []event.Payload) Product {
	return fold(Product{ID: id}, history)
}

// Apply returns p with e applied. Every event counts as one version, so
// Version stays equal to the stream's version. Reserved is copied before it
// changes: states returned earlier may still be in use.
func (p Product) Apply(e event.Payload) Product {
	switch e.(type) {
	case event.StockReserved, event.StockReleased:
		p.Reserved = maps.Clone(p.Reserved)
	}
	return p.foldEvent(e)
}

// foldEvent is Apply for a fold that owns p.Reserved (it made the map, or
// decoded it from a snapshot): it changes the map in place, so replaying n
// reservations costs O(n), not the O(n²) of a copy per event.
func (p Product) foldEvent(e event.Payload) Product {
	p.Version++
	switch e := e.(type) {
	case event.ProductCreated:
		p.Exists = true
		p.Name, p.Description, p.Category = e.Name, e.Description, e.Category
		p.PriceCents, p.Currency, p.Stock = e.PriceCents, e.Currency, e.Stock
	case event.ProductRenamed:
		p.Name = e.Name
	case event.ProductDescriptionChanged:
		p.Description = e.Description
	case event.ProductPriceChanged:
		p.PriceCents = e.PriceCents
	case event.ProductRestocked:
		p.Stock = e.Stock
	case event.ProductDiscontinued:
		p.Discontinued = true
	case event.StockReserved:
		p.Stock = e.Stock
		if p.Reserved == nil {
			p.Reserved = make(map[string]int)
		}
		p.Reserved[e.OrderID] = e.Quantity
	case event.StockReleased:
		p.Stock = e.Stock
		delete(p.Reserved, e.OrderID)
	}
	return p
}

// DecideProduct returns the events cmd causes on p, none when cmd changes
// nothing, or a *splitstream.Error saying why it is refused.
func DecideProduct(p Product, cmd ProductCommand) ([]event.Payload, error) {
	switch c := cmd.(type) {
	case CreateProduct:
		return p.create(c)
	case RenameProduct:
		return p.rename(c)
	case ChangeProductDescription:
		return p.changeDescription(c)
	case ChangeProductPrice:
		return p.changePrice(c)
	case RestockProduct:
		return p.restock(c)
	case DiscontinueProduct:
		if err := p.mutable(); err != nil {
			return nil, err
		}
		return []event.Payload{event.ProductDiscontinued{}}, nil
	case ReserveStock:
		return p.reserve(c)
	case ReleaseStock:
		return p.release(c)
	default:
		return nil, fmt.Errorf("decide product %s: unknown command %T", p.ID, cmd)
	}
}

func (p Product) create(c CreateProduct) ([]event.Payload, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if p.Exists {
		return nil, splitstream.Conflict(p.Version, "product already exists")
	}
	return []event.Payload{event.ProductCreated{
		Name: strings.TrimSpace(c.Name), Description: c.Description, Category: strings.TrimSpace(c.Category),
		PriceCents: c.PriceCents, Currency: c.Currency, Stock: c.Stock,
	}}, nil
}

func (p Product) rename(c RenameProduct) ([]event.Payload, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := p.mutable(); err != nil {
		return nil, err
	}
	name := strings.TrimSpace(c.Name)
	if name == p.Name {
		return nil, nil
	}
	return []event.Payload{event.ProductRenamed{Name: name}}, nil
}

func (p Product) changeDescription(c ChangeProductDescription) ([]event.Payload, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := p.mutable(); err != nil {
		return nil, err
	}
	if c.Description == p.Description {
		return nil, nil
	}
	return []event.Payload{event.ProductDescriptionChanged{Description: c.Description}}, nil
}

func (p Product) changePrice(c ChangeProductPrice) ([]event.Payload, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := p.mutable(); err != nil {
		return nil, err
	}
	if c.PriceCents == p.PriceCents {
		return nil, nil
	}
	return []event.Payload{event.ProductPriceChanged{PriceCents: c.PriceCents}}, nil
}

func (p Product) restock(c RestockProduct) ([]event.Payload, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if err := p.mutable(); err != nil {
		return nil, err
	}
	// Reserved units may come back, so they count towards the limit.
	if onHand := p.Stock + p.reservedTotal(); onHand+c.Quantity > maxStock {
		return nil, splitstream.Invalid("quantity", "stock would be %d, above the limit of %d", onHand+c.Quantity, maxStock)
	}
	return []event.Payload{event.ProductRestocked{Quantity: c.Quantity, Stock: p.Stock + c.Quantity}}, nil
}

func (p Product) reserve(c ReserveStock) ([]event.Payload, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !p.Exists {
		return nil, p.notFound()
	}
	// Before the discontinued check: a redelivered reservation that was
	// granted before the product was discontinued still stands.
	if _, ok := p.Reserved[c.OrderID]; ok {
		return nil, nil
	}
	// The saga shows this message to the customer as the rejection reason.
	if p.Discontinued {
		return nil, splitstream.Conflict(p.Version, "%s is discontinued", p.Name)
	}
	if p.Stock < c.Quantity {
		return nil, &splitstream.Error{
			Code:           splitstream.EConflict,
			Message:        fmt.Sprintf("insufficient stock for %s: %d left, %d wanted", p.Name, p.Stock, c.Quantity),
			CurrentVersion: p.Version,
		}
	}
	return []event.Payload{event.StockReserved{OrderID: c.OrderID, Quantity: c.Quantity, Stock: p.Stock - c.Quantity}}, nil
}

// release works on a discontinued product too: returning stock must never
// be refused, or a cancelled order would hold it forever.
func (p Product) release(c ReleaseStock) ([]event.Payload, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if !p.Exists {
		return nil, p.notFound()
	}
	q, ok := p.Reserved[c.OrderID]
	if !ok {
		return nil, nil
	}
	return []event.Payload{event.StockReleased{OrderID: c.OrderID, Quantity: q, Stock: p.Stock + q}}, nil
}

// mutable refuses commands on a product that is missing or discontinued.
func (p Product) mutable() error {
	if !p.Exists {
		return p.notFound()
	}
	if p.Discontinued {
		return splitstream.Conflict(p.Version, "product is discontinued")
	}
	return nil
}

func (p Product) notFound() error { return splitstream.NotFound("product %s not found", p.ID) }

func (p Product) reservedTotal() int {
	n := 0
	for _, q := range p.Reserved {
		n += q
	}
	return n
}

// folder is a state a fold can own and change in place.
type folder[S any] interface{ foldEvent(event.Payload) S }

// fold applies history to s in order. s must be the fold's own: a fresh
// state or one decoded from a snapshot.
func fold[S folder[S]](s S, history []event.Payload) S {
	for _, e := range history {
		s = s.foldEvent(e)
	}
	return s
}

// The product mutations' inputs, as the write schema delivers them
// (input.go).
type (
	CreateProductInput struct {
		Name        string
		Description *string
		Category    string
		PriceCents  int
		Currency    string
		Stock       int
		Once
	}
	RenameProductInput struct {
		ID   string
		Name string
		Versioned
	}
	ChangeProductDescriptionInput struct {
		ID          string
		Description string
		Versioned
	}
	ChangeProductPriceInput struct {
		ID         string
		PriceCents int
		Versioned
	}
	RestockProductInput struct {
		ID       string
		Quantity int
		Versioned
	}
	DiscontinueProductInput struct {
		ID string
		Versioned
	}
)

func (in CreateProductInput) runner() runner {
	return createProduct(CreateProduct{
		Name: in.Name, Description: deref(in.Description), Category: in.Category,
		PriceCents: int64(in.PriceCents), Currency: in.Currency, Stock: in.Stock,
	})
}

func (in RenameProductInput) runner() runner {
	return changeProduct(in.ID, RenameProduct{Name: in.Name})
}

func (in ChangeProductDescriptionInput) runner() runner {
	return changeProduct(in.ID, ChangeProductDescription{Description: in.Description})
}

func (in ChangeProductPriceInput) runner() runner {
	return changeProduct(in.ID, ChangeProductPrice{PriceCents: int64(in.PriceCents)})
}

func (in RestockProductInput) runner() runner {
	return changeProduct(in.ID, RestockProduct{Quantity: in.Quantity})
}

func (in DiscontinueProductInput) runner() runner {
	return changeProduct(in.ID, DiscontinueProduct{})
}
