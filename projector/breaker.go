package projector

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cenkalti/backoff/v5"
	"github.com/sony/gobreaker/v2"

	"github.com/splitstream/splitstream/query"
)

// reviewStats sums the reviews of products through the circuit breaker.
func (p *Projector) reviewStats(ctx context.Context, ids []string) (map[string]query.ReviewStats, error) {
	out, err := p.breaker.Execute(func() (any, error) {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		defer cancel()
		return p.cfg.Store.ReviewStats(ctx, ids)
	})
	if err != nil {
		return nil, fmt.Errorf("sum the reviews of %d products: %w", len(ids), err)
	}
	return out.(map[string]query.ReviewStats), nil
}

// get and write call the store through the circuit breaker, each bounded
// by the request timeout.
func (p *Projector) get(ctx context.Context, refs []Ref) ([]Stored, error) {
	out, err := p.breaker.Execute(func() (any, error) {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		defer cancel()
		return p.cfg.Store.Get(ctx, refs)
	})
	if err != nil {
		return nil, fmt.Errorf("read %d documents: %w", len(refs), err)
	}
	stored := out.([]Stored)
	if len(stored) != len(refs) {
		return nil, fmt.Errorf("read %d documents: store returned %d", len(refs), len(stored))
	}
	return stored, nil
}

func (p *Projector) write(ctx context.Context, writes []Write) ([]WriteResult, error) {
	start := time.Now()
	out, err := p.breaker.Execute(func() (any, error) {
		ctx, cancel := context.WithTimeout(ctx, p.cfg.RequestTimeout)
		defer cancel()
		return p.cfg.Store.Write(ctx, writes)
	})
	if err != nil {
		p.m.retries.WithLabelValues("unavailable").Add(float64(len(writes)))
		return nil, fmt.Errorf("write %d documents: %w", len(writes), err)
	}
	p.m.bulkItems.Observe(float64(len(writes)))
	p.m.bulkSeconds.Observe(time.Since(start).Seconds())
	res := out.([]WriteResult)
	if len(res) != len(writes) {
		return nil, fmt.Errorf("write %d documents: store answered for %d", len(writes), len(res))
	}
	return res, nil
}

func (p *Projector) backoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.Multiplier = 100*time.Millisecond, p.cfg.MaxBackoff, 2
	return b
}

func sleep(ctx context.Context, b backoff.BackOff) error {
	t := time.NewTimer(b.NextBackOff())
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// newBreaker is the circuit breaker around the store.
func (p *Projector) newBreaker() *gobreaker.CircuitBreaker[any] {
	return gobreaker.NewCircuitBreaker[any](gobreaker.Settings{
		Name:        "elasticsearch",
		MaxRequests: 1,
		Timeout:     p.cfg.BreakerOpen,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= p.cfg.BreakerFailures },
		IsExcluded:  func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			p.log.Warn("elasticsearch circuit breaker", "from", from.String(), "to", to.String())
		},
	})
}
