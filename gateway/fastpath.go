package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"

	"github.com/99designs/gqlgen/complexity"
	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/validator"

	"github.com/splitstream/splitstream/graph"
)

// known is an operation the full path has parsed, validated, checked
// against every limit and forwarded: the same document and operation name
// need not be parsed, validated and re-encoded again.
type known struct {
	op       *ast.OperationDefinition
	upstream *upstream
}

// knownEntries bounds the known operations: at most this many, each of a
// document at most 16 KiB long (graph.SmallQueries).
const knownEntries = 1000

func knownKey(operationName, query string) string { return operationName + "\x00" + query }

// remember records op, just forwarded to u by the full path, as known.
// Introspection the gateway answers itself and subscriptions (streams)
// always take the full path.
func (g *Gateway) remember(ctx context.Context, op *graphql.OperationContext, u *upstream) {
	g.known.Add(ctx, knownKey(op.OperationName, op.RawQuery), known{op: op.Operation, upstream: u})
}

// fastParams is a POST body as the fast path reads it.
type fastParams struct {
	Query         string          `json:"query"`
	OperationName string          `json:"operationName"`
	Variables     map[string]any  `json:"variables"`
	Extensions    json.RawMessage `json:"extensions"`
}

// fastPath forwards a POST of a known operation without gqlgen: the body
// is sent upstream as the caller sent it and a 200 answer comes back byte
// for byte, so the gateway neither parses the document nor decodes and
// re-encodes the result (and a service in this process is handed the
// request decoded, so it does not decode the body again). What may differ
// from one request of the same document to the next is checked again: the variables must coerce and the
// complexity (which page sizes in variables change) must be within the
// limit. Anything else (a new document, a persisted query, variables that
// do not coerce, an SSE stream, a WebSocket) takes the full path, which
// answers its errors as the GraphQL over HTTP spec asks. The identity,
// rate-limit and body-size middleware stand in front of both paths.
func (g *Gateway) fastPath(full http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !(transport.POST{}).Supports(r) || (transport.SSE{}).Supports(r) {
			full.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil { // too large, or cut off: the full path reads (and refuses) the rest
			r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), r.Body))
			full.ServeHTTP(w, r)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		k, p, ok := g.knownFor(r.Context(), body)
		if !ok {
			full.ServeHTTP(w, r)
			return
		}
		h := callerHeaders(r.Context(), r.Header)
		h.Set("Content-Type", "application/json")
		h.Set("Accept", "application/json")
		ctx := r.Context()
		if k.upstream.inProcess { // the service need not decode the same body again
			ctx = graph.WithDecodedRequest(ctx, &graphql.RawParams{Query: p.Query, OperationName: p.OperationName, Variables: p.Variables})
		}
		res := k.upstream.send(ctx, h, body, true)
		w.Header().Set("Content-Type", graph.ResponseMedia(r))
		if res.raw != nil {
			_, _ = w.Write(res.raw)
			return
		}
		writeResult(w, res)
	})
}

// knownFor is the known operation body asks for, and body decoded, if its
// variables coerce and its complexity is within the limit.
func (g *Gateway) knownFor(ctx context.Context, body []byte) (known, *fastParams, bool) {
	var p fastParams
	if graph.DecodeJSON(body, &p) != nil || p.Query == "" || (len(p.Extensions) > 0 && string(p.Extensions) != "null") {
		return known{}, nil, false
	}
	k, ok := g.known.Get(ctx, knownKey(p.OperationName, p.Query))
	if !ok {
		return known{}, nil, false
	}
	vars, err := validator.VariableValues(g.schema, k.op, p.Variables)
	if err != nil {
		return known{}, nil, false
	}
	if g.complexityLimit > 0 && complexity.Calculate(ctx, g, k.op, vars) > g.complexityLimit {
		return known{}, nil, false
	}
	return k, &p, true
}

// writeResult answers r as the full path would: gqlgen's response, status
// 200.
func writeResult(w http.ResponseWriter, r *result) {
	out := graphql.Response{Data: r.Data, Errors: r.Errors}
	if len(r.Extensions) > 0 {
		out.Extensions = make(map[string]any, len(r.Extensions))
		for k, v := range r.Extensions {
			out.Extensions[k] = v
		}
	}
	b, err := json.Marshal(&out)
	if err != nil {
		http.Error(w, "the answer could not be encoded", http.StatusInternalServerError)
		return
	}
	_, _ = w.Write(b)
}
