// Package console is the operators' console on the admin listener: a page
// at GET / (its assets embedded in the binary, nothing from another host)
// and the small JSON API under /api/ that it reads. The API asks for an
// admin's JWT (Authorization: Bearer) on every request; the page keeps the
// token in memory only. Mutations are POSTs with a JSON body and the
// Bearer header, never a cookie, so another site's form cannot make one.
//
// The console reads what the process already knows: each role's readiness
// checks, the gauges the relay, projector and saga register on the
// process's registry, the dead-letter store, and a rebuild's progress. It
// imports no driver: its sources are interfaces wired in cmd/splitstream.
package console

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/ops"
)

// Role is one role of this process and the checks of its readiness.
type Role struct {
	Name   string
	Checks []ops.Check
}

// Doc names one parked document: its kind and id.
type Doc struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
}

// DeadDocument is one parked document and why its letters are parked.
type DeadDocument struct {
	Doc
	Letters int            `json:"letters"`
	Reasons map[string]int `json:"reasons"`
	First   time.Time      `json:"firstParked"`
}

// DeadLetters lists the parked documents and replays or drops one: the
// same operations as `splitstream dead list|replay|drop`.
type DeadLetters interface {
	Documents(ctx context.Context, limit int) ([]DeadDocument, error)
	// Replay applies the document's letters again; those that apply are
	// removed, the others stay with their new reason.
	Replay(ctx context.Context, d Doc) (applied, still int, err error)
	// Drop removes the document's letters unapplied.
	Drop(ctx context.Context, d Doc) (int, error)
}

// RebuildStatus is a rebuild's progress as its process reports it.
type RebuildStatus struct {
	Models  []string  `json:"models"`
	Phase   string    `json:"phase"` // "replaying", "swapping", "catching up", "done", "failed"
	Done    int64     `json:"done"`  // events replayed
	Total   int64     `json:"total"` // events in the log when it started
	Started time.Time `json:"started"`
	Error   string    `json:"error,omitempty"`
}

// Rebuilds reports the rebuild this process runs, if any.
type Rebuilds interface {
	Rebuild() (RebuildStatus, bool)
}

// Config wires a console. Gatherer and Verifier are required; a nil
// DeadLetters or Rebuilds leaves its section out.
type Config struct {
	Roles       []Role
	Gatherer    prometheus.Gatherer
	DeadLetters DeadLetters
	Rebuilds    Rebuilds
	// Verifier checks the admin's token; nil with VerifierErr set means
	// identity is not configured, and the API answers 503 saying so.
	Verifier    *auth.Verifier
	VerifierErr error
	Version     string
	Log         *slog.Logger
}

// Limits on input.
const (
	MaxPage      = 500 // dead-letter documents per page
	DefaultPage  = 100
	MaxKindBytes = 64
	MaxIDBytes   = 256
	maxBodyBytes = 4 << 10
)

// Console serves the page and its API.
type Console struct {
	cfg Config
}

// New checks cfg.
func New(cfg Config) (*Console, error) {
	switch {
	case cfg.Gatherer == nil:
		return nil, errors.New("console: nil gatherer")
	case cfg.Verifier == nil && cfg.VerifierErr == nil:
		return nil, errors.New("console: nil verifier and no reason")
	case cfg.Log == nil:
		return nil, errors.New("console: nil logger")
	}
	return &Console{cfg: cfg}, nil
}

// Mount adds the page (GET /{$}, its assets under /console/) and the API
// (/api/...) to mux.
func (c *Console) Mount(mux *http.ServeMux) {
	page := pageHandler()
	mux.Handle("GET /{$}", page)
	mux.Handle("GET /console/", page)
	mux.Handle("GET /api/status", c.admin(c.status))
	mux.Handle("GET /api/dead-letters", c.admin(c.deadList))
	mux.Handle("POST /api/dead-letters/replay", c.admin(c.deadReplay))
	mux.Handle("POST /api/dead-letters/drop", c.admin(c.deadDrop))
}

// admin lets only an admin's valid token through: 401 with none or an
// invalid one, 403 with a customer's.
func (c *Console) admin(next http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		if c.cfg.Verifier == nil {
			apiError(w, http.StatusServiceUnavailable, splitstream.EInternal,
				"the console needs identity: set SPLITSTREAM_JWT_SECRET or SPLITSTREAM_JWKS_URL")
			return
		}
		caller := c.cfg.Verifier.Authorization(r.Context(), r.Header.Get("Authorization"))
		switch {
		case caller.Invalid != nil:
			h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			apiError(w, http.StatusUnauthorized, splitstream.EUnauthenticated, "invalid token: "+caller.Invalid.Error())
		case caller.Anonymous():
			h.Set("WWW-Authenticate", "Bearer")
			apiError(w, http.StatusUnauthorized, splitstream.EUnauthenticated, "an admin's token is needed (Authorization: Bearer <jwt>)")
		case !caller.Admin:
			apiError(w, http.StatusForbidden, splitstream.EForbidden, "the console is for admins only")
		default:
			next(w, r.WithContext(auth.WithCaller(r.Context(), caller)))
		}
	})
}

func apiError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// internal logs err and tells the client only that something failed.
func (c *Console) internal(w http.ResponseWriter, r *http.Request, what string, err error) {
	c.cfg.Log.ErrorContext(r.Context(), "console: "+what, "err", err)
	apiError(w, http.StatusInternalServerError, splitstream.EInternal, what+" failed; the process log has the reason")
}

// pageSize reads ?limit= within 1..MaxPage.
func pageSize(r *http.Request) (int, error) {
	v := r.URL.Query().Get("limit")
	if v == "" {
		return DefaultPage, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxPage {
		return 0, errors.New("limit must be a whole number from 1 to " + strconv.Itoa(MaxPage))
	}
	return n, nil
}
