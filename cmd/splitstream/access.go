package main

import (
	"context"
	"crypto/rand"
	"errors"
	"net/http"

	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/ops"
)

// access is identity and access for the API roles: who the caller is, the
// signed read-your-writes tokens, and the per-caller rate limits.
type access struct {
	verifier *auth.Verifier
	tokens   *auth.ReadTokens
	rate     float64
}

// access builds the verifier and token keys once per process. With
// neither a JWT secret nor a JWKS the API roles refuse to start, unless
// SPLITSTREAM_AUTH=off says on purpose that everyone is an admin.
func (a *app) access(ctx context.Context) (*access, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.acc != nil {
		return a.acc, nil
	}
	c := a.cfg
	var secret []byte
	if c.JWTSecret != "" {
		secret = []byte(c.JWTSecret)
	}
	v, err := auth.NewVerifier(ctx, auth.Config{
		Secret: secret, JWKSURL: c.JWKSURL, Issuer: c.JWTIssuer, Audience: c.JWTAudience,
		Off: c.AuthOff, Log: a.log,
	})
	if err != nil {
		return nil, err
	}
	tokenSecret := []byte(c.TokenSecret)
	switch {
	case c.AuthOff:
		a.log.Warn("SPLITSTREAM_AUTH=off: ACCESS CONTROL IS OFF. Every caller is an admin and may change anything. Never run a public instance like this.")
		if c.TokenSecret == "" {
			tokenSecret = make([]byte, 32)
			_, _ = rand.Read(tokenSecret)
			a.log.Warn("SPLITSTREAM_TOKEN_SECRET is not set: read-your-writes tokens are signed with a key of this process only")
		}
	case c.TokenSecret == "":
		return nil, errors.New("SPLITSTREAM_TOKEN_SECRET is not set: the command and query services sign read-your-writes tokens with it " +
			"(at least 32 bytes, the same on every instance)")
	}
	tokens, err := auth.NewReadTokens(tokenSecret)
	if err != nil {
		return nil, err
	}
	a.acc = &access{verifier: v, tokens: tokens, rate: c.RateLimit}
	return a.acc, nil
}

// middleware verifies callers and applies a rate limit of the role's own.
func (acc *access) middleware(next http.Handler) http.Handler {
	return acc.verifier.Middleware(auth.NewLimits(acc.rate, auth.MaxTrackedCallers), next)
}

// checks says in /readyz when access control is off.
func (acc *access) checks() []ops.Check {
	if !acc.verifier.Off() {
		return nil
	}
	return []ops.Check{{Name: "auth (SPLITSTREAM_AUTH=off: every caller is an admin)", Fn: func(context.Context) error { return nil }}}
}
