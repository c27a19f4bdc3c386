package main

import (
	"net"
	"net/url"
	"os"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
}

type composeService struct {
	Image       string            `yaml:"image"`
	Build       any               `yaml:"build"`
	Command     []string          `yaml:"command"`
	Ports       []string          `yaml:"ports"`
	Environment map[string]string `yaml:"environment"`
	DependsOn   map[string]struct {
		Condition string `yaml:"condition"`
	} `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
}

// The compose file must give Docker users the same servers, ports and
// settings as the code's defaults.
func TestComposeMatchesDefaults(t *testing.T) {
	raw, err := os.ReadFile("../../docker-compose.yml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(raw, &c); err != nil {
		t.Fatalf("docker-compose.yml: %v", err)
	}
	defaults := map[string]string{}
	for _, s := range settings() {
		defaults[s.env] = s.def
	}
	checkComposeServers(t, c, defaults)
	checkComposeRoles(t, c, defaults)
}

// checkComposeServers wants the servers on official images, published on
// the default ports, with health checks.
func checkComposeServers(t *testing.T, c composeFile, defaults map[string]string) {
	port := func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatalf("default %q: %v", raw, err)
		}
		return u.Port()
	}
	servers := map[string]struct{ image, port string }{
		"postgres":      {"postgres:", port(defaults["DATABASE_URL"])},
		"rabbitmq":      {"rabbitmq:", port(defaults["AMQP_URL"])},
		"elasticsearch": {"docker.elastic.co/elasticsearch/elasticsearch:8.", port(defaults["ELASTICSEARCH_URL"])},
	}
	for name, want := range servers {
		s, ok := c.Services[name]
		if !ok {
			t.Errorf("service %s missing", name)
			continue
		}
		if !strings.HasPrefix(s.Image, want.image) {
			t.Errorf("%s: image %q, want an official %s image", name, s.Image, want.image)
		}
		if !contains(s.Ports, want.port+":"+want.port) {
			t.Errorf("%s: ports %v do not publish the default port %s", name, s.Ports, want.port)
		}
		if s.Healthcheck == nil || len(s.Healthcheck.Test) == 0 {
			t.Errorf("%s: no health check", name)
		}
	}
	if c.Services["elasticsearch"].Environment["xpack.security.enabled"] != "false" ||
		c.Services["elasticsearch"].Environment["discovery.type"] != "single-node" {
		t.Error("elasticsearch: want single-node with security off")
	}
	if !strings.Contains(c.Services["elasticsearch"].Environment["ES_JAVA_OPTS"], "-Xmx") {
		t.Error("elasticsearch: heap is not bounded")
	}
}

// checkComposeRoles wants every role built from the Dockerfile, run as its
// subcommand, and pointed at the servers with the default settings.
func checkComposeRoles(t *testing.T, c composeFile, defaults map[string]string) {
	addrPort := func(addr string) string {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("address %q: %v", addr, err)
		}
		return p
	}
	adminPort := addrPort(defaults["SPLITSTREAM_ADMIN_ADDR"])
	roles := map[string]string{ // role -> its published port, from the defaults
		"command":   addrPort(defaults["SPLITSTREAM_COMMAND_ADDR"]),
		"query":     addrPort(defaults["SPLITSTREAM_QUERY_ADDR"]),
		"projector": adminPort,
		"relay":     "",
		"saga":      "",
		"gateway":   addrPort(defaults["SPLITSTREAM_GATEWAY_ADDR"]),
	}
	known := map[string]bool{}
	for _, s := range subcommands() {
		known[s.name] = true
	}
	for role, p := range roles {
		s, ok := c.Services[role]
		if !ok {
			t.Errorf("service %s missing", role)
			continue
		}
		checkComposeRole(t, role, p, s, defaults, adminPort, known)
	}
}

// checkComposeRole checks one role's service; p is the port it publishes, if any.
func checkComposeRole(t *testing.T, role, p string, s composeService, defaults map[string]string, adminPort string, known map[string]bool) {
	if s.Build == nil {
		t.Errorf("%s: not built from the Dockerfile", role)
	}
	if len(s.Command) != 1 || !known[s.Command[0]] || s.Command[0] != role {
		t.Errorf("%s: command %v, want [%s]", role, s.Command, role)
	}
	if p != "" && !contains(s.Ports, p+":"+p) {
		t.Errorf("%s: ports %v do not publish %s", role, s.Ports, p)
	}
	for _, server := range []string{"postgres", "rabbitmq", "elasticsearch"} {
		if s.DependsOn[server].Condition != "service_healthy" {
			t.Errorf("%s: depends_on %s is %q, want service_healthy", role, server, s.DependsOn[server].Condition)
		}
	}
	checkComposeURLs(t, role, s, defaults)
	if s.Environment["SPLITSTREAM_INDEX_PREFIX"] != defaults["SPLITSTREAM_INDEX_PREFIX"] {
		t.Errorf("%s: SPLITSTREAM_INDEX_PREFIX = %q, want %q", role, s.Environment["SPLITSTREAM_INDEX_PREFIX"], defaults["SPLITSTREAM_INDEX_PREFIX"])
	}
	// The admin listener's loopback default is unreachable from outside
	// a container: compose must say so on purpose, on the default port.
	if role == "projector" || role == "relay" || role == "saga" {
		if got := s.Environment["SPLITSTREAM_ADMIN_ADDR"]; got != "0.0.0.0:"+adminPort {
			t.Errorf("%s: SPLITSTREAM_ADMIN_ADDR = %q, want 0.0.0.0:%s", role, got, adminPort)
		}
	}
	for env := range s.Environment {
		if _, ok := defaults[env]; !ok {
			t.Errorf("%s: %s is not a setting the binary reads", role, env)
		}
	}
}

// checkComposeURLs wants the server URLs of a role to be the defaults with
// the server's service name as host.
func checkComposeURLs(t *testing.T, role string, s composeService, defaults map[string]string) {
	for _, env := range []string{"DATABASE_URL", "AMQP_URL", "ELASTICSEARCH_URL"} {
		got, err := url.Parse(s.Environment[env])
		if err != nil || s.Environment[env] == "" {
			t.Errorf("%s: %s missing or bad", role, env)
			continue
		}
		def, _ := url.Parse(defaults[env])
		server := map[string]string{"DATABASE_URL": "postgres", "AMQP_URL": "rabbitmq", "ELASTICSEARCH_URL": "elasticsearch"}[env]
		if got.Hostname() != server || got.Port() != def.Port() || got.Path != def.Path || got.Scheme != def.Scheme ||
			got.User.String() != def.User.String() || got.RawQuery != def.RawQuery {
			t.Errorf("%s: %s = %s, want the default %s with host %s", role, env, got.Redacted(), def.Redacted(), server)
		}
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
