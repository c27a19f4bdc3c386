package query

import (
	"context"

	"github.com/splitstream/splitstream/event"
)

// Guard decides who may read what (auth.Policy). Without one every read is
// open, as for internal callers and tests.
type Guard interface {
	// Permit is asked before a read: may the caller run op at all?
	Permit(ctx context.Context, op string) error
	// PermitOwner decides for a thing owner owns (an order's customer).
	PermitOwner(ctx context.Context, op, owner string) error
	// Scope is the customer whose things the caller may see, or all.
	Scope(ctx context.Context) (subject string, all bool)
}

// Tokens opens signed read-your-writes tokens (auth.ReadTokens): the
// points each names. An error wrapping event.ErrOldToken is a token of a
// version this build no longer reads.
type Tokens interface {
	Open(token string) ([]event.ReadPoint, error)
}

// Option configures a Service or a Hub.
type Option func(*options)

type options struct {
	guard  Guard
	tokens Tokens
}

// WithGuard makes every read and subscription ask g.
func WithGuard(g Guard) Option { return func(o *options) { o.guard = g } }

// WithTokens checks consistentWith tokens with t; without it they are the
// store's unsigned ones.
func WithTokens(t Tokens) Option { return func(o *options) { o.tokens = t } }

func (o options) permit(ctx context.Context, op string) error {
	if o.guard == nil {
		return nil
	}
	return o.guard.Permit(ctx, op)
}

// sees reports whether the caller may see a thing owner owns under op.
func (o options) sees(ctx context.Context, op, owner string) bool {
	return o.guard == nil || o.guard.PermitOwner(ctx, op, owner) == nil
}

func (o options) parseToken(token string) ([]event.ReadPoint, error) {
	if o.tokens == nil {
		c, err := event.ParseToken(token)
		return []event.ReadPoint{{Lane: event.WholeLog, Cursor: c}}, err
	}
	return o.tokens.Open(token)
}
