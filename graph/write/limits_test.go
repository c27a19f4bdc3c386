package write_test

import (
	"os"
	"strings"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/splitstream/splitstream/command"
)

// The write schema states the same limits as the code that enforces them,
// and every field of every mutation's input has one.
func TestSchemaDescriptionsStateTheLimits(t *testing.T) {
	src, err := os.ReadFile("schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	schema, gqlErr := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(src)})
	if gqlErr != nil {
		t.Fatal(gqlErr)
	}
	limited := map[string]bool{}
	for _, l := range command.Limits() {
		for _, f := range l.Fields {
			limited[f] = true
			typ, field, _ := strings.Cut(f, ".")
			def := schema.Types[typ]
			if def == nil || def.Fields.ForName(field) == nil {
				t.Errorf("limit %q names %s, which the schema does not have", l.Doc, f)
				continue
			}
			if desc := def.Fields.ForName(field).Description; !strings.Contains(desc, l.Doc) {
				t.Errorf("%s is described as %q; want it to state %q", f, desc, l.Doc)
			}
		}
	}
	// Every scalar input field reachable from a mutation is bounded.
	seen := map[string]bool{}
	var walk func(typ *ast.Type)
	walk = func(typ *ast.Type) {
		for typ.Elem != nil {
			typ = typ.Elem
		}
		def := schema.Types[typ.NamedType]
		if def.Kind != ast.InputObject || seen[def.Name] {
			return
		}
		seen[def.Name] = true
		for _, f := range def.Fields {
			if schema.Types[elemName(f.Type)].Kind == ast.InputObject {
				walk(f.Type)
				if f.Type.Elem == nil {
					continue // an input object bounded by its own fields
				}
			}
			if !limited[def.Name+"."+f.Name] {
				t.Errorf("%s.%s has no limit in command.Limits", def.Name, f.Name)
			}
		}
	}
	for _, m := range schema.Mutation.Fields {
		for _, a := range m.Arguments {
			walk(a.Type)
		}
	}
	if len(seen) != 14 {
		t.Errorf("walked %d input types, want the 14 of the write schema", len(seen))
	}
}

func elemName(typ *ast.Type) string {
	for typ.Elem != nil {
		typ = typ.Elem
	}
	return typ.NamedType
}
