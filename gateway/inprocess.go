package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Serve sends the named upstream's requests ("command" or "query") to h in
// this process instead of over loopback HTTP: when the gateway and that
// service share a process (splitstream all), the second HTTP exchange is
// pure cost. The request h sees is the one the network path would send
// (same headers, body and path; RemoteAddr the loopback, as a TCP
// connection from the gateway would show) in the context of the caller's
// request, so it carries the caller's request id, and on the fast path the
// body decoded (graph.WithDecodedRequest). h is meant to be the service's
// GraphQL handler behind its own identity check and metrics; the layers
// the gateway has applied with the same settings (request id, body size,
// timeout) need not be repeated. A 200 answer from h is taken as JSON
// without checking. Subscriptions keep their WebSocket to the service,
// and the breaker and timeouts stay in front. Call it before the gateway
// serves.
func (g *Gateway) Serve(upstreamName string, h http.Handler) error {
	var u *upstream
	switch upstreamName {
	case "command":
		u = g.command
	case "query":
		u = g.query
	default:
		return fmt.Errorf("gateway: no upstream %q", upstreamName)
	}
	if h == nil {
		return fmt.Errorf("gateway: nil handler for the %s upstream", upstreamName)
	}
	u.client = &http.Client{Transport: handlerTransport{h}}
	u.inProcess = true
	return nil
}

// handlerTransport is an http.RoundTripper that serves each request with
// a handler of this process.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	in := req.WithContext(req.Context()) // a shallow copy: the request is the gateway's own, used once
	in.RequestURI = req.URL.RequestURI()
	in.RemoteAddr = "127.0.0.1:0"
	in.Host = req.URL.Host
	if in.Body == nil {
		in.Body = http.NoBody
	}
	w := &bufferedResponse{header: http.Header{}}
	t.h.ServeHTTP(w, in)
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return &http.Response{
		Status: strconv.Itoa(w.status) + " " + http.StatusText(w.status), StatusCode: w.status,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: w.header, Body: io.NopCloser(&w.body), ContentLength: int64(w.body.Len()), Request: req,
	}, nil
}

// bufferedResponse is the ResponseWriter of an in-process request: the
// whole answer is kept (one GraphQL result; the gateway bounds what it
// reads of it, and the service bounds what it writes).
type bufferedResponse struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *bufferedResponse) Header() http.Header { return w.header }

func (w *bufferedResponse) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *bufferedResponse) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(p)
}
