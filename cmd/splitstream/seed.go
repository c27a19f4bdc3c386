package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"time"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/demo"
	"github.com/splitstream/splitstream/postgres"
)

// seedFlags: splitstream seed --products 1000 --reviews 5000 --orders 500 --seed 42.
// Every command carries a command id derived from the seed, so running the
// same seed again appends nothing.
func seedFlags(fs *flag.FlagSet) func(context.Context, *app) error {
	products := fs.Int("products", 1000, "products to create")
	reviews := fs.Int("reviews", 5000, "reviews to add")
	orders := fs.Int("orders", 500, "orders to place")
	seed := fs.Uint64("seed", 42, "the same seed gives the same data")
	workers := fs.Int("workers", 8, "concurrent commands")
	return func(ctx context.Context, a *app) error {
		if *products < 0 || *reviews < 0 || *orders < 0 || (*products == 0 && *reviews+*orders > 0) {
			return errors.New("--products, --reviews and --orders must be ≥ 0, and reviews or orders need products")
		}
		if *workers < 1 || *workers > 64 {
			return errors.New("--workers must be between 1 and 64")
		}
		pool, err := a.postgres(ctx)
		if err != nil {
			return err
		}
		store, err := postgres.NewEventStore(pool)
		if err != nil {
			return err
		}
		svc, err := command.NewService(store)
		if err != nil {
			return err
		}
		plan := demo.Make(*seed, *products, *reviews, *orders)
		s := &demo.Seeder{Progress: a.errOut(), Seed: *seed, Workers: *workers}
		ids := make([]string, len(plan.Products))
		start := time.Now()
		if err := s.Run(ctx, "products", len(plan.Products), func(ctx context.Context, i int) (command.Result, error) {
			p := plan.Products[i]
			res, err := svc.CreateProduct(ctx, s.Meta("p", i), command.CreateProduct{
				Name: p.Name, Description: p.Description, Category: p.Category,
				PriceCents: p.PriceCents, Currency: p.Currency, Stock: p.Stock,
			})
			ids[i] = res.ID
			return res, err
		}); err != nil {
			return err
		}
		if err := s.Run(ctx, "reviews", len(plan.Reviews), func(ctx context.Context, i int) (command.Result, error) {
			r := plan.Reviews[i]
			return svc.AddReview(ctx, s.Meta("r", i), command.AddReview{
				ProductID: ids[r.Product], Author: r.Author, Rating: r.Rating, Comment: r.Comment,
			})
		}); err != nil {
			return err
		}
		if err := s.Run(ctx, "customers", len(plan.Customers), func(ctx context.Context, i int) (command.Result, error) {
			c := plan.Customers[i]
			return svc.RegisterCustomer(ctx, s.Meta("c", i), command.RegisterCustomer{
				ID: c.ID, DisplayName: c.DisplayName, Email: c.Email, ShippingAddress: c.ShippingAddress,
			})
		}); err != nil {
			return err
		}
		if err := s.Run(ctx, "orders", len(plan.Orders), func(ctx context.Context, i int) (command.Result, error) {
			o := plan.Orders[i]
			lines := make([]event.OrderLine, len(o.Lines))
			for j, l := range o.Lines {
				lines[j] = event.OrderLine{ProductID: ids[l.Product], Quantity: l.Quantity}
			}
			return svc.PlaceOrder(ctx, s.Meta("o", i), command.PlaceOrder{CustomerID: o.Customer, Lines: lines})
		}); err != nil {
			return err
		}
		took := time.Since(start)
		total := len(plan.Products) + len(plan.Reviews) + len(plan.Customers) + len(plan.Orders)
		fmt.Fprintf(a.out, "seed %d: %d products, %d reviews, %d customers, %d orders in %s (%.0f commands/s); %d failed\n",
			*seed, len(plan.Products), len(plan.Reviews), len(plan.Customers), len(plan.Orders), took.Round(time.Millisecond),
			float64(total)/took.Seconds(), s.Failed())
		if s.Failed() > 0 {
			fmt.Fprintf(a.out, "first failure: %v\n", s.FirstErr())
		}
		fmt.Fprintln(a.out, "orders are confirmed or rejected by the saga role; the read side catches up within seconds")
		return nil
	}
}
