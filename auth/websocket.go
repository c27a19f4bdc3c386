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
	for k, val := range payload {
		if !strings.EqualFold(k, "authorization") {
			continue
		}
		s, ok := val.(string)
		if !ok {
			return ctx, time.Time{}, errors.New("forbidden: authorization must be a string")
		}
		c = v.Authorization(ctx, s)
		if c.Invalid != nil {
			return ctx, time.Time{}, errors.New("forbidden: invalid token: " + c.Invalid.Error())
		}
		break
	}
	return WithCaller(ctx, c), c.Expires, nil
}
