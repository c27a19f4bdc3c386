package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/splitstream/splitstream"
	"github.com/splitstream/splitstream/command"
)

// Seeder runs numbered commands on a few workers with a progress bar; each
// command's id comes from Seed, so running the same seed again appends
// nothing.
type Seeder struct {
	Progress io.Writer
	Seed     uint64
	Workers  int

	failed   atomic.Int64
	mu       sync.Mutex
	firstErr error
}

// Failed is how many commands were refused.
func (s *Seeder) Failed() int64 { return s.failed.Load() }

// FirstErr is the first refusal, nil when none.
func (s *Seeder) FirstErr() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.firstErr
}

// Meta is the metadata of command i of kind.
func (s *Seeder) Meta(kind string, i int) command.Meta {
	id := fmt.Sprintf("seed-%d-%s-%d", s.Seed, kind, i)
	return command.Meta{CommandID: id, CorrelationID: id, Actor: "seed"}
}

// Run does n commands on the workers with a progress bar. A refused command
// is counted and reported; an infrastructure error stops the run.
func (s *Seeder) Run(ctx context.Context, what string, n int, do func(context.Context, int) (command.Result, error)) error {
	if n == 0 {
		return nil
	}
	bar := progressbar.NewOptions(n, progressbar.OptionSetWriter(s.Progress), progressbar.OptionSetDescription(fmt.Sprintf("%-8s", what)),
		progressbar.OptionShowCount(), progressbar.OptionShowIts(), progressbar.OptionSetItsString("cmd"),
		progressbar.OptionSetPredictTime(true), progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(s.Progress) }))
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range s.Workers {
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
