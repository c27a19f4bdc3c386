package command

import "context"

// Input is one mutation's input as the write schema delivers it (gqlgen
// binds each schema input type to the type of the same name in this
// package, by autobind). It knows which command it is and which service
// method runs it, so the write schema's resolvers are generated: each one
// is a call to Dispatch. A new mutation adds its input type beside its
// command, in the aggregate's file; business rules stay in decide.
type Input interface {
	// runner translates the input into its command and the service
	// method that runs it. It is pure: the aggregate files hold it.
	runner() runner
	// meta completes m with the input's command id and expected version.
	meta(m Meta) Meta
}

// Dispatch runs in's command with m, completed by in's command id and
// expected version.
func (s *Service) Dispatch(ctx context.Context, m Meta, in Input) (Result, error) {
	return in.runner()(ctx, s, in.meta(m))
}

// runner is one service method with its command (and aggregate id) bound.
type runner func(ctx context.Context, s *Service, m Meta) (Result, error)

func createProduct(c CreateProduct) runner {
	return func(ctx context.Context, s *Service, m Meta) (Result, error) { return s.CreateProduct(ctx, m, c) }
}

func changeProduct(id string, c ProductCommand) runner {
	return func(ctx context.Context, s *Service, m Meta) (Result, error) { return s.ChangeProduct(ctx, id, m, c) }
}

func addReview(c AddReview) runner {
	return func(ctx context.Context, s *Service, m Meta) (Result, error) { return s.AddReview(ctx, m, c) }
}

func removeReview(id string) runner {
	return func(ctx context.Context, s *Service, m Meta) (Result, error) { return s.RemoveReview(ctx, id, m) }
}

func placeOrder(c PlaceOrder) runner {
	return func(ctx context.Context, s *Service, m Meta) (Result, error) { return s.PlaceOrder(ctx, m, c) }
}

func changeOrder(id string, c OrderCommand) runner {
	return func(ctx context.Context, s *Service, m Meta) (Result, error) { return s.ChangeOrder(ctx, id, m, c) }
}

// Once is what every input carries: the client's command id, which makes
// the mutation idempotent.
type Once struct {
	CommandID *string
}

func (o Once) meta(m Meta) Meta {
	m.CommandID = deref(o.CommandID)
	return m
}

// Versioned is what an input that changes an existing aggregate carries:
// a command id and the version the client last saw.
type Versioned struct {
	CommandID       *string
	ExpectedVersion *int
}

func (v Versioned) meta(m Meta) Meta {
	m.CommandID = deref(v.CommandID)
	m.ExpectedVersion = v.ExpectedVersion
	return m
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
