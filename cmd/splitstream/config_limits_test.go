package main

import (
	"flag"
	"io"
	"strings"
	"testing"
	"time"
)

func parseConfig(t *testing.T, env map[string]string) (Config, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	get := bindConfig(fs, func(k string) string { return env[k] })
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	return get()
}

func TestLimitDefaults(t *testing.T) {
	c, err := parseConfig(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	if l.HTTP.ReadTimeout != 20*time.Second || l.HTTP.WriteTimeout != time.Minute || l.HTTP.MaxConns != 4096 ||
		l.QueryTimeout != 15*time.Second || l.Document.MaxTokens != 10_000 || l.Document.MaxFields != 500 ||
		l.WSMaxMessage != 256<<10 || l.SSEMaxStreams != 1000 {
		t.Fatalf("defaults: %+v", l)
	}
}

func TestLimitsMustFitTogether(t *testing.T) {
	for name, env := range map[string]map[string]string{
		"write timeout under the query timeout":    {"SPLITSTREAM_HTTP_WRITE_TIMEOUT": "10s"},
		"query timeout under the consistency wait": {"SPLITSTREAM_QUERY_TIMEOUT": "4s"},
		"header timeout over the read timeout":     {"SPLITSTREAM_HTTP_READ_HEADER_TIMEOUT": "30s"},
		"no connections":                           {"SPLITSTREAM_HTTP_MAX_CONNS": "0"},
		"no tokens":                                {"SPLITSTREAM_GRAPHQL_MAX_TOKENS": "0"},
	} {
		if _, err := parseConfig(t, env); err == nil || !strings.Contains(err.Error(), "SPLITSTREAM_") {
			t.Errorf("%s: accepted (%v)", name, err)
		}
	}
}
