// Package ops owns what every listener serves besides its API: liveness,
// readiness with the name and reason of a failing dependency, Prometheus
// metrics, and graceful shutdown.
package ops

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/net/netutil"
)

// Check is one dependency a role needs to do its work.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// Mux returns a mux with /healthz, /readyz and /metrics for an operator's
// listener (the admin listener, on loopback by default): a failing check is
// shown with its full reason, hosts and addresses included. Add the role's
// own routes to it.
func Mux(checks []Check, gatherer prometheus.Gatherer) *http.ServeMux {
	return mux(checks, gatherer, func(_ string, err error) string {
		if err == nil {
			return "ok"
		}
		return err.Error()
	})
}

// PublicMux is Mux for a listener anyone may reach (the API listeners):
// /readyz names a failing dependency with a generic reason from a fixed list
// (PublicReason), never an error's own text, which carries host names and
// addresses. The full reason goes to log, once each time it changes.
func PublicMux(checks []Check, gatherer prometheus.Gatherer, log *slog.Logger) *http.ServeMux {
	var (
		mu   sync.Mutex
		last = map[string]string{}
	)
	return mux(checks, gatherer, func(name string, err error) string {
		detail := "ok"
		if err != nil {
			detail = err.Error()
		}
		mu.Lock()
		before := last[name]
		last[name] = detail
		mu.Unlock()
		switch {
		case before == detail:
		case err != nil:
			log.Warn("readiness check failed", "check", name, "err", detail)
		case before != "":
			log.Info("readiness check ok again", "check", name)
		}
		if err == nil {
			return "ok"
		}
		return PublicReason(err)
	})
}

// mux serves the probes; show turns a check's outcome (nil: passed) into
// what /readyz says, "ok" for a pass.
func mux(checks []Check, gatherer prometheus.Gatherer, show func(name string, err error) string) *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		status, code := "ok", http.StatusOK
		results := map[string]string{}
		for name, err := range run(ctx, checks) {
			var note Note
			if errors.As(err, &note) {
				results[name] = "ok: " + string(note)
				continue
			}
			if err != nil {
				status, code = "unavailable", http.StatusServiceUnavailable
			}
			results[name] = show(name, err)
			if results[name] == "ok" && err != nil {
				results[name] = "failed" // never let a failure read as a pass
			}
		}
		writeJSON(w, code, map[string]any{"status": status, "checks": results})
	})
	m.Handle("GET /metrics", promhttp.HandlerFor(gatherer, promhttp.HandlerOpts{}))
	return m
}

// PublicReason says why a dependency failed in words safe for anyone to read:
// one of a fixed list, so no host name, address, URL or server message can
// pass through, whatever the error holds.
func PublicReason(err error) string {
	var netErr net.Error
	msg := strings.ToLower(err.Error())
	switch {
	case errors.Is(err, syscall.ECONNREFUSED) || strings.Contains(msg, "connection refused"):
		return "cannot connect (connection refused)"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &netErr) && netErr.Timeout()) ||
		strings.Contains(msg, "timed out") || strings.Contains(msg, "timeout"):
		return "cannot connect (timed out)"
	case strings.Contains(msg, "no such host"):
		return "cannot connect (host not found)"
	case strings.Contains(msg, "authentication") || strings.Contains(msg, "password") || strings.Contains(msg, "access refused") || strings.Contains(msg, "access_refused"):
		return "cannot connect (authentication failed)"
	case strings.Contains(msg, "does not exist") || strings.Contains(msg, "no such vhost"):
		return "cannot connect (database or vhost missing)"
	case strings.Contains(msg, "cannot connect") || strings.Contains(msg, "unreachable") || strings.Contains(msg, "not connected"):
		return "cannot connect"
	}
	return "unavailable"
}

// Note is what a check returns to stay green and still say something
// (e.g. how many dead letters wait): /readyz shows "ok: <note>". A note
// says counts, never addresses: the public /readyz shows it as it is.
type Note string

func (n Note) Error() string { return string(n) }

// Ready runs every check at once and returns "ok" (or "ok: <note>") or the
// failure per name, in full.
func Ready(ctx context.Context, checks []Check) map[string]string {
	out := make(map[string]string, len(checks))
	for name, err := range run(ctx, checks) {
		var note Note
		switch {
		case errors.As(err, &note):
			out[name] = "ok: " + string(note)
		case err != nil:
			out[name] = err.Error()
		default:
			out[name] = "ok"
		}
	}
	return out
}

// run runs every check at once and returns each one's error (nil: passed).
func run(ctx context.Context, checks []Check) map[string]error {
	var (
		mu  sync.Mutex
		wg  sync.WaitGroup
		out = make(map[string]error, len(checks))
	)
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := c.Fn(ctx)
			mu.Lock()
			out[c.Name] = err
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Limits bound every connection a listener serves. Zero fields take the
// defaults in DefaultLimits.
type Limits struct {
	// ReadHeaderTimeout cuts a client that sends its headers slowly.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading a whole request, headers and body: a body
	// that trickles is cut when it passes. Streams lift it once their
	// request is read (graph.Limit).
	ReadTimeout time.Duration
	// WriteTimeout bounds writing a non-streaming response.
	WriteTimeout time.Duration
	// IdleTimeout closes a keep-alive connection with no request.
	IdleTimeout time.Duration
	// MaxHeaderBytes caps the request line and headers.
	MaxHeaderBytes int
	// MaxConns caps open connections on the listener; more wait in the
	// kernel's accept queue until one closes.
	MaxConns int
}

// DefaultLimits are the limits when none are configured.
var DefaultLimits = Limits{
	ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second,
	IdleTimeout: 120 * time.Second, MaxHeaderBytes: 64 << 10, MaxConns: 4096,
}

func (l Limits) orDefaults() Limits {
	d := DefaultLimits
	pick := func(v, def time.Duration) time.Duration {
		if v > 0 {
			return v
		}
		return def
	}
	l.ReadHeaderTimeout = pick(l.ReadHeaderTimeout, d.ReadHeaderTimeout)
	l.ReadTimeout = pick(l.ReadTimeout, d.ReadTimeout)
	l.WriteTimeout = pick(l.WriteTimeout, d.WriteTimeout)
	l.IdleTimeout = pick(l.IdleTimeout, d.IdleTimeout)
	if l.MaxHeaderBytes <= 0 {
		l.MaxHeaderBytes = d.MaxHeaderBytes
	}
	if l.MaxConns <= 0 {
		l.MaxConns = d.MaxConns
	}
	return l
}

// Serve listens on addr and serves h under lim until ctx ends, then drains
// for up to grace before returning.
func Serve(ctx context.Context, log *slog.Logger, name, addr string, h http.Handler, lim Limits, grace time.Duration) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("%s: listen on %s: %w", name, addr, err)
	}
	lim = lim.orDefaults()
	ln = netutil.LimitListener(ln, lim.MaxConns)
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: lim.ReadHeaderTimeout,
		ReadTimeout:       lim.ReadTimeout,
		WriteTimeout:      lim.WriteTimeout,
		IdleTimeout:       lim.IdleTimeout,
		MaxHeaderBytes:    lim.MaxHeaderBytes,
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	log.Info("listening", "listener", name, "addr", ln.Addr().String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("%s: %w", name, err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: shutdown: %w", name, err)
	}
	log.Info("stopped", "listener", name)
	return nil
}

// HTTPMetrics counts requests and their latency by route.
type HTTPMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// NewHTTPMetrics registers HTTP metrics for one listener on reg.
func NewHTTPMetrics(reg prometheus.Registerer, listener string) *HTTPMetrics {
	m := &HTTPMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "splitstream_http_requests_total", Help: "HTTP requests by listener, route and status.",
			ConstLabels: prometheus.Labels{"listener": listener},
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "splitstream_http_request_seconds", Help: "HTTP request latency by listener and route.",
			ConstLabels: prometheus.Labels{"listener": listener}, Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"}),
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

// Wrap instruments h under route.
func (m *HTTPMetrics) Wrap(route string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		h.ServeHTTP(rw, r)
		m.requests.WithLabelValues(route, fmt.Sprint(rw.code)).Inc()
		m.latency.WithLabelValues(route).Observe(time.Since(start).Seconds())
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) { s.code = code; s.ResponseWriter.WriteHeader(code) }

// Unwrap lets http.ResponseController reach the real writer (WebSocket hijack, flush).
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack lets WebSocket upgrades through the instrumentation.
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	s.code = http.StatusSwitchingProtocols
	return h.Hijack()
}

// Flush lets streaming responses through the instrumentation.
func (s *statusWriter) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Profiling adds the Go profiler under /debug/pprof/. Only the admin
// listener gets it, and only when SPLITSTREAM_PPROF is on: it is for
// operators, not for API clients, and a profile shows command lines and
// memory.
func Profiling(mux *http.ServeMux) {
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
}
