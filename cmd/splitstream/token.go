package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"
	"unicode"

	"github.com/splitstream/splitstream/auth"
)

const (
	// maxTokenTTL bounds --ttl: a forgotten token should not work for ever.
	maxTokenTTL = 30 * 24 * time.Hour
	// maxSubjectBytes bounds --sub; a customer id is far shorter.
	maxSubjectBytes = 256
)

// tokenFlags: splitstream token --sub ID [--admin] [--ttl 1h]. It prints one
// HS256 token signed with SPLITSTREAM_JWT_SECRET, and nothing else on
// stdout, so `TOKEN=$(splitstream token --sub customer-1)` works.
func tokenFlags(fs *flag.FlagSet) func(context.Context, *app) error {
	sub := fs.String("sub", "", "the token's subject: a customer id, or any name for an admin (required)")
	admin := fs.Bool("admin", false, "give the token the admin role (otherwise it is a customer's)")
	ttl := fs.Duration("ttl", time.Hour, "how long the token is valid (at most 720h)")
	return func(_ context.Context, a *app) error {
		tok, err := mintToken(a.cfg, *sub, *admin, *ttl, time.Now())
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(a.out, tok)
		return err
	}
}

// mintToken checks the request and the configuration, then mints.
func mintToken(cfg Config, sub string, admin bool, ttl time.Duration, now time.Time) (string, error) {
	switch {
	case sub == "":
		return "", errors.New("--sub is required (a customer id such as customer-1, or a name for an admin)")
	case len(sub) > maxSubjectBytes:
		return "", fmt.Errorf("--sub is longer than %d bytes", maxSubjectBytes)
	case !printable(sub):
		return "", errors.New("--sub may hold no spaces or control characters")
	case ttl <= 0 || ttl > maxTokenTTL:
		return "", fmt.Errorf("--ttl must be positive and at most %s", maxTokenTTL)
	}
	if cfg.JWTSecret == "" {
		if cfg.JWKSURL != "" {
			return "", errors.New("tokens for SPLITSTREAM_JWKS_URL come from its identity provider; splitstream token mints only with SPLITSTREAM_JWT_SECRET")
		}
		return "", errors.New("SPLITSTREAM_JWT_SECRET is not set (make run keeps one in .cache/run/secrets.env)")
	}
	if len(cfg.JWTSecret) < auth.MinSecretBytes {
		return "", fmt.Errorf("SPLITSTREAM_JWT_SECRET is shorter than %d bytes", auth.MinSecretBytes)
	}
	var roles []string
	if admin {
		roles = []string{auth.RoleAdmin}
	}
	return auth.Mint([]byte(cfg.JWTSecret), sub, roles, ttl, now)
}

func printable(s string) bool {
	for _, r := range s {
		if unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}
