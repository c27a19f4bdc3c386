// Package provider builds the tracer provider the standard OTEL_*
// environment asks for: tracing is off (a no-op provider) unless an OTLP
// exporter is configured.
package provider

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
)

// MaxLinks is the span link limit unless OTEL_SPAN_LINK_COUNT_LIMIT says
// otherwise: a projector batch (up to 1000 events) links every trace in it,
// above the SDK's default of 128.
const MaxLinks = 1024

// Shutdown flushes and stops a provider.
type Shutdown func(context.Context) error

// Enabled reports whether env asks for traces to be exported: an OTLP
// endpoint is set or OTEL_TRACES_EXPORTER is "otlp", and neither
// OTEL_SDK_DISABLED=true nor OTEL_TRACES_EXPORTER=none says otherwise.
func Enabled(env func(string) string) (bool, error) {
	if strings.EqualFold(env("OTEL_SDK_DISABLED"), "true") {
		return false, nil
	}
	switch exp := strings.TrimSpace(env("OTEL_TRACES_EXPORTER")); exp {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
		return env("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q: this build exports to otlp or none", exp)
	}
}

// FromEnv returns the provider env asks for and its shutdown. When tracing
// is off the provider is nil (tracing.Tracer gives a no-op tracer for it). When it is on, the OTLP exporter
// (http/protobuf unless OTEL_EXPORTER_OTLP[_TRACES]_PROTOCOL is grpc) sits
// behind a batch span processor; the exporter, the sampler, the batch
// processor and the resource read the rest of OTEL_* from the process
// environment themselves (OTEL_EXPORTER_OTLP_HEADERS, OTEL_TRACES_SAMPLER,
// OTEL_BSP_*, OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES ...).
func FromEnv(ctx context.Context, env func(string) string, version string) (trace.TracerProvider, Shutdown, error) {
	on, err := Enabled(env)
	if err != nil || !on {
		return nil, func(context.Context) error { return nil }, err
	}
	protocol := env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if protocol == "" {
		protocol = env("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	var exp sdktrace.SpanExporter
	switch protocol {
	case "", "http/protobuf":
		exp, err = otlptracehttp.New(ctx)
	case "grpc":
		exp, err = otlptracegrpc.New(ctx)
	default:
		return nil, nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: this build speaks http/protobuf or grpc", protocol)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("otlp trace exporter: %w", err)
	}
	tp, err := New(ctx, exp, version)
	if err != nil {
		return nil, nil, err
	}
	return tp, tp.Shutdown, nil
}

// New returns a provider exporting to exp through a batch span processor,
// with Splitstream's resource and span limits. Shut it down to flush.
func New(ctx context.Context, exp sdktrace.SpanExporter, version string) (*sdktrace.TracerProvider, error) {
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", "splitstream"), attribute.String("service.version", version)),
		resource.WithFromEnv(), // OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES win
	)
	if err != nil {
		return nil, fmt.Errorf("trace resource: %w", err)
	}
	return sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res), sdktrace.WithRawSpanLimits(Limits())), nil
}

// Limits are the SDK's span limits from the environment, with MaxLinks
// links unless OTEL_SPAN_LINK_COUNT_LIMIT is set.
func Limits() sdktrace.SpanLimits {
	l := sdktrace.NewSpanLimits()
	if _, err := strconv.Atoi(os.Getenv("OTEL_SPAN_LINK_COUNT_LIMIT")); err != nil {
		l.LinkCountLimit = MaxLinks
	}
	return l
}
