package command

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/splitstream/splitstream/event"
)

// Meta is what a command carries besides its input.
type Meta struct {
	// CommandID makes the command idempotent; generated when empty.
	CommandID     string
	CorrelationID string
	Actor         string
	// ExpectedVersion is the version the client last saw, when it says.
	ExpectedVersion *int
}

// Service runs commands: it loads an aggregate, lets it decide, and appends
// the result through the store. It holds no business rules of its own.
type Service struct {
	store   EventStore
	newID   func() string
	metrics *metrics
	guard   Guard
	tokens  Tokens
}

// NewService returns a service on store.
func NewService(store EventStore, opts ...Option) (*Service, error) {
	if store == nil {
		return nil, errors.New("command: nil event store")
	}
	s := &Service{store: store, newID: func() string { return uuid.NewString() }}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// CreateProduct creates a product with a new id.
func (s *Service) CreateProduct(ctx context.Context, m Meta, c CreateProduct) (Result, error) {
	if err := s.admit(ctx, "createProduct", &m); err != nil {
		return Result{}, err
	}
	return s.product(ctx, "createProduct", s.newID(), true, m, c, c)
}

// ChangeProduct runs any other product command on product id; mutation names
// the GraphQL mutation, for idempotency.
func (s *Service) ChangeProduct(ctx context.Context, mutation, id string, m Meta, c ProductCommand) (Result, error) {
	if err := s.admit(ctx, mutation, &m); err != nil {
		return Result{}, err
	}
	return s.product(ctx, mutation, id, false, m, c, struct {
		ID  string
		Cmd ProductCommand
	}{id, c})
}

func (s *Service) product(ctx context.Context, mutation, id string, fresh bool, m Meta, c ProductCommand, input any) (Result, error) {
	return s.change(ctx, mutation, Stream{ID: id, Type: event.StreamProduct}, fresh, m, input, func(h []event.Envelope) ([]event.Payload, error) {
		p, err := foldProduct(id, h)
		if err != nil {
			return nil, err
		}
		return DecideProduct(p, c)
	})
}

// AddReview adds a review, with a new id, to an existing product.
func (s *Service) AddReview(ctx context.Context, m Meta, c AddReview) (Result, error) {
	if err := s.admit(ctx, "addReview", &m); err != nil {
		return Result{}, err
	}
	input := c
	input.Product = Product{}
	return s.withProduct(ctx, c.ProductID, func(p Product) (Result, error) {
		c.Product = p
		return s.review(ctx, "addReview", s.newID(), true, m, c, input)
	})
}

// RemoveReview removes review id.
func (s *Service) RemoveReview(ctx context.Context, id string, m Meta) (Result, error) {
	if err := s.admit(ctx, "removeReview", &m); err != nil {
		return Result{}, err
	}
	return s.review(ctx, "removeReview", id, false, m, RemoveReview{}, id)
}

func (s *Service) review(ctx context.Context, mutation, id string, fresh bool, m Meta, c ReviewCommand, input any) (Result, error) {
	return s.change(ctx, mutation, Stream{ID: id, Type: event.StreamReview}, fresh, m, input, func(h []event.Envelope) ([]event.Payload, error) {
		if !fresh {
			if err := s.owns(ctx, mutation, reviewAuthor(h)); err != nil {
				return nil, err
			}
		}
		r, err := foldReview(id, h)
		if err != nil {
			return nil, err
		}
		return DecideReview(r, c)
	})
}

// PlaceOrder places an order with a new id. Each line records the product's
// name and price as they are now; an unknown product is left for the saga to
// reject.
func (s *Service) PlaceOrder(ctx context.Context, m Meta, c PlaceOrder) (Result, error) {
	if err := s.admit(ctx, "placeOrder", &m); err != nil {
		return Result{}, err
	}
	if err := s.owns(ctx, "placeOrder", c.CustomerID); err != nil {
		return Result{}, err
	}
	input := c
	lines := make([]event.OrderLine, len(c.Lines))
	copy(lines, c.Lines)
	for i, l := range lines {
		if l.ProductID == "" {
			continue
		}
		h, err := s.store.Load(ctx, l.ProductID)
		if err != nil {
			return Result{}, err
		}
		p, err := foldProduct(l.ProductID, h)
		if err != nil {
			return Result{}, err
		}
		if p.Exists {
			lines[i].ProductName, lines[i].UnitPriceCents = p.Name, p.PriceCents
			if c.Currency == "" {
				c.Currency = p.Currency
			}
		}
	}
	c.Lines = lines
	return s.order(ctx, "placeOrder", s.newID(), true, m, c, input)
}

// ChangeOrder runs any other order command on order id.
func (s *Service) ChangeOrder(ctx context.Context, mutation, id string, m Meta, c OrderCommand) (Result, error) {
	if err := s.admit(ctx, mutation, &m); err != nil {
		return Result{}, err
	}
	return s.order(ctx, mutation, id, false, m, c, struct {
		ID  string
		Cmd OrderCommand
	}{id, c})
}

func (s *Service) order(ctx context.Context, mutation, id string, fresh bool, m Meta, c OrderCommand, input any) (Result, error) {
	return s.change(ctx, mutation, Stream{ID: id, Type: event.StreamOrder}, fresh, m, input, func(h []event.Envelope) ([]event.Payload, error) {
		o, err := foldOrder(id, h)
		if err != nil {
			return nil, err
		}
		if !fresh {
			if err := s.owns(ctx, mutation, o.CustomerID); err != nil {
				return nil, err
			}
		}
		return DecideOrder(o, c)
	})
}

func (s *Service) withProduct(ctx context.Context, id string, fn func(Product) (Result, error)) (Result, error) {
	h, err := s.store.Load(ctx, id)
	if err != nil {
		return Result{}, err
	}
	p, err := foldProduct(id, h)
	if err != nil {
		return Result{}, err
	}
	return fn(p)
}

func (s *Service) change(ctx context.Context, mutation string, st Stream, fresh bool, m Meta, input any, decide func([]event.Envelope) ([]event.Payload, error)) (Result, error) {
	hash, err := inputHash(input, m.ExpectedVersion)
	if err != nil {
		return Result{}, err
	}
	if m.CommandID == "" {
		m.CommandID = s.newID()
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.CommandID
	}
	start := time.Now()
	appended := 0
	res, err := s.store.Change(ctx, Change{
		Stream:          st,
		Fresh:           fresh,
		ExpectedVersion: m.ExpectedVersion,
		Mutation:        mutation,
		CommandID:       m.CommandID,
		InputHash:       hash,
		Metadata: event.Metadata{
			CommandID:     m.CommandID,
			CorrelationID: m.CorrelationID,
			CausationID:   m.CommandID,
			Actor:         m.Actor,
		},
		Decide: func(h []event.Envelope) ([]event.Payload, error) {
			evs, err := decide(h)
			appended = len(evs)
			return evs, err
		},
	})
	if err != nil {
		appended = 0
	}
	s.metrics.observe(mutation, start, appended, err)
	if err != nil {
		return res, err
	}
	return s.seal(res)
}

// inputHash identifies a command's input, so that a reused command id with a
// different input is caught.
func inputHash(input any, expected *int) ([]byte, error) {
	b, err := json.Marshal(struct {
		Input    any
		Expected *int
	}{input, expected})
	if err != nil {
		return nil, fmt.Errorf("hash input: %w", err)
	}
	sum := sha256.Sum256(b)
	return sum[:], nil
}

func payloads(h []event.Envelope) ([]event.Payload, error) {
	out := make([]event.Payload, len(h))
	for i, e := range h {
		p, err := e.Payload()
		if err != nil {
			return nil, fmt.Errorf("decode %s v%d: %w", e.StreamID, e.Version, err)
		}
		out[i] = p
	}
	return out, nil
}

func foldProduct(id string, h []event.Envelope) (Product, error) {
	if len(h) > 0 && h[0].StreamType != event.StreamProduct {
		return Product{ID: id}, nil // another aggregate's id: no such product
	}
	ps, err := payloads(h)
	if err != nil {
		return Product{}, err
	}
	return FoldProduct(id, ps), nil
}

func foldReview(id string, h []event.Envelope) (Review, error) {
	ps, err := payloads(h)
	if err != nil {
		return Review{}, err
	}
	return FoldReview(id, ps), nil
}

func foldOrder(id string, h []event.Envelope) (Order, error) {
	ps, err := payloads(h)
	if err != nil {
		return Order{}, err
	}
	return FoldOrder(id, ps), nil
}
