package write_test

import (
	"os"
	"testing"

	"github.com/vektah/gqlparser/v2"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/splitstream/splitstream/command"
)

// Every command a client sends is named after the mutation that sends it,
// and every mutation that runs a command has one: the name is the
// command's idempotency scope and metrics label.
func TestClientCommandsAreNamedAfterTheirMutations(t *testing.T) {
	src, err := os.ReadFile("schema.graphqls")
	if err != nil {
		t.Fatal(err)
	}
	schema, gerr := gqlparser.LoadSchema(&ast.Source{Name: "schema.graphqls", Input: string(src)})
	if gerr != nil {
		t.Fatal(gerr)
	}
	client := []command.Namer{
		command.CreateProduct{}, command.RenameProduct{}, command.ChangeProductDescription{},
		command.ChangeProductPrice{}, command.RestockProduct{}, command.DiscontinueProduct{},
		command.AddReview{}, command.RemoveReview{}, command.PlaceOrder{}, command.CancelOrder{},
		command.RegisterCustomer{}, command.RenameCustomer{}, command.ChangeCustomerAddress{},
	}
	named := map[string]bool{}
	for _, c := range client {
		name := string(c.CommandName())
		named[name] = true
		if schema.Mutation.Fields.ForName(name) == nil {
			t.Errorf("%T is named %q, which is no mutation of the write schema", c, name)
		}
	}
	for _, f := range schema.Mutation.Fields {
		if !named[f.Name] {
			t.Errorf("mutation %s has no command named after it", f.Name)
		}
	}
}
