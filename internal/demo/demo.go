// Package demo makes realistic, reproducible storefront data: the same seed
// always gives the same products, reviews and orders, in the same order.
package demo

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
)

// Product is a product to create.
type Product struct {
	Name, Description, Category, Currency string
	PriceCents                            int64
	Stock                                 int
	// Quality skews its reviews' ratings.
	Quality float64
}

// Review is a review of Products[Product].
type Review struct {
	Product         int
	Author, Comment string
	Rating          int
}

// Line is Quantity units of Products[Product].
type Line struct {
	Product, Quantity int
}

// Order is an order by a customer.
type Order struct {
	Customer string
	Lines    []Line
}

// Customer is a customer to register: every customer that orders, and
// customer-1, the customer of the token make run prints.
type Customer struct {
	ID, DisplayName, Email, ShippingAddress string
}

// Plan is everything a seed run creates.
type Plan struct {
	Products  []Product
	Reviews   []Review
	Customers []Customer
	Orders    []Order
}

var (
	categories = map[string]struct {
		nouns    []string
		min, max int64 // price range in cents
	}{
		"kitchen":  {[]string{"Kettle", "Teapot", "Chef's Knife", "Cutting Board", "Frying Pan", "Espresso Maker", "Mixing Bowl", "Toaster"}, 900, 24900},
		"garden":   {[]string{"Hose", "Trowel", "Pruning Shears", "Planter", "Watering Can", "Rake", "Bird Feeder"}, 500, 15900},
		"books":    {[]string{"Cookbook", "Field Guide", "Atlas", "Novel", "Poetry Collection", "Travel Journal"}, 700, 4900},
		"outdoor":  {[]string{"Tent", "Sleeping Bag", "Headlamp", "Camping Stove", "Hiking Poles", "Backpack"}, 1500, 49900},
		"office":   {[]string{"Desk Lamp", "Notebook", "Fountain Pen", "Monitor Stand", "Desk Organizer", "Stapler"}, 300, 19900},
		"toys":     {[]string{"Puzzle", "Kite", "Building Blocks", "Board Game", "Yo-yo", "Model Train"}, 400, 12900},
		"audio":    {[]string{"Headphones", "Speaker", "Turntable", "Microphone", "Radio"}, 1900, 89900},
		"clothing": {[]string{"Raincoat", "Wool Scarf", "Beanie", "Hiking Socks", "Denim Jacket", "Sun Hat"}, 900, 29900},
	}
	adjectives = []string{"Classic", "Compact", "Deluxe", "Eco", "Everyday", "Heritage", "Nordic", "Pro", "Rustic",
		"Smart", "Sturdy", "Travel", "Urban", "Vintage", "Lightweight", "Premium", "Handmade", "Midnight", "Copper", "Cedar"}
	materials = []string{"stainless steel", "oak", "recycled plastic", "cast iron", "bamboo", "organic cotton", "merino wool",
		"aluminium", "ceramic", "walnut", "linen", "glass"}
	traits = []string{"easy to clean", "built to last", "light enough to carry anywhere", "designed in Lisbon",
		"with a lifetime warranty", "loved by professionals", "made in small batches", "fully repairable"}
	firstNames = []string{"Ana", "Ben", "Chloé", "Dev", "Elif", "Femi", "Grace", "Hiro", "Ines", "Jon", "Kasia", "Luca",
		"Maya", "Noor", "Olek", "Priya", "Quinn", "Rosa", "Sami", "Tove", "Uma", "Viktor", "Wen", "Yara", "Zoe"}
	praise   = []string{"Exactly as described.", "Works perfectly.", "Great value for the price.", "Beautifully made.", "Would buy again.", "Better than I expected."}
	middling = []string{"Does the job.", "Fine, nothing special.", "Shipping was slow but the product is okay.", "Decent, a bit smaller than I thought."}
	critique = []string{"Broke after a week.", "Not worth the money.", "The finish is poor.", "Arrived damaged.", "Too flimsy for daily use."}
)

// Make builds a plan of products, reviews and orders from seed.
func Make(seed uint64, products, reviews, orders int) Plan {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	cats := sortedKeys()
	var p Plan
	used := map[string]int{}
	for range products {
		cat := cats[r.IntN(len(cats))]
		c := categories[cat]
		name := adjectives[r.IntN(len(adjectives))] + " " + c.nouns[r.IntN(len(c.nouns))]
		used[name]++
		if used[name] > 1 {
			name = fmt.Sprintf("%s %d", name, used[name])
		}
		price := c.min + r.Int64N(c.max-c.min)
		price = price/100*100 + 99 // x.99 prices
		p.Products = append(p.Products, Product{
			Name:     name,
			Category: cat,
			Description: fmt.Sprintf("A %s %s in %s, %s.", strings.ToLower(adjectives[r.IntN(len(adjectives))]),
				strings.ToLower(c.nouns[r.IntN(len(c.nouns))]), materials[r.IntN(len(materials))], traits[r.IntN(len(traits))]),
			Currency:   "EUR",
			PriceCents: price,
			Stock:      r.IntN(60),
			Quality:    1.5 + r.Float64()*3.5,
		})
	}
	if products == 0 {
		return p
	}
	for range reviews {
		i := r.IntN(products)
		rating := int(p.Products[i].Quality + r.NormFloat64()*0.9 + 0.5)
		rating = max(1, min(5, rating))
		var comment string
		switch {
		case rating >= 4:
			comment = praise[r.IntN(len(praise))]
		case rating == 3:
			comment = middling[r.IntN(len(middling))]
		default:
			comment = critique[r.IntN(len(critique))]
		}
		p.Reviews = append(p.Reviews, Review{Product: i, Rating: rating, Comment: comment,
			Author: firstNames[r.IntN(len(firstNames))] + " " + string(rune('A'+r.IntN(26))) + "."})
	}
	for range orders {
		n := 1 + r.IntN(3)
		lines := make([]Line, 0, n)
		seen := map[int]bool{}
		for len(lines) < n && len(seen) < products {
			i := r.IntN(products)
			if seen[i] {
				continue
			}
			seen[i] = true
			lines = append(lines, Line{Product: i, Quantity: 1 + r.IntN(3)})
		}
		p.Orders = append(p.Orders, Order{Customer: fmt.Sprintf("customer-%03d", r.IntN(200)), Lines: lines})
	}
	p.Customers = customers(r, p.Orders)
	return p
}

// customers are customer-1 and every customer of orders, in id order.
func customers(r *rand.Rand, orders []Order) []Customer {
	ids := map[string]bool{"customer-1": true}
	for _, o := range orders {
		ids[o.Customer] = true
	}
	var out []Customer
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		first := firstNames[r.IntN(len(firstNames))]
		out = append(out, Customer{ID: id, DisplayName: first + " " + string(rune('A'+r.IntN(26))) + ".",
			Email:           strings.ToLower(first) + "." + id + "@example.com",
			ShippingAddress: fmt.Sprintf("%d %s Street", 1+r.IntN(200), adjectives[r.IntN(len(adjectives))])})
	}
	return out
}

func sortedKeys() []string { return slices.Sorted(maps.Keys(categories)) }
