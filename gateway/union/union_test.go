package union

import (
	"strings"
	"testing"
)

func TestMergeTakesEachSidesRoots(t *testing.T) {
	read := Side{Name: "read", Roots: []string{"Query", "Subscription"}, Source: []byte(`
type Query { item(id: ID!): Item }
type Subscription { itemChanged(id: ID!): Item! }
"An item."
type Item { id: ID! name: String! }`)}
	write := Side{Name: "write", Roots: []string{"Mutation"}, Source: []byte(`
type Query { version: String! }
type Mutation { rename(id: ID!, name: String!): Result! }
type Result { id: ID! }
"An item."
type Item { id: ID! name: String! }`)}
	out, err := MergeSchemas(read, write)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"item(id: ID!): Item", "itemChanged(id: ID!)", "rename(id: ID!, name: String!)", "type Result"} {
		if !strings.Contains(s, want) {
			t.Errorf("merged schema lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "version") {
		t.Errorf("the write side's Query is in the union:\n%s", s)
	}
	if strings.Count(s, "type Item") != 1 {
		t.Errorf("the shared type is not defined once:\n%s", s)
	}
}

func TestMergeRefusesATypeDefinedTwoWays(t *testing.T) {
	read := Side{Name: "read", Roots: []string{"Query"}, Source: []byte(`type Query { item: Item } type Item { id: ID! name: String! }`)}
	for name, other := range map[string]string{
		"a field less":       `type Mutation { m: Item } type Item { id: ID! }`,
		"another field type": `type Mutation { m: Item } type Item { id: ID! name: String }`,
		"another kind":       `type Mutation { m: ID } input Item { id: ID! name: String! }`,
	} {
		_, err := MergeSchemas(read, Side{Name: "write", Roots: []string{"Mutation"}, Source: []byte(other)})
		if err == nil || !strings.Contains(err.Error(), "type Item is defined differently") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
