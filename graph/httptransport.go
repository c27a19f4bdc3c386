package graph

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// POST and GET as the GraphQL over HTTP specification
// (https://graphql.github.io/graphql-over-http/draft/) asks, which gqlgen's
// transport.POST and transport.GET do not quite do:
//
//   - A request whose document fails to parse or validate, or whose
//     variables cannot be coerced, is a well-formed GraphQL-over-HTTP request:
//     under application/json it is answered 200 (gqlgen says 422); under
//     application/graphql-response+json it is 400, as gqlgen already does.
//   - A request that names no document at all (invalid parameters) is 400
//     under either media type.
//   - A response to a request that failed before execution carries no
//     "data" entry (gqlgen writes "data": null, which says execution ran).
//   - A mutation sent with GET is 405 with Allow: POST (gqlgen says 406).
//
// The error codes (extensions.code) are those of the error presenter and
// are the same under both media types; only the status and body shape change.

const (
	mediaJSON            = "application/json"
	mediaGraphQLResponse = "application/graphql-response+json"
)

// httpPOST serves POST with a JSON body.
type httpPOST struct{}

var _ graphql.Transport = httpPOST{}

func (httpPOST) Supports(r *http.Request) bool {
	if r.Header.Get("Upgrade") != "" || r.Method != http.MethodPost {
		return false
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mt == mediaJSON
}

func (httpPOST) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	media := ResponseMedia(r)
	w.Header().Set("Content-Type", media)
	start := graphql.Now()
	if p, ok := DecodedRequest(r.Context()); ok { // from a gateway of this process
		p.Headers = r.Header
		p.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
		execute(w, r, exec, media, p, false)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		invalidRequest(w, r, exec, "the request body could not be read")
		return
	}
	params := &graphql.RawParams{}
	if err := DecodeJSON(body, params); err != nil {
		invalidRequest(w, r, exec, "the request body is not a GraphQL request in JSON (query, operationName, variables, extensions)")
		return
	}
	params.Headers = r.Header
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	execute(w, r, exec, media, params, false)
}

// httpGET serves GET with the request in the URL's query string (queries only).
type httpGET struct{}

var _ graphql.Transport = httpGET{}

func (httpGET) Supports(r *http.Request) bool {
	return r.Header.Get("Upgrade") == "" && r.Method == http.MethodGet
}

func (httpGET) Do(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor) {
	media := ResponseMedia(r)
	w.Header().Set("Content-Type", media)
	start := graphql.Now()
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		invalidRequest(w, r, exec, "the URL's query string could not be parsed")
		return
	}
	params := &graphql.RawParams{
		Query:         q.Get("query"),
		OperationName: q.Get("operationName"),
		Headers:       r.Header,
	}
	for name, into := range map[string]any{"variables": &params.Variables, "extensions": &params.Extensions} {
		if v := q.Get(name); v != "" {
			if err := DecodeJSON([]byte(v), into); err != nil {
				invalidRequest(w, r, exec, name+" is not a JSON object")
				return
			}
		}
	}
	params.ReadTime = graphql.TraceTiming{Start: start, End: graphql.Now()}
	execute(w, r, exec, media, params, true)
}

// execute parses, validates and runs one operation and writes its response.
func execute(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, media string, params *graphql.RawParams, queriesOnly bool) {
	ctx := r.Context()
	// Before CreateOperationContext, which fills Query in from a persisted query's hash.
	noDocument := params.Query == "" && params.Extensions["persistedQuery"] == nil
	opCtx, errs := exec.CreateOperationContext(ctx, params)
	if errs != nil {
		status := http.StatusOK
		if noDocument || media == mediaGraphQLResponse {
			status = http.StatusBadRequest
		}
		writeRequestErrors(w, status, exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), errs))
		return
	}
	if queriesOnly && opCtx.Operation.Operation != ast.Query {
		w.Header().Set("Allow", http.MethodPost)
		err := gqlerror.Errorf("only queries may be sent with GET; send a %s with POST", opCtx.Operation.Operation)
		writeRequestErrors(w, http.StatusMethodNotAllowed, exec.DispatchError(graphql.WithOperationContext(ctx, opCtx), gqlerror.List{err}))
		return
	}
	responses, ctx := exec.DispatchOperation(ctx, opCtx)
	writeBody(w, http.StatusOK, responses(ctx))
}

// invalidRequest answers a request that is not a GraphQL-over-HTTP request
// at all (400 under either media type), through the error presenter.
func invalidRequest(w http.ResponseWriter, r *http.Request, exec graphql.GraphExecutor, msg string) {
	writeRequestErrors(w, http.StatusBadRequest, exec.DispatchError(r.Context(), gqlerror.List{{Message: msg}}))
}

// requestErrors is the body of a response to a request that failed before
// execution: errors and extensions, and no data entry.
type requestErrors struct {
	Errors     gqlerror.List  `json:"errors"`
	Extensions map[string]any `json:"extensions,omitempty"`
}

func writeRequestErrors(w http.ResponseWriter, status int, resp *graphql.Response) {
	writeBody(w, status, requestErrors{Errors: resp.Errors, Extensions: resp.Extensions})
}

func writeBody(w http.ResponseWriter, status int, body any) {
	b, err := json.Marshal(body)
	if err != nil {
		// Only a resolver's value could fail to marshal; gqlgen's own
		// transports panic here, and the recover middleware logs it.
		panic(err)
	}
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// DecodeJSON decodes a GraphQL request body (or a variables or extensions
// parameter) as the services read it: numbers kept as json.Number, so an
// Int is not rounded through float64 before validation.
func DecodeJSON(b []byte, into any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	return dec.Decode(into)
}

// ResponseMedia picks the response's media type from Accept as gqlgen does:
// the first of application/json and application/graphql-response+json
// listed; application/json when Accept is empty or a wildcard (for clients
// older than the specification); application/graphql-response+json otherwise.
func ResponseMedia(r *http.Request) string {
	accept := r.Header.Get("Accept")
	if accept == "" {
		return mediaJSON
	}
	for part := range strings.SplitSeq(accept, ",") {
		mt, _, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		switch mt {
		case "*/*", "application/*", mediaJSON:
			return mediaJSON
		case mediaGraphQLResponse:
			return mediaGraphQLResponse
		}
	}
	return mediaGraphQLResponse
}

type decodedKey struct{}

// WithDecodedRequest hands a POST's body, already decoded from the same
// bytes, to the handler it is sent to in this process (a co-located
// gateway to its service), so that handler does not decode it again. Only
// Go code of this process can set it; a request from the network never
// carries it.
func WithDecodedRequest(ctx context.Context, p *graphql.RawParams) context.Context {
	return context.WithValue(ctx, decodedKey{}, p)
}

// DecodedRequest is the request WithDecodedRequest put in ctx, if any.
func DecodedRequest(ctx context.Context) (*graphql.RawParams, bool) {
	p, ok := ctx.Value(decodedKey{}).(*graphql.RawParams)
	return p, ok && p != nil
}
