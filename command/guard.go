package command

import (
	"context"
	"fmt"

	"github.com/splitstream/splitstream/event"
)

// Guard decides who may run which command (auth.Policy). The GraphQL
// service runs with one; the saga's service runs without, as the internal
// actor it is, unreachable by clients.
type Guard interface {
	// Permit is asked before anything loads: may the caller run mutation?
	Permit(ctx context.Context, mutation string) error
	// PermitOwner is asked once the aggregate's owner is known: the
	// customer of an order, the actor who added a review ("" when none).
	PermitOwner(ctx context.Context, mutation, owner string) error
	// Actor is the identity recorded with the caller's events.
	Actor(ctx context.Context) string
}

// Tokens seals the read-your-writes tokens the service returns
// (auth.ReadTokens); without it they are the store's unsigned ones.
type Tokens interface {
	Seal(points []event.ReadPoint) string
}

// LaneOf is the projector lane an event is routed to (query.LaneOfEvent
// with the deployment's number of lanes).
type LaneOf func(e event.Envelope, pl event.Payload) int

// WithLanes makes the signed tokens name the lane of the command's events,
// so a read waits for that lane alone; without it they wait for the whole
// log's watermark (a projector without lanes).
func WithLanes(of LaneOf) Option {
	return func(s *Service) error { s.laneOf = of; return nil }
}

// WithGuard makes every command ask g, and record g's actor.
func WithGuard(g Guard) Option {
	return func(s *Service) error { s.guard = g; return nil }
}

// WithTokens signs the returned read-your-writes tokens with t.
func WithTokens(t Tokens) Option {
	return func(s *Service) error { s.tokens = t; return nil }
}

// admit asks the guard whether the caller may run mutation and makes the
// caller the recorded actor; without a guard m's actor stands.
func (s *Service) admit(ctx context.Context, mutation Name, m *Meta) error {
	if s.guard == nil {
		return nil
	}
	if err := s.guard.Permit(ctx, string(mutation)); err != nil {
		return err
	}
	m.Actor = s.guard.Actor(ctx)
	return nil
}

// owns asks the guard whether the caller may act on what owner owns.
func (s *Service) owns(ctx context.Context, mutation Name, owner string) error {
	if s.guard == nil {
		return nil
	}
	return s.guard.PermitOwner(ctx, string(mutation), owner)
}

// reviewAuthor is who added a review: the actor of its first event.
func reviewAuthor(h []event.Envelope) string {
	if len(h) == 0 {
		return ""
	}
	return h[0].Metadata.Actor
}

// seal turns the store's token into a signed one, naming the lane of the
// command's events: every event of a command is of one stream, so of one
// document family and one lane. first is the first new event, nil when the
// store answered a repeated command id from its record; then the stream's
// first event says the family (a review's product).
func (s *Service) seal(ctx context.Context, st Stream, first event.Payload, res Result) (Result, error) {
	if s.tokens == nil || res.Token == "" {
		return res, nil
	}
	c, err := event.ParseToken(res.Token)
	if err != nil {
		return Result{}, err
	}
	lane := event.WholeLog
	if s.laneOf != nil {
		if lane, err = s.laneOfStream(ctx, st, first); err != nil {
			return Result{}, err
		}
	}
	res.Token = s.tokens.Seal([]event.ReadPoint{{Lane: lane, Cursor: c}})
	return res, nil
}

// laneOfStream is the lane of st's events: from first when known, else
// from the stream's first stored event.
func (s *Service) laneOfStream(ctx context.Context, st Stream, first event.Payload) (int, error) {
	e := event.Envelope{StreamType: st.Type, StreamID: st.ID}
	if first == nil {
		_, h, err := s.store.LoadSince(ctx, st.ID, -1) // no snapshot has fold version -1: from the start
		if err != nil {
			return 0, fmt.Errorf("lane of %s %s: %w", st.Type, st.ID, err)
		}
		if len(h) > 0 {
			if first, err = h[0].Payload(); err != nil {
				return 0, fmt.Errorf("lane of %s %s: %w", st.Type, st.ID, err)
			}
		}
	}
	return s.laneOf(e, first), nil
}
