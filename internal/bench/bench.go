// Package bench measures a running Splitstream stack, and beside every
// figure the raw ceiling of the component under it, measured in the same
// run on the same servers: a mutation beside a plain pgx insert, a GraphQL
// search beside the same Elasticsearch query sent directly, and so on.
package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// Result is one measured figure beside its ceiling.
type Result struct {
	Name    string  `json:"name"`
	Value   float64 `json:"value"`
	Unit    string  `json:"unit"`
	Ceiling float64 `json:"ceiling"`
	// Ratio is value/ceiling for rates and ceiling/value for latencies,
	// so that 1 means "as good as the raw component" either way.
	Ratio float64 `json:"ratio"`
	Goal  string  `json:"goal"`
	Met   bool    `json:"met"`
}

// Rate builds a throughput result (higher is better).
func Rate(name string, value, ceiling float64, unit string, minRatio float64) Result {
	r := Result{Name: name, Value: round(value), Unit: unit, Ceiling: round(ceiling)}
	if ceiling > 0 {
		r.Ratio = round(value / ceiling)
	}
	r.Goal = fmt.Sprintf("≥ %.1f × ceiling", minRatio)
	r.Met = r.Ratio >= minRatio
	return r
}

// Latency builds a latency result (lower is better) with an absolute bound.
func Latency(name string, value, ceiling time.Duration, goal string, bound time.Duration) Result {
	r := Result{Name: name, Value: ms(value), Unit: "ms", Ceiling: ms(ceiling), Goal: goal}
	if value > 0 {
		r.Ratio = round(float64(ceiling) / float64(value))
	}
	r.Met = value <= bound
	return r
}

func ms(d time.Duration) float64 { return round(float64(d) / float64(time.Millisecond)) }

func round(v float64) float64 { return math.Round(v*100) / 100 }

// Percentile returns the p-th percentile (0–100) of samples.
func Percentile(samples []time.Duration, p float64) time.Duration {
	if len(samples) == 0 {
		return 0
	}
	s := slices.Clone(samples)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

// Load runs op from clients goroutines for d and returns the operations
// done per second and every operation's latency. An error stops the run.
func Load(ctx context.Context, clients int, d time.Duration, op func(ctx context.Context, client, i int) error) (float64, []time.Duration, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		mu  sync.Mutex
		lat []time.Duration
		wg  sync.WaitGroup
	)
	start := time.Now()
	stop := start.Add(d)
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var mine []time.Duration
			for i := 0; time.Now().Before(stop) && ctx.Err() == nil; i++ {
				t := time.Now()
				if err := op(ctx, c, i); err != nil {
					cancel(err)
					return
				}
				mine = append(mine, time.Since(t))
			}
			mu.Lock()
			lat = append(lat, mine...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil && ctx.Err() != nil {
		return 0, nil, err
	}
	return float64(len(lat)) / time.Since(start).Seconds(), lat, nil
}

// GraphQL is a small client for one endpoint.
type GraphQL struct {
	URL    string
	Client *http.Client
	// Token, when set, is sent as the bearer token (an admin's: not rate limited).
	Token string
}

// Do posts a query and decodes data into out; GraphQL errors are errors.
func (g GraphQL) Do(ctx context.Context, query string, vars map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": vars})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, g.URL, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	if g.Token != "" {
		req.Header.Set("Authorization", "Bearer "+g.Token)
	}
	res, err := g.Client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	raw, err := io.ReadAll(res.Body)
	if err != nil {
		return err
	}
	var env struct {
		Data   json.RawMessage `json:"data"`
		Errors []struct {
			Message string `json:"message"`
		} `json:"errors"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return fmt.Errorf("%s: %s: %.200s", g.URL, res.Status, raw)
	}
	if len(env.Errors) > 0 {
		msgs := make([]string, len(env.Errors))
		for i, e := range env.Errors {
			msgs[i] = e.Message
		}
		return fmt.Errorf("%s: %s", g.URL, strings.Join(msgs, "; "))
	}
	if out != nil {
		return json.Unmarshal(env.Data, out)
	}
	return nil
}

// Table prints results as an aligned table.
func Table(w io.Writer, results []Result) {
	fmt.Fprintf(w, "%-34s %12s %-6s %12s %7s  %-4s %s\n", "name", "value", "unit", "ceiling", "ratio", "met", "goal")
	for _, r := range results {
		met := "yes"
		if !r.Met {
			met = "NO"
		}
		fmt.Fprintf(w, "%-34s %12.2f %-6s %12.2f %7.2f  %-4s %s\n", r.Name, r.Value, r.Unit, r.Ceiling, r.Ratio, met, r.Goal)
	}
}

// Reported builds a figure with no ceiling and no goal, shown for what it is.
func Reported(name string, value float64, unit string) Result {
	return Result{Name: name, Value: round(value), Unit: unit, Goal: "reported", Met: true}
}
