package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/splitstream/splitstream"
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
		svc, err := command.NewService(postgres.NewEventStore(pool))
		if err != nil {
			return err
		}
		plan := demo.Make(*seed, *products, *reviews, *orders)
		s := &seeder{progress: a.errOut(), svc: svc, seed: *seed, workers: *workers, ids: make([]string, len(plan.Products))}
		start := time.Now()
		if err := s.run(ctx, "products", len(plan.Products), func(ctx context.Context, i int) (command.Result, error) {
			p := plan.Products[i]
			res, err := svc.CreateProduct(ctx, s.meta("p", i), command.CreateProduct{
				Name: p.Name, Description: p.Description, Category: p.Category,
				PriceCents: p.PriceCents, Currency: p.Currency, Stock: p.Stock,
			})
			s.ids[i] = res.ID
			return res, err
		}); err != nil {
			return err
		}
		if err := s.run(ctx, "reviews", len(plan.Reviews), func(ctx context.Context, i int) (command.Result, error) {
			r := plan.Reviews[i]
			return svc.AddReview(ctx, s.meta("r", i), command.AddReview{
				ProductID: s.ids[r.Product], Author: r.Author, Rating: r.Rating, Comment: r.Comment,
			})
		}); err != nil {
			return err
		}
		if err := s.run(ctx, "orders", len(plan.Orders), func(ctx context.Context, i int) (command.Result, error) {
			o := plan.Orders[i]
			lines := make([]event.OrderLine, len(o.Lines))
			for j, l := range o.Lines {
				lines[j] = event.OrderLine{ProductID: s.ids[l.Product], Quantity: l.Quantity}
			}
			return svc.PlaceOrder(ctx, s.meta("o", i), command.PlaceOrder{CustomerID: o.Customer, Lines: lines})
		}); err != nil {
			return err
		}
		took := time.Since(start)
		total := len(plan.Products) + len(plan.Reviews) + len(plan.Orders)
		fmt.Fprintf(a.out, "seed %d: %d products, %d reviews, %d orders in %s (%.0f commands/s); %d failed\n",
			*seed, len(plan.Products), len(plan.Reviews), len(plan.Orders), took.Round(time.Millisecond),
			float64(total)/took.Seconds(), s.failed.Load())
		if s.failed.Load() > 0 {
			fmt.Fprintf(a.out, "first failure: %v\n", s.firstErr)
		}
		fmt.Fprintln(a.out, "orders are confirmed or rejected by the saga role; the read side catches up within seconds")
		return nil
	}
}

type seeder struct {
	progress io.Writer
	svc      *command.Service
	seed     uint64
	workers  int
	ids      []string
	failed   atomic.Int64
	mu       sync.Mutex
	firstErr error
}

func (s *seeder) meta(kind string, i int) command.Meta {
	id := fmt.Sprintf("seed-%d-%s-%d", s.seed, kind, i)
	return command.Meta{CommandID: id, CorrelationID: id, Actor: "seed"}
}

// run does n commands on the workers with a progress bar. A refused command
// is counted and reported; an infrastructure error stops the run.
func (s *seeder) run(ctx context.Context, what string, n int, do func(context.Context, int) (command.Result, error)) error {
	if n == 0 {
		return nil
	}
	bar := progressbar.NewOptions(n, progressbar.OptionSetWriter(s.progress), progressbar.OptionSetDescription(fmt.Sprintf("%-8s", what)),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("cmd"),
		progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(s.progress) }))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range s.workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if _, err := do(ctx, i); err != nil {
					if !isRefusal(err) {
						cancel(fmt.Errorf("%s %d: %w", what, i, err))
						return
					}
					s.failed.Add(1)
					s.mu.Lock()
					if s.firstErr == nil {
						s.firstErr = fmt.Errorf("%s %d: %w", what, i, err)
					}
					s.mu.Unlock()
				}
				_ = bar.Add(1)
			}
		}()
	}
	for i := range n {
		select {
		case next <- i:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
	}
	close(next)
	wg.Wait()
	_ = bar.Finish()
	if err := context.Cause(ctx); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return ctx.Err()
}

// isRefusal tells a refused command (bad input, conflict) from a failure.
func isRefusal(err error) bool {
	var e *splitstream.Error
	return errors.As(err, &e)
}
