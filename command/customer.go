package command

import (
	"context"
	"fmt"
	"net/mail"
	"strings"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/event"
)

// Customer is the state of a customer stream, whose id is the customer's
// id (the sub of its tokens).
type Customer struct {
	ID              string
	Version         int
	Exists          bool
	DisplayName     string
	Email           string
	ShippingAddress string
}

// CustomerCommand is a command on a customer. Commands are passed as values.
type CustomerCommand interface {
	isCustomerCommand()
	Namer
	// Validate checks the command's input alone, before anything is loaded.
	Validate() error
}

type (
	// RegisterCustomer registers customer ID; a customer registers itself.
	RegisterCustomer struct {
		ID              string
		DisplayName     string
		Email           string
		ShippingAddress string
	}
	RenameCustomer        struct{ DisplayName string }
	ChangeCustomerAddress struct{ ShippingAddress string }
)

func (RegisterCustomer) isCustomerCommand()      {}
func (RenameCustomer) isCustomerCommand()        {}
func (ChangeCustomerAddress) isCustomerCommand() {}

func (RegisterCustomer) CommandName() Name      { return "registerCustomer" }
func (RenameCustomer) CommandName() Name        { return "renameCustomer" }
func (ChangeCustomerAddress) CommandName() Name { return "changeCustomerAddress" }

// Validate checks the input's limits (limits.go).
func (c RegisterCustomer) Validate() error {
	if err := checkID("id", c.ID); err != nil {
		return err
	}
	if _, err := requiredText("displayName", c.DisplayName, maxNameRunes); err != nil {
		return err
	}
	if err := checkEmail("email", c.Email); err != nil {
		return err
	}
	_, err := requiredText("shippingAddress", c.ShippingAddress, maxAddressRunes)
	return err
}

// Validate checks the input's limits (limits.go).
func (c RenameCustomer) Validate() error {
	_, err := requiredText("displayName", c.DisplayName, maxNameRunes)
	return err
}

// Validate checks the input's limits (limits.go).
func (c ChangeCustomerAddress) Validate() error {
	_, err := requiredText("shippingAddress", c.ShippingAddress, maxAddressRunes)
	return err
}

// checkEmail wants one plain address (no display name) of at most
// maxEmailBytes.
func checkEmail(field, s string) error {
	if len(s) > maxEmailBytes {
		return splitstream.Invalid(field, "%s must be at most %d bytes, got %d", field, maxEmailBytes, len(s))
	}
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name != "" || a.Address != s {
		return splitstream.Invalid(field, "%s is not an email address", field)
	}
	return nil
}

// CustomerFoldVersion names the customer fold for snapshots; bump it
// whenever foldEvent or Customer's shape changes.
const CustomerFoldVersion = 1

// FoldCustomer rebuilds a customer from its history.
func FoldCustomer(id string, history []event.Payload) Customer {
	return fold(Customer{ID: id}, history)
}

func (c Customer) foldEvent(e event.Payload) Customer {
	c.Version++
	switch e := e.(type) {
	case event.CustomerRegistered:
		c.Exists = true
		c.DisplayName, c.Email, c.ShippingAddress = e.DisplayName, e.Email, e.ShippingAddress
	case event.CustomerRenamed:
		c.DisplayName = e.DisplayName
	case event.CustomerAddressChanged:
		c.ShippingAddress = e.ShippingAddress
	}
	return c
}

// DecideCustomer returns the events cmd causes on c, or a
// *splitstream.Error saying why it is refused. A change that changes
// nothing appends nothing.
func DecideCustomer(c Customer, cmd CustomerCommand) ([]event.Payload, error) {
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	if _, ok := cmd.(RegisterCustomer); !ok && !c.Exists {
		return nil, splitstream.NotFound("customer %s not found", c.ID)
	}
	switch cmd := cmd.(type) {
	case RegisterCustomer:
		if c.Exists {
			return nil, splitstream.Conflict(c.Version, "customer already registered")
		}
		return []event.Payload{event.CustomerRegistered{DisplayName: strings.TrimSpace(cmd.DisplayName),
			Email: cmd.Email, ShippingAddress: strings.TrimSpace(cmd.ShippingAddress)}}, nil
	case RenameCustomer:
		if name := strings.TrimSpace(cmd.DisplayName); name != c.DisplayName {
			return []event.Payload{event.CustomerRenamed{DisplayName: name}}, nil
		}
		return nil, nil
	case ChangeCustomerAddress:
		if addr := strings.TrimSpace(cmd.ShippingAddress); addr != c.ShippingAddress {
			return []event.Payload{event.CustomerAddressChanged{ShippingAddress: addr}}, nil
		}
		return nil, nil
	default:
		return nil, fmt.Errorf("decide customer %s: unknown command %T", c.ID, cmd)
	}
}

// RegisterCustomer registers the customer c.ID: the caller itself, unless
// an admin registers someone.
func (s *Service) RegisterCustomer(ctx context.Context, m Meta, c RegisterCustomer) (Result, error) {
	return s.customer(ctx, c.ID, true, m, c, c)
}

// ChangeCustomer runs any other customer command on customer id, for that
// customer or an admin.
func (s *Service) ChangeCustomer(ctx context.Context, id string, m Meta, c CustomerCommand) (Result, error) {
	return s.customer(ctx, id, false, m, c, struct {
		ID  string
		Cmd CustomerCommand
	}{id, c})
}

func (s *Service) customer(ctx context.Context, id string, fresh bool, m Meta, c CustomerCommand, input any) (Result, error) {
	name := c.CommandName()
	if err := s.admit(ctx, name, &m); err != nil {
		return Result{}, err
	}
	if err := s.owns(ctx, name, id); err != nil {
		return Result{}, err
	}
	st := Stream{ID: id, Type: event.StreamCustomer}
	return s.change(ctx, name, st, fresh, m, c, CustomerFoldVersion, input,
		func(snap *Snapshot, h []event.Envelope) (Decision, error) {
			cu, err := restore(Customer{ID: id}, event.StreamCustomer, snap, h)
			if err != nil {
				return Decision{}, err
			}
			return decision(cu, DecideCustomer)(c)
		})
}
