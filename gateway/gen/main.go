// Command gen writes the gateway's schema (gateway/schema.graphqls), the
// union of the read and write schemas; run by go generate.
package main

import (
	"fmt"
	"os"

	"github.com/splitstream/splitstream/gateway/union"
)

func main() {
	read, err := os.ReadFile("../graph/read/schema.graphqls")
	check(err)
	write, err := os.ReadFile("../graph/write/schema.graphqls")
	check(err)
	out, err := union.MergeSchemas(
		union.Side{Name: "read", Source: read, Roots: []string{"Query", "Subscription"}},
		union.Side{Name: "write", Source: write, Roots: []string{"Mutation"}},
	)
	check(err)
	check(os.WriteFile("schema.graphqls", out, 0o644))
}

func check(err error) {
	if err != nil {
		fmt.Fprintln(os.Stderr, "gateway/gen:", err)
		os.Exit(1)
	}
}
