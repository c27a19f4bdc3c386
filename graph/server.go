package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/google/uuid"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
	"go.opentelemetry.io/otel/trace"

	"github.com/splitstream/splitstream"
)

// Options configures a GraphQL endpoint.
type Options struct {
	Log *slog.Logger
	// MaxBodyBytes: larger request bodies get 413 before any parsing.
	MaxBodyBytes int64
	// ComplexityLimit caps a query's cost (each field 1; a schema may price lists by page size).
	ComplexityLimit int
	Introspection   bool
	// Document bounds a document before validation (DefaultDocumentLimits when zero).
	Document DocumentLimits
	// Transports added after POST and GET (for example WebSocket).
	Transports []graphql.Transport
	// AroundResponses, if set, may add to each response (for example freshness extensions).
	AroundResponses graphql.ResponseMiddleware
	// AroundOperations, if set, wraps each operation (for example a cap on subscriptions).
	AroundOperations graphql.OperationMiddleware
	// Tracer, if set, starts a span for each operation (see Tracing).
	Tracer trace.Tracer
}

// NewServer builds the gqlgen server for schema with our limits and error
// mapping. Wrap it with Middleware for body limits and request ids.
func NewServer(schema graphql.ExecutableSchema, o Options) *handler.Server {
	srv := handler.New(schema)
	for _, t := range o.Transports {
		srv.AddTransport(t)
	}
	srv.AddTransport(transport.Options{})
	srv.AddTransport(httpGET{})  // gqlgen's transport.GET, with the status codes and
	srv.AddTransport(httpPOST{}) // bodies of GraphQL over HTTP (httptransport.go)
	srv.SetQueryCache(SmallQueries(1000, func(q string, _ *ast.QueryDocument) int { return len(q) }))
	if o.Introspection {
		srv.Use(extension.Introspection{})
	}
	UseDocumentLimits(srv, o.Document) // first, so persisted queries are within the limits too
	srv.Use(extension.AutomaticPersistedQuery{Cache: SmallQueries(100, func(_, q string) int { return len(q) })})
	if o.ComplexityLimit > 0 {
		srv.Use(extension.FixedComplexityLimit(o.ComplexityLimit))
	}
	if o.Tracer != nil {
		srv.Use(Tracing{Tracer: o.Tracer})
	}
	if o.AroundOperations != nil {
		srv.AroundOperations(o.AroundOperations)
	}
	if o.AroundResponses != nil {
		srv.AroundResponses(o.AroundResponses)
	}
	srv.SetErrorPresenter(presenter(o.Log))
	srv.SetRecoverFunc(func(ctx context.Context, v any) error {
		o.Log.ErrorContext(ctx, "panic in resolver", "panic", v, "request_id", RequestID(ctx))
		return errors.New("panic in resolver")
	})
	return srv
}

// presenter is the one place where errors become what a client sees.
func presenter(log *slog.Logger) graphql.ErrorPresenterFunc {
	return func(ctx context.Context, err error) *gqlerror.Error {
		var app *splitstream.Error
		if errors.As(err, &app) {
			gerr := graphql.DefaultErrorPresenter(ctx, err)
			gerr.Message = app.Message
			ext := map[string]any{"code": app.Code}
			if app.Field != "" {
				ext["field"] = app.Field
			}
			if app.CurrentVersion >= 0 && app.Code == splitstream.EConflict {
				ext["currentVersion"] = app.CurrentVersion
			}
			gerr.Extensions = ext
			return gerr
		}
		var gerr *gqlerror.Error
		if errors.As(err, &gerr) && gerr.Err == nil {
			// gqlgen's own parse, validation and coercion errors: safe to show.
			if gerr.Extensions == nil || gerr.Extensions["code"] == nil {
				if gerr.Extensions == nil {
					gerr.Extensions = map[string]any{}
				}
				gerr.Extensions["code"] = splitstream.EInvalid
			}
			return gerr
		}
		id := RequestID(ctx)
		log.ErrorContext(ctx, "internal error", "err", err, "request_id", id)
		out := graphql.DefaultErrorPresenter(ctx, err)
		out.Message = fmt.Sprintf("internal error (request id %s)", id)
		out.Extensions = map[string]any{"code": splitstream.EInternal, "requestId": id}
		out.Err = nil
		return out
	}
}

type ctxKey int

const requestIDKey ctxKey = iota

// RequestID returns the request's id, set by Middleware.
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// safeID reports whether a caller's X-Request-Id may be kept: 1 to 100 of
// A-Z, a-z, 0-9 and "._:-" (a loop: this runs on every request).
func safeID(id string) bool {
	if len(id) == 0 || len(id) > 100 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// Middleware gives each request an id (kept from X-Request-Id when sane) and
// refuses bodies over maxBody with 413 before anything parses them.
func Middleware(maxBody int64, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := r.Header.Get("X-Request-Id")
		if !safeID(id) {
			id = uuid.NewString()
		}
		w.Header().Set("X-Request-Id", id)
		ctx := context.WithValue(r.Context(), requestIDKey, id)
		r = r.WithContext(ctx)
		if r.Method == http.MethodPost && maxBody > 0 {
			if r.ContentLength > maxBody {
				tooLarge(w, maxBody)
				return
			}
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				tooLarge(w, maxBody)
				return
			}
			if err != nil {
				readFailed(w, err)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

func tooLarge(w http.ResponseWriter, max int64) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusRequestEntityTooLarge)
	fmt.Fprintf(w, `{"errors":[{"message":"request body larger than %d bytes","extensions":{"code":"BAD_USER_INPUT"}}]}`, max)
}

// Timeout bounds how long a request may run.
func Timeout(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), d)
		defer cancel()
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}
