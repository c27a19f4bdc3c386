package main

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strconv"

	"github.com/splitstream/splitstream/gateway"
	"github.com/splitstream/splitstream/graph"
	"github.com/splitstream/splitstream/ops"
)

const roleGateway = "gateway"

// GatewayConfig is the gateway's own settings (gatewaySettings); it shares
// every other one (identity, limits) with the services.
type GatewayConfig struct {
	Addr          string
	CommandURL    string
	QueryURL      string
	PersistedOnly bool
	PersistedFile string
}

func gatewaySettings() []setting {
	str := func(f func(c *Config) *string) func(*Config, string) error {
		return func(c *Config, v string) error { *f(c) = v; return nil }
	}
	return []setting{
		{"SPLITSTREAM_GATEWAY_ADDR", "gateway-addr", ":8000", "gateway listen address: one GraphQL endpoint over both services",
			str(func(c *Config) *string { return &c.Gateway.Addr })},
		{"SPLITSTREAM_COMMAND_URL", "gateway-command-url", "", "the command service as the gateway reaches it (default: this host, SPLITSTREAM_COMMAND_ADDR's port)",
			str(func(c *Config) *string { return &c.Gateway.CommandURL })},
		{"SPLITSTREAM_QUERY_URL", "gateway-query-url", "", "the query service as the gateway reaches it (default: this host, SPLITSTREAM_QUERY_ADDR's port)",
			str(func(c *Config) *string { return &c.Gateway.QueryURL })},
		{"SPLITSTREAM_PERSISTED_ONLY", "persisted-only", "false", "the gateway runs only the operations in SPLITSTREAM_PERSISTED_FILE",
			func(c *Config, v string) (err error) { c.Gateway.PersistedOnly, err = strconv.ParseBool(v); return }},
		{"SPLITSTREAM_PERSISTED_FILE", "persisted-file", "", "allowed operations: an Apollo persisted query manifest, or a JSON object of sha256 to document",
			str(func(c *Config) *string { return &c.Gateway.PersistedFile })},
	}
}

// gatewayRole serves the union schema on SPLITSTREAM_GATEWAY_ADDR and
// forwards to the services. Its /readyz asks nothing of them: with one
// upstream down, the other side keeps working through it.
func (a *app) gatewayRole(ctx context.Context) (role, error) {
	acc, err := a.access(ctx)
	if err != nil {
		return role{}, err
	}
	gc := a.cfg.Gateway
	var allow *gateway.AllowList
	switch {
	case gc.PersistedOnly && gc.PersistedFile == "":
		return role{}, errors.New("SPLITSTREAM_PERSISTED_ONLY is on but SPLITSTREAM_PERSISTED_FILE names no file")
	case gc.PersistedOnly:
		if allow, err = gateway.LoadAllowList(gc.PersistedFile); err != nil {
			return role{}, err
		}
		a.log.Info("gateway: persisted operations only", "operations", allow.Len(), "file", gc.PersistedFile)
	}
	gw, err := gateway.New(gateway.Options{
		CommandURL: localURL(gc.CommandURL, a.cfg.CommandAddr), QueryURL: localURL(gc.QueryURL, a.cfg.QueryAddr), Log: a.log,
		Document: a.cfg.Limits.Document, ComplexityLimit: a.cfg.ComplexityLimit, Introspection: a.cfg.Introspection,
		WebSocket: graph.WebSocketOptions{
			InitTimeout: a.cfg.WSInitTimeout, KeepAlive: a.cfg.WSKeepAlive, MaxSubscriptions: a.cfg.WSMaxSubscriptions,
			Origins: origins(a.cfg.AllowedOrigins), Authenticate: acc.verifier.ConnectionInit,
			WriteTimeout: a.cfg.Limits.WSWriteTimeout, MaxMessageBytes: a.cfg.Limits.WSMaxMessage,
		},
		KeepAlive:    a.cfg.WSKeepAlive,
		QueryTimeout: a.cfg.Limits.QueryTimeout, CommandTimeout: a.cfg.Limits.CommandTimeout,
		Persisted: allow,
	})
	if err != nil {
		return role{}, err
	}
	metrics := ops.NewHTTPMetrics(a.reg, roleGateway)
	return role{
		name:   roleGateway,
		addr:   gc.Addr,
		checks: acc.checks(),
		routes: func(mux *http.ServeMux) {
			mux.Handle("/graphql", metrics.Wrap("/graphql", acc.middleware(graph.Middleware(a.cfg.MaxBodyBytes, graph.Limit(graph.StreamLimits{
				Timeout: max(a.cfg.Limits.QueryTimeout, a.cfg.Limits.CommandTimeout), WriteTimeout: a.cfg.Limits.WSWriteTimeout, MaxStreams: a.cfg.Limits.SSEMaxStreams,
			}, gw)))))
			playground := graph.Playground(a.playground(graph.PlaygroundConfig{
				Title: "Splitstream", Endpoint: "/graphql", Subscriptions: true, Tabs: gatewayTabs(), Hint: gatewayHint,
			}, devAdminSubject, true))
			mux.Handle("GET /{$}", playground)
			mux.Handle("GET /playground/", playground)
		},
		colocate: func(handlers map[string]http.Handler) error {
			return a.colocateGateway(gw, handlers)
		},
	}, nil
}

// colocateGateway has the gateway call a service of this process in
// process, rather than over loopback HTTP, when its URL is the default
// (unset: the local service); a configured URL is always used as given.
// handlers are the services' in-process handlers (role.inProcess).
func (a *app) colocateGateway(gw *gateway.Gateway, handlers map[string]http.Handler) error {
	for _, up := range []struct {
		name, url string
		role      string
	}{{"command", a.cfg.Gateway.CommandURL, roleCommand}, {"query", a.cfg.Gateway.QueryURL, roleQuery}} {
		h, ok := handlers[up.role]
		if !ok || up.url != "" {
			continue
		}
		if err := gw.Serve(up.name, h); err != nil {
			return err
		}
		a.log.Info("gateway: calls the service in process", "upstream", up.name)
	}
	return nil
}

// localURL is url, or when unset the service listening on addr on this host.
func localURL(url, addr string) string {
	if url != "" {
		return url
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "http://" + addr
	}
	return "http://127.0.0.1:" + port
}

// gatewayTabs are both services' example tabs: on the gateway every one of
// them runs from the one page.
func gatewayTabs() []graph.PlaygroundTab {
	return append(graph.CommandTabs(), graph.QueryTabs()...)
}

const gatewayHint = `One endpoint for everything: mutations go to the command service, queries and subscriptions to the query service. ` +
	`Mutations, orders and productHistory need a token: {"Authorization": "Bearer <token>"} under Headers ` +
	`(make run prints an admin and a customer token; bin/splitstream token --sub ID [--admin] mints more).`
