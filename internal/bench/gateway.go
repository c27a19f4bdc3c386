package bench

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Gateway measures queries and mutations through the gateway beside the
// same operations sent to the service directly, in the same run: the
// gateway's hop should keep ≥ 0.8 × the direct throughput and add at most
// 2 ms to the p99. Direct and gateway runs alternate, twice each, so a
// neighbour's load on the machine falls on both.
func Gateway(ctx context.Context, e Env) ([]Result, error) {
	if e.Gateway.URL == "" {
		return nil, errors.New("no gateway URL")
	}
	if err := e.Gateway.Do(ctx, `{ __typename }`, nil, nil); err != nil {
		return nil, fmt.Errorf("the gateway does not answer at %s (start the stack with make run): %w", e.Gateway.URL, err)
	}
	if err := e.EnsureProducts(ctx, 100); err != nil {
		return nil, err
	}
	var page struct {
		Products struct {
			Edges []struct{ Node struct{ ID string } }
		}
	}
	if err := e.Query.Do(ctx, `{ products(first: 50) { edges { node { id } } } }`, nil, &page); err != nil {
		return nil, err
	}
	var ids []string
	for _, edge := range page.Products.Edges {
		ids = append(ids, edge.Node.ID)
	}
	if len(ids) == 0 {
		return nil, errors.New("no products to read")
	}
	const get = `query($id: ID!) { product(id: $id) { id name priceCents stock averageRating reviewCount } }`
	read := func(g GraphQL) func(ctx context.Context, c, i int) error {
		return func(ctx context.Context, c, i int) error {
			return g.Do(ctx, get, map[string]any{"id": ids[(c*7+i)%len(ids)]}, nil)
		}
	}
	write := func(g GraphQL) func(ctx context.Context, c, i int) error {
		return func(ctx context.Context, c, i int) error {
			return g.Do(ctx, createProduct, productInput(fmt.Sprintf("Gateway bench %d-%d", c, i)), nil)
		}
	}
	q, err := e.beside(ctx, "gateway: product query", 16, read(e.Query), read(e.Gateway))
	if err != nil {
		return nil, err
	}
	m, err := e.beside(ctx, "gateway: createProduct", 8, write(e.Command), write(e.Gateway))
	if err != nil {
		return nil, err
	}
	return append(q.results("gateway.query.c16", "q/s"), m.results("gateway.mutation.c8", "mutations/s")...), nil
}

// pair is one operation measured directly and through the gateway.
type pair struct {
	directRate, gatewayRate float64
	directLat, gatewayLat   []time.Duration
}

func (p pair) results(name, unit string) []Result {
	dp99 := Percentile(p.directLat, 99)
	return []Result{
		Rate(name+".throughput", p.gatewayRate, p.directRate, unit, 0.8),
		Latency(name+".p50", Percentile(p.gatewayLat, 50), Percentile(p.directLat, 50), "reported beside direct p50", time.Hour),
		Latency(name+".p99", Percentile(p.gatewayLat, 99), dp99, "≤ direct p99 + 2 ms", dp99+2*time.Millisecond),
	}
}

// beside runs direct and through alternately, twice each, half the
// suite's duration a run.
func (e Env) beside(ctx context.Context, what string, clients int, direct, through func(ctx context.Context, c, i int) error) (pair, error) {
	var p pair
	d := e.duration() / 2
	type side struct {
		name string
		op   func(ctx context.Context, c, i int) error
		rate *float64
		lat  *[]time.Duration
	}
	a := side{"direct", direct, &p.directRate, &p.directLat}
	b := side{"through the gateway", through, &p.gatewayRate, &p.gatewayLat}
	// ABBA: a drift over the run (a growing index, a machine getting
	// busier) weighs on both sides alike. Before each phase the read side
	// drains what the one before wrote, so no phase pays for another's
	// writes.
	for round, order := range [][]side{{a, b}, {b, a}} {
		for _, side := range order {
			if err := settle(ctx, e); err != nil {
				return p, err
			}
			e.say("%s, %s, %d clients, %s (round %d)", what, side.name, clients, d, round+1)
			rate, lat, err := Load(ctx, clients, d, side.op)
			if err != nil {
				return p, fmt.Errorf("%s %s: %w", what, side.name, err)
			}
			*side.rate += rate / 2
			*side.lat = append(*side.lat, lat...)
		}
	}
	e.say("%s: %.0f/s through the gateway, %.0f/s direct", what, p.gatewayRate, p.directRate)
	return p, nil
}
