// Package auth owns identity and access: who the caller is (a verified JWT),
// what each role may do (the policy), and how fast a caller may go (rate
// limits). Both GraphQL services use it; nothing else decides access.
package auth

import (
	"errors"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// RoleAdmin in a token's roles claim makes the caller an admin.
const RoleAdmin = "admin"

// MinSecretBytes is the shortest HS256 secret accepted (the contract's 32 bytes).
const MinSecretBytes = 32

// Mint returns an HS256 token for sub, valid for ttl from now, with roles.
// It is what `splitstream token`, make run and the tests use.
func Mint(secret []byte, sub string, roles []string, ttl time.Duration, now time.Time) (string, error) {
	if len(secret) < MinSecretBytes {
		return "", errors.New("auth: secret shorter than 32 bytes")
	}
	if sub == "" || ttl <= 0 {
		return "", errors.New("auth: a token needs a subject and a positive lifetime")
	}
	claims := jwt.MapClaims{
		"sub": sub,
		"iat": now.Unix(),
		"exp": now.Add(ttl).Unix(),
	}
	if len(roles) > 0 {
		claims["roles"] = roles
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(secret)
}
