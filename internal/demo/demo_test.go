package demo

import (
	"reflect"
	"testing"

	"github.com/splitstream/splitstream/command"
)

func TestSameSeedSameData(t *testing.T) {
	a, b := Make(42, 200, 500, 100), Make(42, 200, 500, 100)
	if !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed made different data")
	}
	if reflect.DeepEqual(a, Make(43, 200, 500, 100)) {
		t.Fatal("another seed made the same data")
	}
}

func TestPlanIsValid(t *testing.T) {
	p := Make(7, 300, 1000, 300)
	names := map[string]bool{}
	for _, pr := range p.Products {
		if pr.Name == "" || len(pr.Name) > 200 || pr.PriceCents < 1 || pr.Stock < 0 || pr.Category == "" {
			t.Fatalf("bad product %+v", pr)
		}
		if names[pr.Name] {
			t.Fatalf("duplicate name %q", pr.Name)
		}
		names[pr.Name] = true
	}
	for _, r := range p.Reviews {
		if r.Rating < 1 || r.Rating > 5 || r.Author == "" || r.Product >= len(p.Products) {
			t.Fatalf("bad review %+v", r)
		}
	}
	for _, o := range p.Orders {
		seen := map[int]bool{}
		if len(o.Lines) == 0 {
			t.Fatal("order without lines")
		}
		for _, l := range o.Lines {
			if seen[l.Product] || l.Quantity < 1 || l.Quantity > 1000 {
				t.Fatalf("bad order %+v", o)
			}
			seen[l.Product] = true
		}
	}
}

// Every customer who orders is registered, and each registration passes
// the command's own validation.
func TestPlanRegistersItsCustomers(t *testing.T) {
	p := Make(7, 50, 0, 100)
	registered := map[string]bool{}
	for _, c := range p.Customers {
		if err := (command.RegisterCustomer{ID: c.ID, DisplayName: c.DisplayName, Email: c.Email, ShippingAddress: c.ShippingAddress}).Validate(); err != nil {
			t.Fatalf("customer %+v: %v", c, err)
		}
		registered[c.ID] = true
	}
	for _, o := range p.Orders {
		if !registered[o.Customer] {
			t.Fatalf("order by %s, who is not registered", o.Customer)
		}
	}
	if !registered["customer-1"] {
		t.Error("customer-1, make run's customer, is not registered")
	}
}
