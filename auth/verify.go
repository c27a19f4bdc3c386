package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	lru "github.com/hashicorp/golang-lru/v2"
	"golang.org/x/time/rate"
)

// Leeway is the clock skew allowed on exp and nbf.
const Leeway = 30 * time.Second

// MaxTokenBytes bounds a presented token; longer ones are refused unparsed.
const MaxTokenBytes = 8 << 10

// maxSubjectBytes bounds sub, which is recorded with every event.
const maxSubjectBytes = 200

// Config says how tokens are verified.
type Config struct {
	// Secret verifies HS256 tokens (at least MinSecretBytes); nil: no HS256.
	Secret []byte
	// JWKSURL serves the keys of RS256 and ES256 tokens; "": none.
	JWKSURL string
	// Issuer and Audience, when set, must match iss and aud.
	Issuer, Audience string
	// Off makes every caller an admin without looking at tokens.
	Off bool
	// Now is the clock (time.Now when nil).
	Now func() time.Time
	// Client fetches the JWKS (http.DefaultClient with a timeout when nil).
	Client *http.Client
	Log    *slog.Logger
}

// internalActors are actors the system records for itself; no token may
// claim one, so an event's actor "saga" was written by the saga.
var internalActors = []string{"saga", "seed"}

// Verifier turns a bearer token into a Caller.
type Verifier struct {
	off    bool
	secret []byte
	jwks   keyfunc.Keyfunc
	parser *jwt.Parser
	now    func() time.Time
	// verified remembers tokens that passed, so a caller's next request
	// skips the signature check (an HMAC or RSA verify and a JSON decode
	// on every request, twice through the gateway).
	verified *lru.Cache[string, verified]
}

// Bounds of the verified-token cache: at most verifiedEntries tokens of up
// to verifiedTokenBytes each (about 8 MiB at worst), each kept until the
// token's exp and never longer than verifiedTTL, so a key dropped from the
// JWKS stops working at most verifiedTTL later than it would uncached.
const (
	verifiedEntries    = 4096
	verifiedTokenBytes = 2 << 10
	verifiedTTL        = 10 * time.Second
)

// verified is a cached verification: the caller, until when it holds.
type verified struct {
	caller Caller
	until  time.Time
}

// NewVerifier checks cfg and, with a JWKS URL, starts fetching the key set
// (refreshed hourly and on an unknown kid, at most every 10 s) until ctx ends.
func NewVerifier(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.Off {
		return &Verifier{off: true}, nil
	}
	if cfg.Secret == nil && cfg.JWKSURL == "" {
		return nil, errors.New("auth: neither SPLITSTREAM_JWT_SECRET nor SPLITSTREAM_JWKS_URL is set; " +
			"set one (or SPLITSTREAM_AUTH=off, on purpose, to make every caller an admin)")
	}
	if cfg.Secret != nil && len(cfg.Secret) < MinSecretBytes {
		return nil, fmt.Errorf("auth: SPLITSTREAM_JWT_SECRET must be at least %d bytes", MinSecretBytes)
	}
	v := &Verifier{secret: cfg.Secret, now: cfg.Now}
	if v.now == nil {
		v.now = time.Now
	}
	cache, err := lru.New[string, verified](verifiedEntries)
	if err != nil {
		return nil, fmt.Errorf("auth: token cache: %w", err)
	}
	v.verified = cache
	// Only the algorithms configured keys can check: alg "none", and an
	// HS256 token signed with a public key, fail before any key is chosen.
	var algs []string
	if cfg.Secret != nil {
		algs = append(algs, jwt.SigningMethodHS256.Alg())
	}
	if cfg.JWKSURL != "" {
		client := cfg.Client
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		log := cfg.Log
		if log == nil {
			log = slog.New(slog.DiscardHandler)
		}
		k, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{cfg.JWKSURL}, keyfunc.Override{
			Client:      client,
			HTTPTimeout: 10 * time.Second,
			// An unknown kid refreshes the set at most every 10 s, and a
			// request never waits for that limiter longer than a second:
			// tokens with made-up kids cannot hammer the identity provider.
			RefreshUnknownKID: rate.NewLimiter(rate.Every(10*time.Second), 1),
			RateLimitWaitMax:  time.Second,
			RefreshInterval:   time.Hour,
			RefreshErrorHandlerFunc: func(u string) func(context.Context, error) {
				return func(ctx context.Context, err error) {
					log.WarnContext(ctx, "cannot refresh the JWKS", "url", u, "err", err)
				}
			},
		})
		if err != nil {
			return nil, fmt.Errorf("auth: JWKS %s: %w", cfg.JWKSURL, err)
		}
		v.jwks = k
		algs = append(algs, jwt.SigningMethodRS256.Alg(), jwt.SigningMethodES256.Alg())
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(algs),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(Leeway),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	v.parser = jwt.NewParser(opts...)
	return v, nil
}

// Off reports whether access control is off (every caller an admin).
func (v *Verifier) Off() bool { return v.off }

type claims struct {
	jwt.RegisteredClaims
	Roles []string `json:"roles"`
}

// Verify checks a token (without "Bearer ") and returns its caller, or an
// invalid caller and the reason.
func (v *Verifier) Verify(ctx context.Context, token string) (Caller, error) {
	if v.off {
		return offCaller, nil
	}
	bad := func(err error) (Caller, error) { return Caller{Invalid: err}, err }
	if len(token) > MaxTokenBytes {
		return bad(errors.New("token too long"))
	}
	now := v.now()
	if hit, ok := v.verified.Get(token); ok {
		if now.Before(hit.until) {
			return hit.caller, nil
		}
		v.verified.Remove(token)
	}
	c, err := v.verify(ctx, token)
	if err != nil {
		return bad(err)
	}
	// Kept until exp at the latest (the leeway is left to a full check)
	// and never longer than verifiedTTL.
	if until := now.Add(verifiedTTL); len(token) <= verifiedTokenBytes {
		if c.Expires.Before(until) {
			until = c.Expires
		}
		if now.Before(until) {
			v.verified.Add(token, verified{caller: c, until: until})
		}
	}
	return c, nil
}

// verify checks a token's signature and claims.
func (v *Verifier) verify(ctx context.Context, token string) (Caller, error) {
	bad := func(err error) (Caller, error) { return Caller{}, err }
	var cl claims
	_, err := v.parser.ParseWithClaims(token, &cl, func(t *jwt.Token) (any, error) {
		// The method was checked against the allowed list already; the key
		// type follows from it, so no alg can be checked with another's key.
		switch t.Method.(type) {
		case *jwt.SigningMethodHMAC:
			if v.secret == nil {
				return nil, errors.New("HS256 is not accepted")
			}
			return v.secret, nil
		case *jwt.SigningMethodRSA, *jwt.SigningMethodECDSA:
			if v.jwks == nil {
				return nil, errors.New("no JWKS configured")
			}
			return v.jwks.KeyfuncCtx(ctx)(t)
		}
		return nil, fmt.Errorf("algorithm %s is not accepted", t.Method.Alg())
	})
	if err != nil {
		return bad(err)
	}
	switch {
	case cl.Subject == "":
		return bad(errors.New("token has no sub"))
	case len(cl.Subject) > maxSubjectBytes:
		return bad(errors.New("token sub too long"))
	case slices.Contains(internalActors, cl.Subject) || strings.HasPrefix(cl.Subject, "system:"):
		return bad(fmt.Errorf("sub %q is reserved for the system", cl.Subject))
	}
	c := Caller{Subject: cl.Subject, Admin: slices.Contains(cl.Roles, RoleAdmin)}
	if cl.ExpiresAt != nil {
		c.Expires = cl.ExpiresAt.Time
	}
	return c, nil
}

// offCaller is everyone when access control is off.
var offCaller = Caller{Subject: "anonymous-admin", Admin: true}

// Authorization verifies an Authorization header value ("Bearer <jwt>", the
// scheme in any case); an empty value is an anonymous caller.
func (v *Verifier) Authorization(ctx context.Context, header string) Caller {
	if v.off {
		return offCaller
	}
	header = strings.TrimSpace(header)
	if header == "" {
		return Caller{}
	}
	scheme, token, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return Caller{Invalid: errors.New(`authorization is not "Bearer <token>"`)}
	}
	c, _ := v.Verify(ctx, strings.TrimSpace(token))
	return c
}
