package command_test

import (
	"errors"
	"testing"
	"unicode/utf8"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
)

// keywordBytes is Elasticsearch's limit for one keyword term; every string
// an accepted command puts into an event must fit below it.
const keywordBytes = 32_766

// refusedWell says err is nil or a BAD_USER_INPUT naming a field, or
// another client-facing error (a product that does not exist, say).
func refusedWell(t *testing.T, err error) bool {
	t.Helper()
	if err == nil {
		return false
	}
	var e *splitstream.Error
	if !errors.As(err, &e) {
		t.Fatalf("internal error for client input: %v", err)
	}
	if e.Code == splitstream.EInvalid && e.Field == "" {
		t.Fatalf("BAD_USER_INPUT without a field: %v", err)
	}
	return true
}

func checkStrings(t *testing.T, ss ...string) {
	t.Helper()
	for _, s := range ss {
		if len(s) > keywordBytes || !utf8.ValidString(s) {
			t.Fatalf("accepted a value of %d bytes (valid UTF-8: %v)", len(s), utf8.ValidString(s))
		}
	}
}

// Whatever a client sends, a product command is refused with a field or
// yields events whose strings fit the read side.
func FuzzProductInput(f *testing.F) {
	f.Add("Kettle", "Boils.", "kitchen", int64(100), "EUR", 5, "Steel kettle")
	f.Add(" ", "", "", int64(0), "eur", -1, "\x00")
	f.Add("é", "\xff", "k", int64(1_000_000_001), "EURO", 1_000_000_000, "")
	f.Fuzz(func(t *testing.T, name, description, category string, price int64, currency string, stock int, rename string) {
		p := command.FoldProduct("p", nil)
		evs, err := command.DecideProduct(p, command.CreateProduct{Name: name, Description: description, Category: category,
			PriceCents: price, Currency: currency, Stock: stock})
		if refusedWell(t, err) {
			return
		}
		c := evs[0].(event.ProductCreated)
		checkStrings(t, c.Name, c.Description, c.Category, c.Currency)
		p = p.Apply(c)
		evs, err = command.DecideProduct(p, command.RenameProduct{Name: rename})
		if refusedWell(t, err) {
			return
		}
		for _, e := range evs {
			checkStrings(t, e.(event.ProductRenamed).Name)
		}
	})
}

// Whatever a client sends, an order or review is refused with a field or
// yields events whose strings fit the read side.
func FuzzOrderAndReviewInput(f *testing.F) {
	f.Add("ada", "p1", 1, "p2", 2, "Ada", 4, "Good.")
	f.Add("", "", 0, "", -1, "", 0, "")
	f.Add("c\n", "p1", 1001, "p1", 1, " Ada ", 6, "\xff")
	f.Fuzz(func(t *testing.T, customer, p1 string, q1 int, p2 string, q2 int, author string, rating int, comment string) {
		evs, err := command.DecideOrder(command.Order{ID: "o"}, command.PlaceOrder{CustomerID: customer,
			Lines: []event.OrderLine{{ProductID: p1, Quantity: q1, UnitPriceCents: 100}, {ProductID: p2, Quantity: q2}}, Currency: "EUR"})
		if !refusedWell(t, err) {
			o := evs[0].(event.OrderPlaced)
			checkStrings(t, o.CustomerID, o.Lines[0].ProductID, o.Lines[1].ProductID)
		}
		product := command.FoldProduct(p1, []event.Payload{event.ProductCreated{Name: "K", Category: "k", PriceCents: 1, Currency: "EUR"}})
		evs, err = command.DecideReview(command.Review{ID: "r"}, command.AddReview{ProductID: p1, Author: author, Rating: rating,
			Comment: comment, Product: product})
		if !refusedWell(t, err) {
			r := evs[0].(event.ReviewAdded)
			checkStrings(t, r.ProductID, r.Author, r.Comment)
		}
	})
}
