package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Config is every setting, read from the environment and overridable by flags.
type Config struct {
	DatabaseURL        string
	AMQPURL            string
	ElasticsearchURL   string
	IndexPrefix        string
	CommandAddr        string
	QueryAddr          string
	AdminAddr          string
	PProf              bool
	Dev                bool
	MaxBodyBytes       int64
	ComplexityLimit    int
	Introspection      bool
	ConsistencyTimeout time.Duration
	SagaDeadline       time.Duration
	RefreshInterval    time.Duration
	PGMaxConns         int
	AllowedOrigins     string
	WSInitTimeout      time.Duration
	WSKeepAlive        time.Duration
	WSMaxSubscriptions int
	LogLevel           string
	LogFormat          string
	// Identity and access (see access.go).
	JWTSecret   string
	JWKSURL     string
	JWTIssuer   string
	JWTAudience string
	TokenSecret string
	RateLimit   float64
	AuthOff     bool
}

// setting ties one Config field to its environment name, flag and default.
type setting struct {
	env, flag, def, help string
	set                  func(c *Config, v string) error
}

func settings() []setting {
	str := func(f func(c *Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *f(c) = v; return nil }
	}
	return []setting{
		{"DATABASE_URL", "database-url", "postgres://postgres@127.0.0.1:5432/splitstream?sslmode=disable", "Postgres (event store; command, relay, saga, projector, rebuild)",
			str(func(c *Config) *string { return &c.DatabaseURL })},
		{"AMQP_URL", "amqp-url", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ",
			str(func(c *Config) *string { return &c.AMQPURL })},
		{"ELASTICSEARCH_URL", "elasticsearch-url", "http://127.0.0.1:9200", "Elasticsearch 8",
			str(func(c *Config) *string { return &c.ElasticsearchURL })},
		{"SPLITSTREAM_INDEX_PREFIX", "index-prefix", "splitstream", "prefix of every index and alias",
			str(func(c *Config) *string { return &c.IndexPrefix })},
		{"SPLITSTREAM_COMMAND_ADDR", "command-addr", ":8080", "command service listen address",
			str(func(c *Config) *string { return &c.CommandAddr })},
		{"SPLITSTREAM_QUERY_ADDR", "query-addr", ":8090", "query service listen address",
			str(func(c *Config) *string { return &c.QueryAddr })},
		{"SPLITSTREAM_ADMIN_ADDR", "admin-addr", "127.0.0.1:8070", "relay/projector/saga admin listen address (loopback by default: full readiness reasons, pprof)",
			str(func(c *Config) *string { return &c.AdminAddr })},
		{"SPLITSTREAM_PPROF", "pprof", "false", "serve the Go profiler under /debug/pprof/ on the admin listener",
			func(c *Config, v string) (err error) { c.PProf, err = strconv.ParseBool(v); return }},
		{"SPLITSTREAM_DEV", "dev", "false", "development mode (make run): the playgrounds prefill their headers with a token, for browsers on this machine",
			func(c *Config, v string) (err error) { c.Dev, err = strconv.ParseBool(v); return }},
		{"SPLITSTREAM_MAX_BODY_BYTES", "max-body-bytes", "1048576", "largest GraphQL request body; larger gets 413",
			func(c *Config, v string) (err error) { c.MaxBodyBytes, err = strconv.ParseInt(v, 10, 64); return }},
		{"SPLITSTREAM_COMPLEXITY_LIMIT", "complexity-limit", "1000", "largest GraphQL query complexity",
			func(c *Config, v string) (err error) { c.ComplexityLimit, err = strconv.Atoi(v); return }},
		{"SPLITSTREAM_INTROSPECTION", "introspection", "true", "allow GraphQL introspection",
			func(c *Config, v string) (err error) { c.Introspection, err = strconv.ParseBool(v); return }},
		{"SPLITSTREAM_CONSISTENCY_TIMEOUT", "consistency-timeout", "5s", "longest wait for consistentWith before STALE_READ",
			func(c *Config, v string) (err error) { c.ConsistencyTimeout, err = time.ParseDuration(v); return }},
		{"SPLITSTREAM_SAGA_DEADLINE", "saga-deadline", "30s", "an order still PENDING after this is rejected",
			func(c *Config, v string) (err error) { c.SagaDeadline, err = time.ParseDuration(v); return }},
		{"SPLITSTREAM_REFRESH_INTERVAL", "refresh-interval", "1s", "Elasticsearch index refresh interval (search visibility)",
			func(c *Config, v string) (err error) { c.RefreshInterval, err = time.ParseDuration(v); return }},
		{"SPLITSTREAM_PG_MAX_CONNS", "pg-max-conns", "40", "Postgres pool size per process",
			func(c *Config, v string) (err error) { c.PGMaxConns, err = strconv.Atoi(v); return }},
		{"SPLITSTREAM_ALLOWED_ORIGINS", "allowed-origins", "", "WebSocket origins allowed besides the service's own: comma-separated host patterns, or *",
			str(func(c *Config) *string { return &c.AllowedOrigins })},
		{"SPLITSTREAM_WS_INIT_TIMEOUT", "ws-init-timeout", "10s", "a WebSocket without connection_init by then is closed (4408)",
			func(c *Config, v string) (err error) { c.WSInitTimeout, err = time.ParseDuration(v); return }},
		{"SPLITSTREAM_WS_KEEPALIVE", "ws-keepalive", "15s", "WebSocket keep-alive ping interval",
			func(c *Config, v string) (err error) { c.WSKeepAlive, err = time.ParseDuration(v); return }},
		{"SPLITSTREAM_WS_MAX_SUBSCRIPTIONS", "ws-max-subscriptions", "100", "most subscriptions one WebSocket connection may hold",
			func(c *Config, v string) (err error) { c.WSMaxSubscriptions, err = strconv.Atoi(v); return }},
		{"SPLITSTREAM_LOG_LEVEL", "log-level", "info", "debug, info, warn or error",
			str(func(c *Config) *string { return &c.LogLevel })},
		{"SPLITSTREAM_LOG_FORMAT", "log-format", "text", "text or json",
			str(func(c *Config) *string { return &c.LogFormat })},
		// Identity and access. The secrets are read from the environment
		// only, so they never show in --help (see secretSettings).
		{"SPLITSTREAM_JWT_SECRET", "jwt-secret", "", "HS256 key of callers' JWTs, at least 32 bytes (env only)",
			str(func(c *Config) *string { return &c.JWTSecret })},
		{"SPLITSTREAM_JWKS_URL", "jwks-url", "", "JWKS of RS256/ES256 callers' JWTs (refreshed hourly and on an unknown kid)",
			str(func(c *Config) *string { return &c.JWKSURL })},
		{"SPLITSTREAM_JWT_ISSUER", "jwt-issuer", "", "required iss of JWTs, when set",
			str(func(c *Config) *string { return &c.JWTIssuer })},
		{"SPLITSTREAM_JWT_AUDIENCE", "jwt-audience", "", "required aud of JWTs, when set",
			str(func(c *Config) *string { return &c.JWTAudience })},
		{"SPLITSTREAM_TOKEN_SECRET", "token-secret", "", "HMAC key of read-your-writes tokens, at least 32 bytes, the same on every instance (env only)",
			str(func(c *Config) *string { return &c.TokenSecret })},
		{"SPLITSTREAM_RATE_LIMIT", "rate-limit", "50", "requests per second per caller (burst twice that; admins unlimited; 0 = off)",
			func(c *Config, v string) (err error) { c.RateLimit, err = strconv.ParseFloat(v, 64); return }},
		{"SPLITSTREAM_AUTH", "auth", "on", "off makes every caller an admin (development only; logged loudly)",
			func(c *Config, v string) error {
				if v != "on" && v != "off" {
					return errors.New("not on or off")
				}
				c.AuthOff = v == "off"
				return nil
			}},
	}
}

// bindConfig adds every setting to fs, defaulting from env, and returns a
// function that parses the values into a validated Config once fs is parsed.
func bindConfig(fs *flag.FlagSet, env func(string) string) func() (Config, error) {
	vals := map[string]*string{}
	secrets := map[string]string{}
	for _, s := range settings() {
		def := s.def
		if v := env(s.env); v != "" && secretSettings[s.env] {
			secrets[s.env] = v // not a flag default: --help prints those
		} else if v != "" {
			def = v
		}
		vals[s.env] = fs.String(s.flag, def, fmt.Sprintf("%s (env %s)", s.help, s.env))
	}
	return func() (Config, error) {
		var c Config
		var errs []error
		for _, s := range settings() {
			if *vals[s.env] == "" && secrets[s.env] != "" {
				*vals[s.env] = secrets[s.env]
			}
			if err := s.set(&c, *vals[s.env]); err != nil {
				errs = append(errs, fmt.Errorf("%s (--%s): %q is not valid", s.env, s.flag, *vals[s.env]))
			}
		}
		if len(errs) == 0 {
			errs = append(errs, c.validate()...)
		}
		return c, errors.Join(errs...)
	}
}

func (c Config) validate() []error {
	var errs []error
	check := func(ok bool, format string, args ...any) {
		if !ok {
			errs = append(errs, fmt.Errorf(format, args...))
		}
	}
	for name, raw := range map[string]string{"DATABASE_URL": c.DatabaseURL, "AMQP_URL": c.AMQPURL, "ELASTICSEARCH_URL": c.ElasticsearchURL} {
		u, err := url.Parse(raw)
		check(err == nil && u.Scheme != "" && u.Host != "", "%s: %q is not a URL", name, redact(raw))
	}
	check(c.IndexPrefix != "" && c.IndexPrefix == strings.ToLower(c.IndexPrefix) && !strings.ContainsAny(c.IndexPrefix, ` "*\<|,>/?#:`),
		"SPLITSTREAM_INDEX_PREFIX: %q must be lower case with no spaces or any of \"*\\<|,>/?#:", c.IndexPrefix)
	check(c.MaxBodyBytes >= 1024, "SPLITSTREAM_MAX_BODY_BYTES: must be at least 1024")
	check(c.ComplexityLimit > 0, "SPLITSTREAM_COMPLEXITY_LIMIT: must be positive")
	check(c.ConsistencyTimeout > 0 && c.ConsistencyTimeout <= time.Minute, "SPLITSTREAM_CONSISTENCY_TIMEOUT: must be between 0 and 1m")
	check(c.SagaDeadline > 0, "SPLITSTREAM_SAGA_DEADLINE: must be positive")
	check(c.RefreshInterval > 0, "SPLITSTREAM_REFRESH_INTERVAL: must be positive")
	check(c.WSInitTimeout > 0 && c.WSKeepAlive > 0, "SPLITSTREAM_WS_INIT_TIMEOUT and SPLITSTREAM_WS_KEEPALIVE: must be positive")
	check(c.WSMaxSubscriptions > 0, "SPLITSTREAM_WS_MAX_SUBSCRIPTIONS: must be positive")
	check(c.PGMaxConns > 0, "SPLITSTREAM_PG_MAX_CONNS: must be positive")
	check(c.LogLevel == "debug" || c.LogLevel == "info" || c.LogLevel == "warn" || c.LogLevel == "error", "SPLITSTREAM_LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel)
	check(c.LogFormat == "text" || c.LogFormat == "json", "SPLITSTREAM_LOG_FORMAT: %q is not text or json", c.LogFormat)
	check(c.JWTSecret == "" || len(c.JWTSecret) >= 32, "SPLITSTREAM_JWT_SECRET: must be at least 32 bytes")
	check(c.TokenSecret == "" || len(c.TokenSecret) >= 32, "SPLITSTREAM_TOKEN_SECRET: must be at least 32 bytes")
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "", "SPLITSTREAM_JWKS_URL: %q is not an http(s) URL", c.JWKSURL)
	}
	check(c.RateLimit >= 0 && c.RateLimit <= 1e6, "SPLITSTREAM_RATE_LIMIT: must be between 0 and 1000000")
	return errs
}

// secretSettings are read from the environment only, never shown.
var secretSettings = map[string]bool{"SPLITSTREAM_JWT_SECRET": true, "SPLITSTREAM_TOKEN_SECRET": true}

// redact hides a URL's password for logs and errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	return u.Redacted()
}
