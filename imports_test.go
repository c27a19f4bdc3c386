package splitstream_test

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/splitstream/splitstream/"

var drivers = []string{
	"github.com/jackc/pgx",
	"github.com/rabbitmq/amqp091-go",
	"github.com/elastic/go-elasticsearch",
	"github.com/99designs/gqlgen",
}

// deps lists every package pkg imports, directly or not.
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+pkg).CombinedOutput()
	if err != nil {
		t.Fatalf("go list %s: %v\n%s", pkg, err, out)
	}
	return strings.Fields(string(out))
}

// Domain packages import no driver and no gqlgen: imports point inward.
func TestDomainImportsNoDriver(t *testing.T) {
	for _, pkg := range []string{"event", "command", "query", "projector", "saga", "relay"} {
		for _, d := range deps(t, pkg) {
			for _, bad := range drivers {
				if strings.HasPrefix(d, bad) {
					t.Errorf("%s imports %s", pkg, d)
				}
			}
		}
	}
}

// The query service's packages never reach Postgres, even indirectly.
func TestQuerySideNeverReachesPostgres(t *testing.T) {
	for _, pkg := range []string{"query", "graph/read", "elastic"} {
		for _, d := range deps(t, pkg) {
			if strings.HasPrefix(d, "github.com/jackc/") || d == module+"postgres" {
				t.Errorf("%s imports %s", pkg, d)
			}
		}
	}
}

// Adapters do not import each other.
func TestAdaptersStandAlone(t *testing.T) {
	adapters := []string{"postgres", "rabbitmq", "elastic"}
	for _, a := range adapters {
		for _, d := range deps(t, a) {
			for _, other := range adapters {
				if other != a && d == module+other {
					t.Errorf("%s imports %s", a, other)
				}
			}
		}
	}
}
