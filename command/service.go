package command

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/tracing"
)

// Meta is what a command carries besides its input.
type Meta struct {
	// CommandID makes the command idempotent; generated when empty.
	CommandID     string
	CorrelationID string
	Actor         string
	// ExpectedVersion is the version the client last saw, when it says.
	ExpectedVersion *int
	// Internal marks a command the server sends itself (a saga step): its
	// CommandID lives in the server's own id space, where no client
	// commandId can reach.
	Internal bool
}

// Service runs commands: it loads an aggregate, lets it decide, and appends
// the result through the store. It holds no business rules of its own.
type Service struct {
	store   EventStore
	newID   func() string
	metrics *metrics
	guard   Guard
	tokens  Tokens
	laneOf  LaneOf
	tracer  trace.Tracer
}

// NewService returns a service on store.
func NewService(store EventStore, opts ...Option) (*Service, error) {
	if store == nil {
		return nil, errors.New("command: nil event store")
	}
	s := &Service{store: store, newID: newID, tracer: tracing.Tracer(nil)}
	for _, o := range opts {
		if err := o(s); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// newID names a new aggregate (and a generated command id): a UUIDv7, so
// that ids made one after another sort together and a new stream's index
// entries land at the right edge of the events' (stream_id, version) index
// instead of on a random page of it.
func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system's random source does.
		return uuid.NewString()
	}
	return id.String()
}

// CreateProduct creates a product with a new id.
func (s *Service) CreateProduct(ctx context.Context, m Meta, c CreateProduct) (Result, error) {
	if err := s.admit(ctx, c.CommandName(), &m); err != nil {
		return Result{}, err
	}
	return s.product(ctx, s.newID(), true, m, c, c)
}

// ChangeProduct runs any other product command on product id.
func (s *Service) ChangeProduct(ctx context.Context, id string, m Meta, c ProductCommand) (Result, error) {
	if err := s.admit(ctx, c.CommandName(), &m); err != nil {
		return Result{}, err
	}
	return s.product(ctx, id, false, m, c, struct {
		ID  string
		Cmd ProductCommand
	}{id, c})
}

func (s *Service) product(ctx context.Context, id string, fresh bool, m Meta, c ProductCommand, input any) (Result, error) {
	return s.change(ctx, c.CommandName(), Stream{ID: id, Type: event.StreamProduct}, fresh, m, c, ProductFoldVersion, input,
		func(snap *Snapshot, h []event.Envelope) (Decision, error) {
			p, err := restore(Product{ID: id}, event.StreamProduct, snap, h)
			if err != nil {
				return Decision{}, err
			}
			return decision(p, DecideProduct)(c)
		})
}

// AddReview adds a review, with a new id, to an existing product.
func (s *Service) AddReview(ctx context.Context, m Meta, c AddReview) (Result, error) {
	if err := s.admit(ctx, c.CommandName(), &m); err != nil {
		return Result{}, err
	}
	input := c
	input.Product = Product{}
	id := s.newID()
	return s.change(ctx, c.CommandName(), Stream{ID: id, Type: event.StreamReview}, true, m, c, ReviewFoldVersion, input,
		func(snap *Snapshot, h []event.Envelope) (Decision, error) {
			// Loaded only once the command id was looked up: a retry is
			// answered from its record, whatever became of the product.
			p, err := s.loadProduct(ctx, c.ProductID)
			if err != nil {
				return Decision{}, err
			}
			c.Product = p
			r, err := restore(Review{ID: id}, event.StreamReview, snap, h)
			if err != nil {
				return Decision{}, err
			}
			return decision(r, DecideReview)(c)
		})
}

// RemoveReview removes review id.
func (s *Service) RemoveReview(ctx context.Context, id string, m Meta) (Result, error) {
	name := RemoveReview{}.CommandName()
	if err := s.admit(ctx, name, &m); err != nil {
		return Result{}, err
	}
	return s.change(ctx, name, Stream{ID: id, Type: event.StreamReview}, false, m, RemoveReview{}, ReviewFoldVersion, id,
		func(snap *Snapshot, h []event.Envelope) (Decision, error) {
			// The owner is the actor of the review's first event. A review
			// stream holds at most two events, so it never has a snapshot;
			// if it had, the owner would be unknown and only an admin passes.
			owner := ""
			if snap == nil {
				owner = reviewAuthor(h)
			}
			if err := s.owns(ctx, name, owner); err != nil {
				return Decision{}, err
			}
			r, err := restore(Review{ID: id}, event.StreamReview, snap, h)
			if err != nil {
				return Decision{}, err
			}
			return decision(r, DecideReview)(RemoveReview{})
		})
}

// PlaceOrder places an order with a new id. Each line records the product's
// name and price as they are now; an unknown product is left for the saga to
// reject. The order's own limits are checked before any product is loaded.
func (s *Service) PlaceOrder(ctx context.Context, m Meta, c PlaceOrder) (Result, error) {
	if err := s.admit(ctx, c.CommandName(), &m); err != nil {
		return Result{}, err
	}
	if err := s.owns(ctx, c.CommandName(), c.CustomerID); err != nil {
		return Result{}, err
	}
	input := c
	id := s.newID()
	return s.change(ctx, c.CommandName(), Stream{ID: id, Type: event.StreamOrder}, true, m, c, OrderFoldVersion, input,
		func(snap *Snapshot, h []event.Envelope) (Decision, error) {
			c := c
			c.Lines = slices.Clone(c.Lines)
			for i, l := range c.Lines {
				p, err := s.loadProduct(ctx, l.ProductID)
				if err != nil {
					return Decision{}, err
				}
				if p.Exists {
					c.Lines[i].ProductName, c.Lines[i].UnitPriceCents = p.Name, p.PriceCents
					if c.Currency == "" {
						c.Currency = p.Currency
					}
				}
			}
			o, err := restore(Order{ID: id}, event.StreamOrder, snap, h)
			if err != nil {
				return Decision{}, err
			}
			return decision(o, DecideOrder)(c)
		})
}

// ChangeOrder runs any other order command on order id.
func (s *Service) ChangeOrder(ctx context.Context, id string, m Meta, c OrderCommand) (Result, error) {
	mutation := c.CommandName()
	if err := s.admit(ctx, mutation, &m); err != nil {
		return Result{}, err
	}
	return s.change(ctx, mutation, Stream{ID: id, Type: event.StreamOrder}, false, m, c, OrderFoldVersion, struct {
		ID  string
		Cmd OrderCommand
	}{id, c}, func(snap *Snapshot, h []event.Envelope) (Decision, error) {
		o, err := restore(Order{ID: id}, event.StreamOrder, snap, h)
		if err != nil {
			return Decision{}, err
		}
		if err := s.owns(ctx, mutation, o.CustomerID); err != nil {
			return Decision{}, err
		}
		return decision(o, DecideOrder)(c)
	})
}

// loadProduct reads a product from its snapshot and the events after it.
func (s *Service) loadProduct(ctx context.Context, id string) (Product, error) {
	snap, h, err := s.store.LoadSince(ctx, id, ProductFoldVersion)
	if err != nil {
		return Product{}, err
	}
	return RestoreProduct(id, snap, h)
}

// RestoreProduct rebuilds a product from what EventStore.LoadSince returns
// for ProductFoldVersion: a snapshot (nil when none) and the events after
// it. An unknown id, or another aggregate's, is a product that does not
// exist.
func RestoreProduct(id string, snap *Snapshot, tail []event.Envelope) (Product, error) {
	return restore(Product{ID: id}, event.StreamProduct, snap, tail)
}

// validator is a command that can check its own input.
type validator interface{ Validate() error }

// validate checks a command's input before anything is loaded: the id of
// the aggregate it changes (a fresh one is the service's own), its meta
// and the command itself.
func validate(st Stream, fresh bool, m Meta, c validator) error {
	if !fresh {
		if err := checkID("id", st.ID); err != nil {
			return err
		}
	}
	if err := m.Validate(); err != nil {
		return err
	}
	return c.Validate()
}

func (s *Service) decideAndAppend(ctx context.Context, mutation Name, st Stream, fresh bool, m Meta, c validator, foldVersion int, input any,
	decide func(*Snapshot, []event.Envelope) (Decision, error)) (Result, error) {
	start := time.Now()
	if err := validate(st, fresh, m, c); err != nil {
		s.metrics.observe(mutation, start, 0, err)
		return Result{}, err
	}
	// The caller is part of the input: another caller's command id, even
	// with the same input, is a CONFLICT, never the first caller's result.
	hash, err := inputHash(struct {
		Actor string
		Input any
	}{m.Actor, input}, m.ExpectedVersion)
	if err != nil {
		return Result{}, err
	}
	lookup := m.CommandID != ""
	if !lookup {
		m.CommandID = s.newID()
	}
	if m.CorrelationID == "" {
		m.CorrelationID = m.CommandID
	}
	appended := 0
	var first event.Payload // the first new event, for the token's lane
	res, err := s.store.Change(ctx, Change{
		Stream:          st,
		Fresh:           fresh,
		ExpectedVersion: m.ExpectedVersion,
		Mutation:        mutation,
		CommandID:       m.CommandID,
		Internal:        m.Internal,
		Lookup:          lookup,
		InputHash:       hash,
		Metadata: event.Metadata{
			CommandID:     m.CommandID,
			CorrelationID: m.CorrelationID,
			CausationID:   m.CommandID,
			Actor:         m.Actor,
		},
		FoldVersion: foldVersion,
		Decide: func(snap *Snapshot, h []event.Envelope) (Decision, error) {
			d, err := decide(snap, h)
			appended = len(d.Events)
			if len(d.Events) > 0 {
				first = d.Events[0]
			}
			return d, err
		},
	})
	if err != nil {
		appended = 0
	}
	s.metrics.observe(mutation, start, appended, err)
	if err != nil {
		return res, err
	}
	return s.seal(ctx, st, first, res)
}

// decision returns a function that decides a command on s and encodes the
// state after its events, for a snapshot, when the store asks.
func decision[S folder[S], C any](s S, decide func(S, C) ([]event.Payload, error)) func(C) (Decision, error) {
	return func(c C) (Decision, error) {
		evs, err := decide(s, c)
		if err != nil {
			return Decision{}, err
		}
		return Decision{Events: evs, State: func() (json.RawMessage, error) {
			after := fold(s, evs)
			b, err := json.Marshal(after)
			if err != nil {
				return nil, fmt.Errorf("encode snapshot: %w", err)
			}
			return b, nil
		}}, nil
	}
}

// restore rebuilds a state from a snapshot (when there is one) and the
// events after it. A stream of another type is an aggregate that does not
// exist: empty is returned as it is.
func restore[S folder[S]](empty S, streamType string, snap *Snapshot, tail []event.Envelope) (S, error) {
	s := empty
	switch {
	case snap != nil && snap.StreamType != streamType:
		return empty, nil
	case snap == nil && len(tail) > 0 && tail[0].StreamType != streamType:
		return empty, nil
	case snap != nil:
		if err := json.Unmarshal(snap.State, &s); err != nil {
			return empty, fmt.Errorf("decode %s snapshot at v%d: %w", streamType, snap.Version, err)
		}
	}
	ps, err := event.Payloads(tail)
	if err != nil {
		return empty, err
	}
	return fold(s, ps), nil
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
