package tracing

import (
	"context"
	"log/slog"

	"go.opentelemetry.io/otel/trace"
)

// Field adds one attribute to a log line from the record's context, or
// nothing when fn returns "".
type Field struct {
	Key string
	Fn  func(ctx context.Context) string
}

// LogHandler wraps h so every record logged with a context that carries a
// span gets trace_id and span_id, and each of fields that is set (for
// example the request id).
func LogHandler(h slog.Handler, fields ...Field) slog.Handler {
	return logHandler{h, fields}
}

type logHandler struct {
	slog.Handler
	fields []Field
}

func (h logHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
			r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
		}
		for _, f := range h.fields {
			if v := f.Fn(ctx); v != "" && !has(r, f.Key) {
				r.AddAttrs(slog.String(f.Key, v))
			}
		}
	}
	return h.Handler.Handle(ctx, r)
}

func (h logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return logHandler{h.Handler.WithAttrs(attrs), h.fields}
}

func (h logHandler) WithGroup(name string) slog.Handler {
	return logHandler{h.Handler.WithGroup(name), h.fields}
}

// has reports whether r already has an attribute named key.
func has(r slog.Record, key string) bool {
	found := false
	r.Attrs(func(a slog.Attr) bool {
		found = a.Key == key
		return !found
	})
	return found
}
