package provider

import (
	"context"
	"testing"
	"time"
)

func TestEnabled(t *testing.T) {
	for _, c := range []struct {
		env     map[string]string
		on, err bool
	}{
		{env: nil},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, on: true},
		{env: map[string]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, on: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}, on: true},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x"}},
		{env: map[string]string{"OTEL_SDK_DISABLED": "true", "OTEL_TRACES_EXPORTER": "otlp"}},
		{env: map[string]string{"OTEL_TRACES_EXPORTER": "zipkin"}, err: true},
	} {
		on, err := Enabled(func(k string) string { return c.env[k] })
		if on != c.on || (err != nil) != c.err {
			t.Errorf("%v: on %v err %v", c.env, on, err)
		}
	}
}

// Off: no provider, and a shutdown that does nothing.
func TestFromEnvOff(t *testing.T) {
	tp, shutdown, err := FromEnv(context.Background(), func(string) string { return "" }, "test")
	if err != nil || tp != nil || shutdown(context.Background()) != nil {
		t.Fatalf("tp %v err %v", tp, err)
	}
	if _, _, err := FromEnv(context.Background(), func(k string) string {
		return map[string]string{"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "carrier-pigeon"}[k]
	}, "test"); err == nil {
		t.Fatal("an unknown protocol was accepted")
	}
}

// On: a real provider (the exporter connects lazily), flushed by shutdown.
func TestFromEnvOn(t *testing.T) {
	tp, shutdown, err := FromEnv(context.Background(), func(k string) string {
		return map[string]string{"OTEL_TRACES_EXPORTER": "otlp"}[k]
	}, "test")
	if err != nil || tp == nil {
		t.Fatalf("tp %v err %v", tp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = shutdown(ctx) // nothing listens; only that it returns
	if Limits().LinkCountLimit != MaxLinks {
		t.Fatalf("link limit %d", Limits().LinkCountLimit)
	}
}
