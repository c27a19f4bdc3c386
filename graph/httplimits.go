package graph

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql/handler/transport"
)

// StreamLimits bound what an HTTP request may hold. A request is one of
// three kinds: a WebSocket upgrade (its deadlines are the WebSocket
// transport's business once hijacked), an SSE stream (long-lived, so the
// server's read and write timeouts are lifted and each write gets its own
// deadline instead), or an ordinary request (bounded by Timeout, and by
// the server's read and write timeouts).
type StreamLimits struct {
	// Timeout ends an ordinary request's context.
	Timeout time.Duration
	// WriteTimeout is how long one write to an SSE stream may block; a
	// client that stops reading is dropped after it.
	WriteTimeout time.Duration
	// MaxStreams caps the SSE streams this handler holds at once; more get
	// 429 RATE_LIMITED. Zero is for a handler without SSE (the command
	// service): every request is then an ordinary one.
	MaxStreams int
}

// Limit applies o to next. Put it inside Middleware, so an SSE request's
// body has been read (under the server's read timeout) before the read
// deadline is lifted.
func Limit(o StreamLimits, next http.Handler) http.Handler {
	streams := make(chan struct{}, max(o.MaxStreams, 0)) // a semaphore
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Header.Get("Upgrade") != "":
			next.ServeHTTP(w, r)
		case o.MaxStreams > 0 && transport.SSE{}.Supports(r):
			select {
			case streams <- struct{}{}:
				defer func() { <-streams }()
			default:
				w.Header().Set("Retry-After", "5")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusTooManyRequests)
				_, _ = w.Write([]byte(`{"errors":[{"message":"too many event streams on this instance","extensions":{"code":"RATE_LIMITED"}}]}`))
				return
			}
			// Go's server lifts the read deadline itself once the body is
			// read; the write deadline it set at the start of the request
			// is replaced by one per write (streamWriter).
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Time{})
			_ = rc.SetWriteDeadline(time.Time{})
			ctx, cancel := context.WithCancel(r.Context())
			defer cancel()
			next.ServeHTTP(&streamWriter{ResponseWriter: w, rc: rc, timeout: o.WriteTimeout, fail: cancel}, r.WithContext(ctx))
		case o.Timeout > 0:
			ctx, cancel := context.WithTimeout(r.Context(), o.Timeout)
			defer cancel()
			next.ServeHTTP(w, r.WithContext(ctx))
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// streamWriter gives each write of a stream its own deadline and ends the
// stream at the first failed write.
type streamWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
	fail    context.CancelFunc
}

func (s *streamWriter) arm() {
	if s.timeout > 0 {
		_ = s.rc.SetWriteDeadline(time.Now().Add(s.timeout))
	}
}

func (s *streamWriter) Write(p []byte) (int, error) {
	s.arm()
	n, err := s.ResponseWriter.Write(p)
	if err != nil {
		s.fail()
	}
	return n, err
}

// Flush is what SSE needs (it asserts http.Flusher).
func (s *streamWriter) Flush() {
	s.arm()
	if err := s.rc.Flush(); err != nil {
		s.fail()
	}
}

// Unwrap lets http.ResponseController reach the connection.
func (s *streamWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// readFailed answers a request whose body could not be read: 408 when the
// server's read timeout cut a slow sender, 400 otherwise.
func readFailed(w http.ResponseWriter, err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusRequestTimeout)
		_, _ = w.Write([]byte(`{"errors":[{"message":"request body not received in time","extensions":{"code":"BAD_USER_INPUT"}}]}`))
		return
	}
	http.Error(w, "cannot read request body", http.StatusBadRequest)
}
