package command_test

import (
	"math/rand/v2"
	"reflect"
	"testing"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
)

var kettle = event.ProductCreated{
	Name: "Kettle", Description: "Boils water.", Category: "kitchen",
	PriceCents: 2999, Currency: "EUR", Stock: 10,
}

// createKettle returns a valid CreateProduct after edit.
func createKettle(edit func(*command.CreateProduct)) command.CreateProduct {
	c := command.CreateProduct{
		Name: kettle.Name, Description: kettle.Description, Category: kettle.Category,
		PriceCents: kettle.PriceCents, Currency: kettle.Currency, Stock: kettle.Stock,
	}
	if edit != nil {
		edit(&c)
	}
	return c
}

func TestDecideProduct(t *testing.T) {
	cases := append(productCreateCases(), productChangeCases()...)
	cases = append(cases, productStockCases()...)
	runDecideCases(t, "p1", cases, command.FoldProduct, command.DecideProduct)
}

// withStock is the kettle created with n units in stock.
func withStock(n int) event.ProductCreated { k := kettle; k.Stock = n; return k }

// discontinuedKettle is the kettle, created and then discontinued.
func discontinuedKettle() []event.Payload { return past(kettle, event.ProductDiscontinued{}) }

func productCreateCases() []decideCase[command.ProductCommand] {
	return []decideCase[command.ProductCommand]{
		// CreateProduct
		{name: "create", when: createKettle(nil), then: past(kettle)},
		{name: "create trims name and category",
			when: createKettle(func(c *command.CreateProduct) { c.Name, c.Category = "  Kettle\t", " kitchen " }),
			then: past(kettle)},
		{name: "create without description",
			when: createKettle(func(c *command.CreateProduct) { c.Description = "" }),
			then: past(event.ProductCreated{Name: "Kettle", Category: "kitchen", PriceCents: 2999, Currency: "EUR", Stock: 10})},
		{name: "create existing", given: past(kettle), when: createKettle(nil),
			err: conflict(1, "product already exists")},
		{name: "create blank name", when: createKettle(func(c *command.CreateProduct) { c.Name = " \t " }), err: invalid("name")},
		{name: "create empty name", when: createKettle(func(c *command.CreateProduct) { c.Name = "" }), err: invalid("name")},
		{name: "create name 200 runes", when: createKettle(func(c *command.CreateProduct) { c.Name = text(200) }),
			then: past(event.ProductCreated{Name: text(200), Description: kettle.Description, Category: "kitchen", PriceCents: 2999, Currency: "EUR", Stock: 10})},
		{name: "create name 200 runes plus spaces", when: createKettle(func(c *command.CreateProduct) { c.Name = "  " + text(200) + "  " }),
			then: past(event.ProductCreated{Name: text(200), Description: kettle.Description, Category: "kitchen", PriceCents: 2999, Currency: "EUR", Stock: 10})},
		{name: "create name 201 runes", when: createKettle(func(c *command.CreateProduct) { c.Name = text(201) }), err: invalid("name")},
		{name: "create name not UTF-8", when: createKettle(func(c *command.CreateProduct) { c.Name = "Ket\xfftle" }), err: invalid("name")},
		{name: "create blank category", when: createKettle(func(c *command.CreateProduct) { c.Category = "  " }), err: invalid("category")},
		{name: "create category 100 runes", when: createKettle(func(c *command.CreateProduct) { c.Category = text(100) }),
			then: past(event.ProductCreated{Name: "Kettle", Description: kettle.Description, Category: text(100), PriceCents: 2999, Currency: "EUR", Stock: 10})},
		{name: "create category 101 runes", when: createKettle(func(c *command.CreateProduct) { c.Category = text(101) }), err: invalid("category")},
		{name: "create description 10000 runes", when: createKettle(func(c *command.CreateProduct) { c.Description = text(10_000) }),
			then: past(event.ProductCreated{Name: "Kettle", Description: text(10_000), Category: "kitchen", PriceCents: 2999, Currency: "EUR", Stock: 10})},
		{name: "create description 10001 runes", when: createKettle(func(c *command.CreateProduct) { c.Description = text(10_001) }), err: invalid("description")},
		{name: "create price 0", when: createKettle(func(c *command.CreateProduct) { c.PriceCents = 0 }), err: invalid("priceCents")},
		{name: "create price negative", when: createKettle(func(c *command.CreateProduct) { c.PriceCents = -1 }), err: invalid("priceCents")},
		{name: "create price 1", when: createKettle(func(c *command.CreateProduct) { c.PriceCents = 1 }),
			then: past(event.ProductCreated{Name: "Kettle", Description: kettle.Description, Category: "kitchen", PriceCents: 1, Currency: "EUR", Stock: 10})},
		{name: "create price 1e9", when: createKettle(func(c *command.CreateProduct) { c.PriceCents = 1_000_000_000 }),
			then: past(event.ProductCreated{Name: "Kettle", Description: kettle.Description, Category: "kitchen", PriceCents: 1_000_000_000, Currency: "EUR", Stock: 10})},
		{name: "create price 1e9+1", when: createKettle(func(c *command.CreateProduct) { c.PriceCents = 1_000_000_001 }), err: invalid("priceCents")},
		{name: "create currency lower case", when: createKettle(func(c *command.CreateProduct) { c.Currency = "usd" }), err: invalid("currency")},
		{name: "create currency four letters", when: createKettle(func(c *command.CreateProduct) { c.Currency = "USDX" }), err: invalid("currency")},
		{name: "create currency two letters", when: createKettle(func(c *command.CreateProduct) { c.Currency = "US" }), err: invalid("currency")},
		{name: "create currency empty", when: createKettle(func(c *command.CreateProduct) { c.Currency = "" }), err: invalid("currency")},
		{name: "create currency digits", when: createKettle(func(c *command.CreateProduct) { c.Currency = "U5D" }), err: invalid("currency")},
		{name: "create currency not ASCII", when: createKettle(func(c *command.CreateProduct) { c.Currency = "ÉU" }), err: invalid("currency")},
		{name: "create stock -1", when: createKettle(func(c *command.CreateProduct) { c.Stock = -1 }), err: invalid("stock")},
		{name: "create stock 0", when: createKettle(func(c *command.CreateProduct) { c.Stock = 0 }), then: past(withStock(0))},
		{name: "create stock 1e9", when: createKettle(func(c *command.CreateProduct) { c.Stock = 1_000_000_000 }), then: past(withStock(1_000_000_000))},
		{name: "create stock 1e9+1", when: createKettle(func(c *command.CreateProduct) { c.Stock = 1_000_000_001 }), err: invalid("stock")},
	}
}

func productChangeCases() []decideCase[command.ProductCommand] {
	discontinued := discontinuedKettle()
	return []decideCase[command.ProductCommand]{
		// RenameProduct
		{name: "rename", given: past(kettle), when: command.RenameProduct{Name: " Steel kettle "},
			then: past(event.ProductRenamed{Name: "Steel kettle"})},
		{name: "rename to same name", given: past(kettle), when: command.RenameProduct{Name: "Kettle"}},
		{name: "rename to same name with spaces", given: past(kettle), when: command.RenameProduct{Name: " Kettle  "}},
		{name: "rename 200 runes", given: past(kettle), when: command.RenameProduct{Name: text(200)},
			then: past(event.ProductRenamed{Name: text(200)})},
		{name: "rename 201 runes", given: past(kettle), when: command.RenameProduct{Name: text(201)}, err: invalid("name")},
		{name: "rename blank", given: past(kettle), when: command.RenameProduct{Name: "   "}, err: invalid("name")},
		{name: "rename missing", when: command.RenameProduct{Name: "Kettle"}, err: notFound("product p1 not found")},
		{name: "rename discontinued", given: discontinued, when: command.RenameProduct{Name: "Old kettle"},
			err: conflict(2, "product is discontinued")},
		{name: "rename discontinued to same name", given: discontinued, when: command.RenameProduct{Name: "Kettle"},
			err: conflict(2, "product is discontinued")},

		// ChangeProductDescription
		{name: "describe", given: past(kettle), when: command.ChangeProductDescription{Description: "Quiet."},
			then: past(event.ProductDescriptionChanged{Description: "Quiet."})},
		{name: "describe empty clears", given: past(kettle), when: command.ChangeProductDescription{},
			then: past(event.ProductDescriptionChanged{})},
		{name: "describe same", given: past(kettle), when: command.ChangeProductDescription{Description: "Boils water."}},
		{name: "describe 10000 runes", given: past(kettle), when: command.ChangeProductDescription{Description: text(10_000)},
			then: past(event.ProductDescriptionChanged{Description: text(10_000)})},
		{name: "describe 10001 runes", given: past(kettle), when: command.ChangeProductDescription{Description: text(10_001)},
			err: invalid("description")},
		{name: "describe missing", when: command.ChangeProductDescription{Description: "x"}, err: notFound("product p1 not found")},
		{name: "describe discontinued", given: discontinued, when: command.ChangeProductDescription{Description: "x"},
			err: conflict(2, "product is discontinued")},

		// ChangeProductPrice
		{name: "reprice", given: past(kettle), when: command.ChangeProductPrice{PriceCents: 3499},
			then: past(event.ProductPriceChanged{PriceCents: 3499})},
		{name: "reprice same", given: past(kettle), when: command.ChangeProductPrice{PriceCents: 2999}},
		{name: "reprice 0", given: past(kettle), when: command.ChangeProductPrice{PriceCents: 0}, err: invalid("priceCents")},
		{name: "reprice 1", given: past(kettle), when: command.ChangeProductPrice{PriceCents: 1},
			then: past(event.ProductPriceChanged{PriceCents: 1})},
		{name: "reprice 1e9", given: past(kettle), when: command.ChangeProductPrice{PriceCents: 1_000_000_000},
			then: past(event.ProductPriceChanged{PriceCents: 1_000_000_000})},
		{name: "reprice 1e9+1", given: past(kettle), when: command.ChangeProductPrice{PriceCents: 1_000_000_001}, err: invalid("priceCents")},
		{name: "reprice missing", when: command.ChangeProductPrice{PriceCents: 100}, err: notFound("product p1 not found")},
		{name: "reprice discontinued", given: discontinued, when: command.ChangeProductPrice{PriceCents: 100},
			err: conflict(2, "product is discontinued")},

		// RestockProduct
		{name: "restock", given: past(kettle), when: command.RestockProduct{Quantity: 5},
			then: past(event.ProductRestocked{Quantity: 5, Stock: 15})},
		{name: "restock 1", given: past(kettle), when: command.RestockProduct{Quantity: 1},
			then: past(event.ProductRestocked{Quantity: 1, Stock: 11})},
		{name: "restock 0", given: past(kettle), when: command.RestockProduct{Quantity: 0}, err: invalid("quantity")},
		{name: "restock negative", given: past(kettle), when: command.RestockProduct{Quantity: -3}, err: invalid("quantity")},
		{name: "restock up to the stock limit", given: past(kettle), when: command.RestockProduct{Quantity: 999_999_990},
			then: past(event.ProductRestocked{Quantity: 999_999_990, Stock: 1_000_000_000})},
		{name: "restock past the stock limit", given: past(kettle), when: command.RestockProduct{Quantity: 999_999_991},
			err: invalid("quantity")},
		{name: "restock counts reserved units towards the limit",
			given: past(kettle, event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7}),
			when:  command.RestockProduct{Quantity: 999_999_991}, err: invalid("quantity")},
		{name: "restock after reservation", given: past(kettle, event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7}),
			when: command.RestockProduct{Quantity: 2}, then: past(event.ProductRestocked{Quantity: 2, Stock: 9})},
		{name: "restock missing", when: command.RestockProduct{Quantity: 5}, err: notFound("product p1 not found")},
		{name: "restock discontinued", given: discontinued, when: command.RestockProduct{Quantity: 5},
			err: conflict(2, "product is discontinued")},

		// DiscontinueProduct
		{name: "discontinue", given: past(kettle), when: command.DiscontinueProduct{},
			then: past(event.ProductDiscontinued{})},
		{name: "discontinue twice", given: discontinued, when: command.DiscontinueProduct{},
			err: conflict(2, "product is discontinued")},
		{name: "discontinue missing", when: command.DiscontinueProduct{}, err: notFound("product p1 not found")},
	}
}

func productStockCases() []decideCase[command.ProductCommand] {
	discontinued := discontinuedKettle()
	return []decideCase[command.ProductCommand]{
		// ReserveStock
		{name: "reserve", given: past(kettle), when: command.ReserveStock{OrderID: "o1", Quantity: 3},
			then: past(event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7})},
		{name: "reserve all that is left", given: past(kettle), when: command.ReserveStock{OrderID: "o1", Quantity: 10},
			then: past(event.StockReserved{OrderID: "o1", Quantity: 10, Stock: 0})},
		{name: "reserve 1", given: past(kettle), when: command.ReserveStock{OrderID: "o1", Quantity: 1},
			then: past(event.StockReserved{OrderID: "o1", Quantity: 1, Stock: 9})},
		{name: "reserve 1000", given: past(withStock(5000)), when: command.ReserveStock{OrderID: "o1", Quantity: 1000},
			then: past(event.StockReserved{OrderID: "o1", Quantity: 1000, Stock: 4000})},
		{name: "reserve 1001", given: past(withStock(5000)), when: command.ReserveStock{OrderID: "o1", Quantity: 1001}, err: invalid("quantity")},
		{name: "reserve 0", given: past(kettle), when: command.ReserveStock{OrderID: "o1", Quantity: 0}, err: invalid("quantity")},
		{name: "reserve without order", given: past(kettle), when: command.ReserveStock{OrderID: " ", Quantity: 1}, err: invalid("orderId")},
		{name: "reserve twice for the same order",
			given: past(kettle, event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7}),
			when:  command.ReserveStock{OrderID: "o1", Quantity: 3}},
		{name: "reserve for a second order",
			given: past(kettle, event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7}),
			when:  command.ReserveStock{OrderID: "o2", Quantity: 7},
			then:  past(event.StockReserved{OrderID: "o2", Quantity: 7, Stock: 0})},
		{name: "reserve more than is left",
			given: past(kettle, event.StockReserved{OrderID: "o1", Quantity: 8, Stock: 2}),
			when:  command.ReserveStock{OrderID: "o2", Quantity: 3},
			err:   conflict(2, "insufficient stock for Kettle: 2 left, 3 wanted")},
		{name: "reserve names the current name",
			given: past(withStock(0), event.ProductRenamed{Name: "Steel kettle"}),
			when:  command.ReserveStock{OrderID: "o1", Quantity: 1},
			err:   conflict(2, "insufficient stock for Steel kettle: 0 left, 1 wanted")},
		{name: "reserve again after release",
			given: past(kettle, event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7}, event.StockReleased{OrderID: "o1", Quantity: 3, Stock: 10}),
			when:  command.ReserveStock{OrderID: "o1", Quantity: 4},
			then:  past(event.StockReserved{OrderID: "o1", Quantity: 4, Stock: 6})},
		{name: "reserve missing", when: command.ReserveStock{OrderID: "o1", Quantity: 1}, err: notFound("product p1 not found")},
		{name: "reserve discontinued", given: discontinued, when: command.ReserveStock{OrderID: "o1", Quantity: 1},
			err: conflict(2, "Kettle is discontinued")},
		{name: "reserve again after discontinue keeps the reservation",
			given: past(kettle, event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7}, event.ProductDiscontinued{}),
			when:  command.ReserveStock{OrderID: "o1", Quantity: 3}},

		// ReleaseStock
		{name: "release", given: past(kettle, event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7}),
			when: command.ReleaseStock{OrderID: "o1"},
			then: past(event.StockReleased{OrderID: "o1", Quantity: 3, Stock: 10})},
		{name: "release one of two", given: past(kettle,
			event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7}, event.StockReserved{OrderID: "o2", Quantity: 2, Stock: 5}),
			when: command.ReleaseStock{OrderID: "o2"},
			then: past(event.StockReleased{OrderID: "o2", Quantity: 2, Stock: 7})},
		{name: "release without reservation", given: past(kettle), when: command.ReleaseStock{OrderID: "o1"}},
		{name: "release twice", given: past(kettle,
			event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7}, event.StockReleased{OrderID: "o1", Quantity: 3, Stock: 10}),
			when: command.ReleaseStock{OrderID: "o1"}},
		{name: "release on discontinued product",
			given: past(kettle, event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7}, event.ProductDiscontinued{}),
			when:  command.ReleaseStock{OrderID: "o1"},
			then:  past(event.StockReleased{OrderID: "o1", Quantity: 3, Stock: 10})},
		{name: "release without order", given: past(kettle), when: command.ReleaseStock{}, err: invalid("orderId")},
		{name: "release missing", when: command.ReleaseStock{OrderID: "o1"}, err: notFound("product p1 not found")},
	}
}

func TestDecideProductUnknownCommand(t *testing.T) {
	_, err := command.DecideProduct(command.FoldProduct("p1", past(kettle)), nil)
	if err == nil || splitstream.ErrorCode(err) != splitstream.EInternal {
		t.Fatalf("nil command: error = %v, want an internal error", err)
	}
}

func TestFoldProduct(t *testing.T) {
	got := command.FoldProduct("p1", past(
		kettle,
		event.ProductRenamed{Name: "Steel kettle"},
		event.ProductDescriptionChanged{Description: "Quiet."},
		event.ProductPriceChanged{PriceCents: 3499},
		event.ProductRestocked{Quantity: 5, Stock: 15},
		event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 12},
		event.StockReserved{OrderID: "o2", Quantity: 2, Stock: 10},
		event.StockReleased{OrderID: "o1", Quantity: 3, Stock: 13},
		event.ProductDiscontinued{},
	))
	want := command.Product{
		ID: "p1", Version: 9, Exists: true, Name: "Steel kettle", Description: "Quiet.", Category: "kitchen",
		PriceCents: 3499, Currency: "EUR", Stock: 13, Discontinued: true, Reserved: map[string]int{"o2": 2},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got  %+v\nwant %+v", got, want)
	}
	if p := command.FoldProduct("p9", nil); p.Exists || p.Version != 0 || p.ID != "p9" {
		t.Fatalf("empty history: %+v", p)
	}
}

// TestProductApplyCopiesOnWrite: states are values, so an older state must
// not see a later reservation through a shared map.
func TestProductApplyCopiesOnWrite(t *testing.T) {
	p := command.FoldProduct("p1", past(kettle, event.StockReserved{OrderID: "o1", Quantity: 3, Stock: 7}))
	q := p.Apply(event.StockReserved{OrderID: "o2", Quantity: 2, Stock: 5})
	r := q.Apply(event.StockReleased{OrderID: "o1", Quantity: 3, Stock: 8})

	if want := map[string]int{"o1": 3}; !reflect.DeepEqual(p.Reserved, want) {
		t.Errorf("first state changed: %v", p.Reserved)
	}
	if want := map[string]int{"o1": 3, "o2": 2}; !reflect.DeepEqual(q.Reserved, want) {
		t.Errorf("second state changed: %v", q.Reserved)
	}
	if want := map[string]int{"o2": 2}; !reflect.DeepEqual(r.Reserved, want) {
		t.Errorf("third state: %v", r.Reserved)
	}
	if p.Version != 2 || q.Version != 3 || r.Version != 4 {
		t.Errorf("versions %d %d %d, want 2 3 4", p.Version, q.Version, r.Version)
	}
}

// TestStockIsConserved runs random product commands and checks that stock
// never goes negative and that free plus reserved stock only changes by
// restocking.
func TestStockIsConserved(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	orders := []string{"o1", "o2", "o3", "o4", "o5"}
	p := command.FoldProduct("p1", past(kettle))
	total := kettle.Stock
	for i := range 5000 {
		var cmd command.ProductCommand
		switch rng.IntN(4) {
		case 0:
			cmd = command.RestockProduct{Quantity: 1 + rng.IntN(5)}
		case 1, 2:
			cmd = command.ReserveStock{OrderID: orders[rng.IntN(len(orders))], Quantity: 1 + rng.IntN(8)}
		case 3:
			cmd = command.ReleaseStock{OrderID: orders[rng.IntN(len(orders))]}
		}
		evs, err := command.DecideProduct(p, cmd)
		if err != nil && splitstream.ErrorCode(err) != splitstream.EConflict {
			t.Fatalf("step %d %#v: %v", i, cmd, err)
		}
		for _, e := range evs {
			if r, ok := e.(event.ProductRestocked); ok {
				total += r.Quantity
			}
			p = p.Apply(e)
		}
		reserved := 0
		for _, q := range p.Reserved {
			reserved += q
		}
		if p.Stock < 0 || p.Stock+reserved != total {
			t.Fatalf("step %d %#v: stock %d + reserved %d != %d", i, cmd, p.Stock, reserved, total)
		}
	}
}
