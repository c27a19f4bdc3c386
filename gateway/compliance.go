package gateway

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// requestErrors makes the gateway's answers to requests that never ran
// (unparsable JSON, a document that does not parse or validate, variables
// that do not coerce) what the GraphQL over HTTP spec asks, where gqlgen
// differs: no "data" entry at all, and under application/json status 200
// rather than gqlgen's 422 (under application/graphql-response+json it
// stays 400). The graphql-http package's audit passes with no warnings.
// WebSocket upgrades and SSE streams go straight through.
func requestErrors(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" || (transport.SSE{}).Supports(r) {
			next.ServeHTTP(w, r)
			return
		}
		rw := &requestErrorWriter{ResponseWriter: w}
		next.ServeHTTP(rw, r)
		rw.finish()
	})
}

// requestErrorWriter holds back a 400 or 422 answer to rewrite it; any
// other answer passes straight through.
type requestErrorWriter struct {
	http.ResponseWriter
	status int
	held   *bytes.Buffer // bounded by the request: an error list, at most echoing the body
}

func (w *requestErrorWriter) WriteHeader(code int) {
	if code == http.StatusBadRequest || code == http.StatusUnprocessableEntity {
		w.status, w.held = code, new(bytes.Buffer)
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *requestErrorWriter) Write(p []byte) (int, error) {
	if w.held != nil {
		return w.held.Write(p)
	}
	return w.ResponseWriter.Write(p)
}

func (w *requestErrorWriter) finish() {
	if w.held == nil {
		return
	}
	status, body := w.status, w.held.Bytes()
	if status == http.StatusUnprocessableEntity && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") {
		status = http.StatusOK
	}
	var res map[string]json.RawMessage
	if json.Unmarshal(body, &res) == nil {
		delete(res, "data")
		if b, err := json.Marshal(res); err == nil {
			body = b
		}
	}
	w.Header().Del("Content-Length")
	w.ResponseWriter.WriteHeader(status)
	_, _ = w.ResponseWriter.Write(body)
}
