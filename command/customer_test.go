package command_test

import (
	"strings"
	"testing"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
)

func TestDecideCustomer(t *testing.T) {
	registered := event.CustomerRegistered{DisplayName: "Ada", Email: "ada@example.com", ShippingAddress: "1 Loop Rd"}
	register := func(edit func(*command.RegisterCustomer)) command.RegisterCustomer {
		c := command.RegisterCustomer{ID: "c1", DisplayName: "Ada", Email: "ada@example.com", ShippingAddress: "1 Loop Rd"}
		if edit != nil {
			edit(&c)
		}
		return c
	}
	cases := []decideCase[command.CustomerCommand]{
		// RegisterCustomer
		{name: "register", when: register(nil), then: past(registered)},
		{name: "register trims", when: register(func(c *command.RegisterCustomer) { c.DisplayName, c.ShippingAddress = " Ada ", "1 Loop Rd\n" }),
			then: past(registered)},
		{name: "register twice", given: past(registered), when: register(nil), err: conflict(1, "customer already registered")},
		{name: "register without id", when: register(func(c *command.RegisterCustomer) { c.ID = "" }), err: invalid("id")},
		{name: "register id 129 bytes", when: register(func(c *command.RegisterCustomer) { c.ID = strings.Repeat("i", 129) }), err: invalid("id")},
		{name: "register blank name", when: register(func(c *command.RegisterCustomer) { c.DisplayName = " " }), err: invalid("displayName")},
		{name: "register name 200 runes", when: register(func(c *command.RegisterCustomer) { c.DisplayName = text(200) }),
			then: past(event.CustomerRegistered{DisplayName: text(200), Email: "ada@example.com", ShippingAddress: "1 Loop Rd"})},
		{name: "register name 201 runes", when: register(func(c *command.RegisterCustomer) { c.DisplayName = text(201) }), err: invalid("displayName")},
		{name: "register bad email", when: register(func(c *command.RegisterCustomer) { c.Email = "ada" }), err: invalid("email")},
		{name: "register email with a name", when: register(func(c *command.RegisterCustomer) { c.Email = "Ada <ada@example.com>" }), err: invalid("email")},
		{name: "register email 255 bytes", when: register(func(c *command.RegisterCustomer) { c.Email = strings.Repeat("a", 243) + "@example.com" }),
			err: invalid("email")},
		{name: "register without address", when: register(func(c *command.RegisterCustomer) { c.ShippingAddress = "" }), err: invalid("shippingAddress")},
		{name: "register address 1001 runes", when: register(func(c *command.RegisterCustomer) { c.ShippingAddress = text(1001) }),
			err: invalid("shippingAddress")},

		// RenameCustomer
		{name: "rename", given: past(registered), when: command.RenameCustomer{DisplayName: "Ada L."},
			then: past(event.CustomerRenamed{DisplayName: "Ada L."})},
		{name: "rename to the same name", given: past(registered), when: command.RenameCustomer{DisplayName: " Ada"}},
		{name: "rename blank", given: past(registered), when: command.RenameCustomer{DisplayName: ""}, err: invalid("displayName")},
		{name: "rename missing", when: command.RenameCustomer{DisplayName: "Ada"}, err: notFound("customer c1 not found")},

		// ChangeCustomerAddress
		{name: "move", given: past(registered), when: command.ChangeCustomerAddress{ShippingAddress: "2 Bay St"},
			then: past(event.CustomerAddressChanged{ShippingAddress: "2 Bay St"})},
		{name: "move to the same address", given: past(registered), when: command.ChangeCustomerAddress{ShippingAddress: "1 Loop Rd"}},
		{name: "move too far", given: past(registered), when: command.ChangeCustomerAddress{ShippingAddress: text(1001)},
			err: invalid("shippingAddress")},
		{name: "move missing", when: command.ChangeCustomerAddress{ShippingAddress: "2 Bay St"}, err: notFound("customer c1 not found")},
	}
	runDecideCases(t, "c1", cases, command.FoldCustomer, command.DecideCustomer)
}

func TestFoldCustomer(t *testing.T) {
	c := command.FoldCustomer("c1", past(
		event.CustomerRegistered{DisplayName: "Ada", Email: "ada@example.com", ShippingAddress: "1 Loop Rd"},
		event.CustomerRenamed{DisplayName: "Ada L."},
		event.CustomerAddressChanged{ShippingAddress: "2 Bay St"},
	))
	want := command.Customer{ID: "c1", Version: 3, Exists: true, DisplayName: "Ada L.", Email: "ada@example.com", ShippingAddress: "2 Bay St"}
	if c != want {
		t.Fatalf("got %+v, want %+v", c, want)
	}
}
