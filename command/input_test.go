package command

import (
	"context"
	"testing"

	"github.com/splitstream/splitstream/event"
)

// recordingStore keeps the last change the service asked for, without
// deciding it.
type recordingStore struct{ last Change }

func (r *recordingStore) LoadSince(context.Context, string, int) (*Snapshot, []event.Envelope, error) {
	return nil, nil, nil
}

func (r *recordingStore) Change(_ context.Context, c Change) (Result, error) {
	r.last = c
	return Result{ID: c.Stream.ID}, nil
}

// Every mutation's input reaches the store as the command named after its
// mutation, on the stream it names, with its command id and (when it has
// one) its expected version: what the hand-written resolvers used to pass.
func TestInputsDispatchTheirCommand(t *testing.T) {
	store := &recordingStore{}
	svc, err := NewService(store)
	if err != nil {
		t.Fatal(err)
	}
	id, v := "cmd-1", 3
	once, versioned := Once{CommandID: &id}, Versioned{CommandID: &id, ExpectedVersion: &v}
	cases := []struct {
		in       Input
		mutation Name
		stream   string // "" for a stream the service names
	}{
		{CreateProductInput{Name: "Kettle", Category: "kitchen", PriceCents: 1, Currency: "EUR", Once: once}, "createProduct", ""},
		{RenameProductInput{ID: "p1", Name: "Mug", Versioned: versioned}, "renameProduct", "p1"},
		{ChangeProductDescriptionInput{ID: "p1", Description: "d", Versioned: versioned}, "changeProductDescription", "p1"},
		{ChangeProductPriceInput{ID: "p1", PriceCents: 2, Versioned: versioned}, "changeProductPrice", "p1"},
		{RestockProductInput{ID: "p1", Quantity: 1, Versioned: versioned}, "restockProduct", "p1"},
		{DiscontinueProductInput{ID: "p1", Versioned: versioned}, "discontinueProduct", "p1"},
		{AddReviewInput{ProductID: "p1", Author: "a", Rating: 5, Once: once}, "addReview", ""},
		{RemoveReviewInput{ID: "r1", Versioned: versioned}, "removeReview", "r1"},
		{PlaceOrderInput{CustomerID: "c1", Lines: []OrderLineInput{{ProductID: "p1", Quantity: 1}}, Once: once}, "placeOrder", ""},
		{CancelOrderInput{ID: "o1", Versioned: versioned}, "cancelOrder", "o1"},
		{RegisterCustomerInput{ID: "c1", DisplayName: "Ada", Email: "ada@example.com", ShippingAddress: "1 Lane", Once: once}, "registerCustomer", "c1"},
		{RenameCustomerInput{ID: "c1", DisplayName: "Ada L", Versioned: versioned}, "renameCustomer", "c1"},
		{ChangeCustomerAddressInput{ID: "c1", ShippingAddress: "2 Lane", Versioned: versioned}, "changeCustomerAddress", "c1"},
	}
	for _, c := range cases {
		store.last = Change{}
		if _, err := svc.Dispatch(context.Background(), Meta{CorrelationID: "req-1"}, c.in); err != nil {
			t.Fatalf("%T: %v", c.in, err)
		}
		got := store.last
		if got.Mutation != c.mutation || got.CommandID != id || (c.stream != "" && got.Stream.ID != c.stream) {
			t.Errorf("%T: change %s %q on %q, want %s %q on %q", c.in, got.Mutation, got.CommandID, got.Stream.ID, c.mutation, id, c.stream)
		}
		if wantV := c.stream != "" && c.mutation != "registerCustomer"; wantV != (got.ExpectedVersion != nil && *got.ExpectedVersion == v) {
			t.Errorf("%T: expected version %v", c.in, got.ExpectedVersion)
		}
	}
}
