package auth

import (
	"context"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/splitstream/splitstream"
)

// Middleware puts the request's caller, from its Authorization header, in
// the request context, and applies the rate limits (nil: none). A request
// with an invalid token gets 401 with code UNAUTHENTICATED before anything
// else runs; a WebSocket upgrade goes on, so the socket can be closed with
// 4403 as the subscription protocols expect. An SSE stream ends when its
// token expires.
func (v *Verifier) Middleware(limits *Limits, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := v.Authorization(r.Context(), r.Header.Get("Authorization"))
		if c.Invalid != nil && !isWebSocket(r) {
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, splitstream.EUnauthenticated, "invalid token: "+c.Invalid.Error())
			return
		}
		if limits != nil && !c.Admin {
			if ok, wait := limits.Allow(limitKey(c, r.RemoteAddr), time.Now()); !ok {
				w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(wait.Seconds()))))
				writeError(w, http.StatusTooManyRequests, splitstream.ERateLimited, "too many requests; retry after the Retry-After header's seconds")
				return
			}
		}
		ctx := WithCaller(r.Context(), c)
		if !c.Expires.IsZero() && strings.Contains(r.Header.Get("Accept"), "text/event-stream") {
			var cancel context.CancelFunc
			ctx, cancel = context.WithDeadline(ctx, c.Expires)
			defer cancel()
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func isWebSocket(r *http.Request) bool {
	return strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []any{map[string]any{
		"message": msg, "extensions": map[string]any{"code": code},
	}}})
}
