package auth

import (
	"context"
	"strings"

	"github.com/splitstream/splitstream"
)

// rule is who may run one operation.
type rule int

const (
	// public: anyone, anonymous callers included.
	public rule = iota + 1
	// customer: any signed-in caller.
	customer
	// own: a customer for its own things only; another's is FORBIDDEN
	// (the thing is public anyway, as a review is, or the input names it).
	own
	// ownHidden: a customer for its own things only; another's reads as
	// NOT_FOUND, so its existence does not leak (orders, customers).
	ownHidden
	// admin: admins only.
	admin
)

// rules is the whole policy: every GraphQL operation of both schemas, by
// field name. An operation not listed is refused to everyone, admins
// included, so a new field stays closed until someone decides.
var rules = map[string]rule{
	// command service
	"version":                  public,
	"createProduct":            admin,
	"renameProduct":            admin,
	"changeProductDescription": admin,
	"changeProductPrice":       admin,
	"restockProduct":           admin,
	"discontinueProduct":       admin,
	"addReview":                customer,
	"removeReview":             own,
	"placeOrder":               own,
	"cancelOrder":              ownHidden,
	"registerCustomer":         own,
	"renameCustomer":           own,
	"changeCustomerAddress":    own,
	// query service
	"product":        public,
	"products":       public,
	"reviews":        public,
	"productAt":      public,
	"productHistory": admin,
	"order":          ownHidden,
	"orders":         own,
	"customer":       ownHidden,
	// subscriptions
	"productChanged":  public,
	"productsChanged": public,
	"reviewAdded":     public,
	"orderChanged":    ownHidden,
	"customerChanged": ownHidden,
}

// Operations lists every operation the policy knows, for tests and docs.
func Operations() []string {
	out := make([]string, 0, len(rules))
	for op := range rules {
		out = append(out, op)
	}
	return out
}

func unauthenticated(msg string) error {
	return &splitstream.Error{Code: splitstream.EUnauthenticated, Message: msg, CurrentVersion: -1}
}

func forbidden(msg string) error {
	return &splitstream.Error{Code: splitstream.EForbidden, Message: msg, CurrentVersion: -1}
}

// Authorize decides whether c may run op at all. For operations on owned
// things it only checks that c is signed in; AuthorizeOwner decides once
// the owner is known.
func Authorize(c Caller, op string) error {
	if c.Invalid != nil {
		return unauthenticated("invalid token: " + c.Invalid.Error())
	}
	r, ok := rules[op]
	switch {
	case !ok:
		return forbidden(op + " is not open to any caller")
	case r == public || c.Admin:
		return nil
	case c.Subject == "":
		return unauthenticated(op + " needs a token (Authorization: Bearer <jwt>)")
	case r == admin:
		return forbidden(op + " is for admins")
	}
	return nil
}

// AuthorizeOwner decides whether c may run op on a thing owned by owner
// (a customer id; "" when the thing has no recorded owner or none exists).
func AuthorizeOwner(c Caller, op, owner string) error {
	if err := Authorize(c, op); err != nil {
		return err
	}
	if c.Admin || c.Subject == owner && owner != "" {
		return nil
	}
	switch rules[op] {
	case own:
		return forbidden(op + " is only for the caller's own")
	case ownHidden:
		return splitstream.NotFound("no such %s", hidden(op))
	}
	return nil
}

// hidden names what an ownHidden operation is about, for NOT_FOUND.
func hidden(op string) string {
	if strings.Contains(strings.ToLower(op), "customer") {
		return "customer"
	}
	return "order"
}

// Owns reports whether c may see a thing owned by owner under op's rules:
// what filters lists and subscriptions.
func Owns(c Caller, op, owner string) bool { return AuthorizeOwner(c, op, owner) == nil }

// Policy applies the rules to the caller in a request's context. It is the
// guard both services take (command.Guard, query.Guard).
type Policy struct{}

// Permit is Authorize for the caller in ctx.
func (Policy) Permit(ctx context.Context, op string) error { return Authorize(CallerFrom(ctx), op) }

// PermitOwner is AuthorizeOwner for the caller in ctx.
func (Policy) PermitOwner(ctx context.Context, op, owner string) error {
	return AuthorizeOwner(CallerFrom(ctx), op, owner)
}

// Scope is the customer whose things the caller in ctx may see, and
// whether it may see everyone's (an admin).
func (Policy) Scope(ctx context.Context) (subject string, all bool) {
	c := CallerFrom(ctx)
	return c.Subject, c.Admin
}

// Actor is the identity recorded with the caller's events: the token's sub.
func (Policy) Actor(ctx context.Context) string { return CallerFrom(ctx).Subject }
