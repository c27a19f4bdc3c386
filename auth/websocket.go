package auth

import (
	"context"
	"errors"
	"strings"
	"time"
)

// ConnectionInit decides a WebSocket's caller: the connection_init
// payload's "authorization" ("Bearer <jwt>", the key in any case) if it has
// one, else the upgrade request's header, which Middleware put in ctx. It
// returns ctx with the caller and when its token expires; an invalid token,
// in either place, is an error (the socket closes with 4403).
func (v *Verifier) ConnectionInit(ctx context.Context, payload map[string]any) (context.Context, time.Time, error) {
	c := CallerFrom(ctx)
	if c.Invalid != nil {
		return ctx, time.Time{}, errors.New("forbidden: invalid token: " + c.Invalid.Error())
	}
	if s, present, ok := InitAuthorization(payload); present {
		if !ok {
			return ctx, time.Time{}, errors.New("forbidden: authorization must be a string")
		}
		c = v.Authorization(ctx, s)
		if c.Invalid != nil {
			return ctx, time.Time{}, errors.New("forbidden: invalid token: " + c.Invalid.Error())
		}
	}
	return WithCaller(ctx, c), c.Expires, nil
}

// InitAuthorization is the connection_init payload's "authorization"
// entry, its key in any case (the contract): present says there is one, ok
// that it is a string.
func InitAuthorization(payload map[string]any) (s string, present, ok bool) {
	for k, val := range payload {
		if strings.EqualFold(k, "authorization") {
			s, ok = val.(string)
			return s, true, ok
		}
	}
	return "", false, false
}
