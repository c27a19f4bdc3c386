package auth

import (
	"context"
	"time"
)

// Caller is who makes a request: anonymous (no token), a customer or an
// admin (a valid token), or someone whose token failed verification. An
// invalid caller is never treated as anonymous.
type Caller struct {
	// Subject is the token's sub: a customer's id, and the actor recorded
	// with every event the caller causes. Empty for anonymous callers.
	Subject string
	Admin   bool
	// Expires is the token's exp (zero for anonymous callers and when
	// access control is off).
	Expires time.Time
	// Invalid says why the presented token was refused; nil when it was
	// fine or absent.
	Invalid error
}

// Anonymous reports whether the caller presented no token.
func (c Caller) Anonymous() bool { return c.Invalid == nil && c.Subject == "" && !c.Admin }

type callerKey struct{}

// WithCaller returns ctx carrying c.
func WithCaller(ctx context.Context, c Caller) context.Context {
	return context.WithValue(ctx, callerKey{}, c)
}

// CallerFrom returns the caller in ctx; anonymous when none was set.
func CallerFrom(ctx context.Context) Caller {
	c, _ := ctx.Value(callerKey{}).(Caller)
	return c
}
