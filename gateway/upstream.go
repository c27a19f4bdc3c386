package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/sony/gobreaker/v2"
	"github.com/vektah/gqlparser/v2/gqlerror"

	"github.com/splitstream/splitstream/auth"
	"github.com/splitstream/splitstream/graph"
)

// CodeUnavailable is the extensions.code of an operation whose upstream is
// down, too slow to connect, or behind an open circuit breaker.
const CodeUnavailable = "SERVICE_UNAVAILABLE"

// maxUpstreamBytes bounds one upstream answer (a result, or one event of a
// subscription); a larger one is treated as the upstream failing.
const maxUpstreamBytes = 16 << 20

// Breaker settings, per upstream: five failures in a row open it; after
// breakerOpen one trial request may pass, and its success closes it.
const (
	breakerTrips = 5
	breakerOpen  = 5 * time.Second
)

// upstream is one service behind the gateway.
type upstream struct {
	name      string // "command" or "query"
	url       string // its /graphql
	wsURL     string
	timeout   time.Duration
	client    *http.Client // operations over HTTP (in process when Serve says so)
	ws        *http.Client // subscription handshakes: always the network
	dialer    *net.Dialer
	breaker   *gobreaker.CircuitBreaker[*result]
	inProcess bool // served by a handler of this process (Serve)
	log       *slog.Logger
}

func newUpstream(name, base string, timeout, connect time.Duration, log *slog.Logger) (*upstream, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("gateway: the %s service URL %q is not an http(s) URL", name, base)
	}
	if timeout <= 0 {
		return nil, fmt.Errorf("gateway: the %s service needs a positive request timeout", name)
	}
	u.Path = strings.TrimSuffix(u.Path, "/") + "/graphql"
	ws := *u
	ws.Scheme = map[string]string{"http": "ws", "https": "wss"}[u.Scheme]
	dialer := &net.Dialer{Timeout: connect, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		DialContext:         dialer.DialContext,
		TLSHandshakeTimeout: connect,
		MaxIdleConns:        512,
		MaxIdleConnsPerHost: 256, // the gateway is one client with many callers
		IdleConnTimeout:     90 * time.Second,
	}
	up := &upstream{name: name, url: u.String(), wsURL: ws.String(), timeout: timeout, client: &http.Client{Transport: tr}, dialer: dialer, log: log}
	up.ws = up.client
	up.breaker = gobreaker.NewCircuitBreaker[*result](gobreaker.Settings{
		Name:        name,
		Timeout:     breakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= breakerTrips },
		IsExcluded:  func(err error) bool { return errors.Is(err, context.Canceled) }, // the caller left
		OnStateChange: func(name string, from, to gobreaker.State) {
			log.Warn("gateway: circuit breaker", "upstream", name, "from", from.String(), "to", to.String())
		},
	})
	return up, nil
}

// result is an upstream's answer as the GraphQL response format has it.
// Extensions stay raw: the gateway passes them on unread.
type result struct {
	Data       json.RawMessage            `json:"data"`
	Errors     gqlerror.List              `json:"errors"`
	Extensions map[string]json.RawMessage `json:"extensions"`
	// raw is a 200 answer kept unread (upstream.send with raw).
	raw []byte
}

// response turns r into gqlgen's response; extensions go through ctx,
// since gqlgen replaces a response's own with those registered there.
func (r *result) response(ctx context.Context) *graphql.Response {
	for k, v := range r.Extensions {
		graphql.RegisterExtension(ctx, k, v)
	}
	return &graphql.Response{Data: r.Data, Errors: r.Errors}
}

// unavailable is the answer when u cannot be reached.
func (u *upstream) unavailable() *result {
	return &result{Errors: gqlerror.List{{
		Message:    fmt.Sprintf("the %s service is unavailable; try again shortly", u.name),
		Extensions: map[string]any{"code": CodeUnavailable, "service": u.name},
	}}}
}

// request is the body sent upstream: the document gqlgen validated, whole
// (a persisted one resolved), and the coerced variables.
type request struct {
	Query         string         `json:"query"`
	OperationName string         `json:"operationName,omitempty"`
	Variables     map[string]any `json:"variables,omitempty"`
}

func requestOf(op *graphql.OperationContext) request {
	return request{Query: op.RawQuery, OperationName: op.OperationName, Variables: op.Variables}
}

// do sends op to u over HTTP. Every failure to get an answer is
// SERVICE_UNAVAILABLE; an answer, errors and all, is passed on as it is.
func (u *upstream) do(ctx context.Context, op *graphql.OperationContext) *result {
	body, err := json.Marshal(requestOf(op))
	if err != nil {
		return &result{Errors: gqlerror.List{{Message: "the variables cannot be encoded", Extensions: map[string]any{"code": "BAD_USER_INPUT"}}}}
	}
	h := upstreamHeaders(ctx, op)
	h.Set("Content-Type", "application/json")
	h.Set("Accept", "application/json")
	return u.send(ctx, h, body, false)
}

// send posts body to u with the headers h, through u's breaker and within
// its timeout. With raw, a 200 answer in JSON is kept as the bytes u sent
// (result.raw), unread; any other answer is decoded as do decodes it.
func (u *upstream) send(ctx context.Context, h http.Header, body []byte, raw bool) *result {
	res, err := u.breaker.Execute(func() (*result, error) {
		ctx, cancel := within(ctx, u.timeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.url, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header = h
		// The transport itself: an upstream's redirect is not followed,
		// and http.Client's per-request bookkeeping is not needed.
		resp, err := u.client.Transport.RoundTrip(req)
		if err != nil {
			return nil, err
		}
		defer func() {
			// Read to the end, so the connection goes back to the pool.
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxUpstreamBytes))
			resp.Body.Close()
		}()
		if raw && resp.StatusCode == http.StatusOK && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			return readRaw(resp, !u.inProcess)
		}
		return decode(resp)
	})
	if err != nil {
		if ctx.Err() == nil {
			u.log.WarnContext(ctx, "gateway: upstream unavailable", "upstream", u.name, "err", err, "request_id", graph.RequestID(ctx))
		}
		return u.unavailable()
	}
	return res
}

// within is ctx bounded by timeout from now, or ctx itself when it already
// ends no later (the request's own bound, usually): one timer fewer.
func within(ctx context.Context, timeout time.Duration) (context.Context, context.CancelFunc) {
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= timeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, timeout)
}

// readRaw keeps a 200 answer's body as it is; one over maxUpstreamBytes,
// or not JSON when validate (an upstream over the network), is the
// upstream failing, as decode has it.
func readRaw(resp *http.Response, validate bool) (*result, error) {
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("read the upstream's answer: %w", err)
	case len(b) > maxUpstreamBytes:
		return nil, fmt.Errorf("the upstream's answer is over %d bytes", maxUpstreamBytes)
	case validate && !json.Valid(b):
		return nil, errors.New("upstream answered 200 with a body that is not JSON")
	}
	return &result{raw: b}, nil
}

// decode reads a GraphQL answer. 502, 503 and 504, and anything that is
// not a GraphQL answer, are the upstream failing; other statuses (401,
// 429, 400 ...) carry errors for the caller.
func decode(resp *http.Response) (*result, error) {
	if resp.StatusCode == http.StatusBadGateway || resp.StatusCode == http.StatusServiceUnavailable || resp.StatusCode == http.StatusGatewayTimeout {
		return nil, fmt.Errorf("upstream answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxUpstreamBytes))
	if err != nil {
		return nil, fmt.Errorf("read the upstream's answer: %w", err)
	}
	var r result
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("upstream answered %s with no GraphQL response: %w", resp.Status, err)
	}
	if r.Data == nil && len(r.Errors) == 0 {
		return nil, fmt.Errorf("upstream answered %s with neither data nor errors", resp.Status)
	}
	if string(r.Data) == "null" {
		r.Data = nil
	}
	return &r, nil
}

// upstreamHeaders are what the upstream learns of the caller: its
// credentials (a WebSocket's connection_init authorization first, as the
// services themselves decide), the request id and the trace context.
func upstreamHeaders(ctx context.Context, op *graphql.OperationContext) http.Header {
	h := callerHeaders(ctx, op.Headers)
	if a, _, ok := auth.InitAuthorization(transport.GetInitPayload(ctx)); ok {
		h.Set("Authorization", a)
	}
	return h
}

// callerHeaders are the upstream headers an HTTP request's own headers in
// give: its credentials, the request id and the trace context.
func callerHeaders(ctx context.Context, in http.Header) http.Header {
	h := http.Header{}
	if a := in.Get("Authorization"); a != "" {
		h.Set("Authorization", a)
	}
	if id := graph.RequestID(ctx); id != "" {
		h.Set("X-Request-Id", id)
	}
	propagateTrace(in, h)
	return h
}
