package main

import (
	"errors"
	"flag"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/ops"
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
	QueryCacheSize     int
	LogLevel           string
	LogFormat          string
	ProjectorLanes     int
	// Identity and access (see access.go).
	JWTSecret   string
	JWKSURL     string
	JWTIssuer   string
	JWTAudience string
	TokenSecret string
	RateLimit   float64
	AuthOff     bool
	Limits      Limits
	Gateway     GatewayConfig
}

// Limits is what one client may make a server do: HTTP connection limits,
// request timeouts and GraphQL document limits (settings in limitSettings).
type Limits struct {
	HTTP           ops.Limits
	QueryTimeout   time.Duration
	CommandTimeout time.Duration
	Document       graph.DocumentLimits
	WSWriteTimeout time.Duration
	WSMaxMessage   int64
	SSEMaxStreams  int
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
	return append([]setting{
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
		{"SPLITSTREAM_PPROF", "pprof", "false", "serve the Go profiler under /debug/pprof/ on the admin listener (which a command or query process running alone then opens too)",
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
		{"SPLITSTREAM_QUERY_CACHE_SIZE", "query-cache-size", "10000", "documents the query service keeps for reads by id, fresh by the projector's notices (0 = off)",
			func(c *Config, v string) (err error) { c.QueryCacheSize, err = strconv.Atoi(v); return }},
		{"SPLITSTREAM_PROJECTOR_LANES", "projector-lanes", "4", "projector lanes P (1..255), fixed for a deployment: changing it is a rebuild (docs/SCALING.md)",
			func(c *Config, v string) (err error) { c.ProjectorLanes, err = strconv.Atoi(v); return }},
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
	}, append(limitSettings(), gatewaySettings()...)...)
}

// limitSettings are the bounds on what one client may make a server do.
func limitSettings() []setting {
	dur := func(f func(c *Config) *time.Duration) func(*Config, string) error {
		return func(c *Config, v string) (err error) { *f(c), err = time.ParseDuration(v); return }
	}
	num := func(f func(c *Config) *int) func(*Config, string) error {
		return func(c *Config, v string) (err error) { *f(c), err = strconv.Atoi(v); return }
	}
	return []setting{
		{"SPLITSTREAM_HTTP_READ_HEADER_TIMEOUT", "http-read-header-timeout", "10s", "longest wait for a request's headers (slow senders are cut)",
			dur(func(c *Config) *time.Duration { return &c.Limits.HTTP.ReadHeaderTimeout })},
		{"SPLITSTREAM_HTTP_READ_TIMEOUT", "http-read-timeout", "20s", "longest wait for a whole request, body included (a trickled body is cut)",
			dur(func(c *Config) *time.Duration { return &c.Limits.HTTP.ReadTimeout })},
		{"SPLITSTREAM_HTTP_WRITE_TIMEOUT", "http-write-timeout", "60s", "longest time to answer a non-streaming request; more than the request timeouts",
			dur(func(c *Config) *time.Duration { return &c.Limits.HTTP.WriteTimeout })},
		{"SPLITSTREAM_HTTP_IDLE_TIMEOUT", "http-idle-timeout", "120s", "a keep-alive connection with no request is closed after this",
			dur(func(c *Config) *time.Duration { return &c.Limits.HTTP.IdleTimeout })},
		{"SPLITSTREAM_HTTP_MAX_HEADER_BYTES", "http-max-header-bytes", "65536", "largest request line and headers",
			num(func(c *Config) *int { return &c.Limits.HTTP.MaxHeaderBytes })},
		{"SPLITSTREAM_HTTP_MAX_CONNS", "http-max-conns", "4096", "open connections per listener; more wait to be accepted",
			num(func(c *Config) *int { return &c.Limits.HTTP.MaxConns })},
		{"SPLITSTREAM_QUERY_TIMEOUT", "query-timeout", "15s", "longest query service request (streams excepted)",
			dur(func(c *Config) *time.Duration { return &c.Limits.QueryTimeout })},
		{"SPLITSTREAM_COMMAND_TIMEOUT", "command-timeout", "30s", "longest command service request",
			dur(func(c *Config) *time.Duration { return &c.Limits.CommandTimeout })},
		{"SPLITSTREAM_GRAPHQL_MAX_TOKENS", "graphql-max-tokens", "10000", "most parser tokens in a GraphQL document",
			num(func(c *Config) *int { return &c.Limits.Document.MaxTokens })},
		{"SPLITSTREAM_GRAPHQL_MAX_FIELDS", "graphql-max-fields", "500", "most field selections in a document, fragments counted per spread",
			num(func(c *Config) *int { return &c.Limits.Document.MaxFields })},
		{"SPLITSTREAM_GRAPHQL_MAX_ALIASES", "graphql-max-aliases", "100", "most aliases in a document",
			num(func(c *Config) *int { return &c.Limits.Document.MaxAliases })},
		{"SPLITSTREAM_GRAPHQL_MAX_DEPTH", "graphql-max-depth", "15", "deepest selection nesting in a document",
			num(func(c *Config) *int { return &c.Limits.Document.MaxDepth })},
		{"SPLITSTREAM_WS_WRITE_TIMEOUT", "ws-write-timeout", "10s", "longest a WebSocket or SSE write may block; a client that stops reading is dropped",
			dur(func(c *Config) *time.Duration { return &c.Limits.WSWriteTimeout })},
		{"SPLITSTREAM_WS_MAX_MESSAGE_BYTES", "ws-max-message-bytes", "262144", "largest WebSocket message from a client; larger closes the socket (1009)",
			func(c *Config, v string) (err error) {
				c.Limits.WSMaxMessage, err = strconv.ParseInt(v, 10, 64)
				return
			}},
		{"SPLITSTREAM_SSE_MAX_STREAMS", "sse-max-streams", "1000", "SSE subscriptions one query instance holds at once; more get 429",
			num(func(c *Config) *int { return &c.Limits.SSEMaxStreams })},
	}
}

func (l Limits) validate(check func(ok bool, format string, args ...any)) {
	h := l.HTTP
	check(h.ReadHeaderTimeout > 0 && h.ReadTimeout >= h.ReadHeaderTimeout, "SPLITSTREAM_HTTP_READ_HEADER_TIMEOUT and SPLITSTREAM_HTTP_READ_TIMEOUT: must be positive, the header timeout no longer")
	check(l.QueryTimeout > 0 && l.CommandTimeout > 0, "SPLITSTREAM_QUERY_TIMEOUT and SPLITSTREAM_COMMAND_TIMEOUT: must be positive")
	check(h.WriteTimeout > max(l.QueryTimeout, l.CommandTimeout), "SPLITSTREAM_HTTP_WRITE_TIMEOUT: must be longer than the query and command timeouts")
	check(h.IdleTimeout > 0, "SPLITSTREAM_HTTP_IDLE_TIMEOUT: must be positive")
	check(h.MaxHeaderBytes >= 4096, "SPLITSTREAM_HTTP_MAX_HEADER_BYTES: must be at least 4096")
	check(h.MaxConns > 0, "SPLITSTREAM_HTTP_MAX_CONNS: must be positive")
	d := l.Document
	check(d.MaxTokens > 0 && d.MaxFields > 0 && d.MaxAliases >= 0 && d.MaxDepth > 0, "SPLITSTREAM_GRAPHQL_MAX_*: must be positive")
	check(l.WSWriteTimeout > 0, "SPLITSTREAM_WS_WRITE_TIMEOUT: must be positive")
	check(l.WSMaxMessage >= 1024, "SPLITSTREAM_WS_MAX_MESSAGE_BYTES: must be at least 1024")
	check(l.SSEMaxStreams > 0, "SPLITSTREAM_SSE_MAX_STREAMS: must be positive")
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
	for name, raw := range map[string]string{"DATABASE_URL": c.DatabaseURL, "AMQP_URL": c.AMQPURL, "ELASTICSEARCH_URL": c.ElasticsearchURL,
		"SPLITSTREAM_COMMAND_URL": c.Gateway.CommandURL, "SPLITSTREAM_QUERY_URL": c.Gateway.QueryURL} {
		if raw == "" && strings.HasSuffix(name, "_URL") && strings.HasPrefix(name, "SPLITSTREAM_") {
			continue // the gateway's upstreams default to this host's services
		}
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
	check(c.QueryCacheSize >= 0 && c.QueryCacheSize <= 10_000_000, "SPLITSTREAM_QUERY_CACHE_SIZE: must be between 0 and 10000000")
	check(c.PGMaxConns > 0, "SPLITSTREAM_PG_MAX_CONNS: must be positive")
	check(c.ProjectorLanes >= 1 && c.ProjectorLanes <= 255, "SPLITSTREAM_PROJECTOR_LANES: must be 1..255")
	check(c.LogLevel == "debug" || c.LogLevel == "info" || c.LogLevel == "warn" || c.LogLevel == "error", "SPLITSTREAM_LOG_LEVEL: %q is not debug, info, warn or error", c.LogLevel)
	check(c.LogFormat == "text" || c.LogFormat == "json", "SPLITSTREAM_LOG_FORMAT: %q is not text or json", c.LogFormat)
	check(c.JWTSecret == "" || len(c.JWTSecret) >= 32, "SPLITSTREAM_JWT_SECRET: must be at least 32 bytes")
	check(c.TokenSecret == "" || len(c.TokenSecret) >= 32, "SPLITSTREAM_TOKEN_SECRET: must be at least 32 bytes")
	if c.JWKSURL != "" {
		u, err := url.Parse(c.JWKSURL)
		check(err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "", "SPLITSTREAM_JWKS_URL: %q is not an http(s) URL", c.JWKSURL)
	}
	check(c.RateLimit >= 0 && c.RateLimit <= 1e6, "SPLITSTREAM_RATE_LIMIT: must be between 0 and 1000000")
	check(c.ConsistencyTimeout < c.Limits.QueryTimeout, "SPLITSTREAM_CONSISTENCY_TIMEOUT: must be shorter than SPLITSTREAM_QUERY_TIMEOUT")
	c.Limits.validate(check)
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
