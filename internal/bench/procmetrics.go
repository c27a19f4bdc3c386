package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// processStats is what a service's /metrics says about its process.
type processStats struct{ rss, goroutines float64 }

// scrapeProcess reads process_resident_memory_bytes and go_goroutines from
// the query instance's /metrics (Prometheus text format).
func scrapeProcess(ctx context.Context, e Env) (processStats, error) {
	if e.QueryMetrics == "" {
		return processStats{}, fmt.Errorf("no --query-metrics-url")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, e.QueryMetrics, nil)
	if err != nil {
		return processStats{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return processStats{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return processStats{}, fmt.Errorf("%s: %s", e.QueryMetrics, resp.Status)
	}
	return parseProcessStats(bufio.NewScanner(resp.Body))
}

func parseProcessStats(sc *bufio.Scanner) (processStats, error) {
	var st processStats
	var seen int
	sc.Buffer(make([]byte, 64*1024), 1<<20) // a metric line is short; the bound is for a hostile page
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		var into *float64
		switch name {
		case "process_resident_memory_bytes":
			into = &st.rss
		case "go_goroutines":
			into = &st.goroutines
		default:
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return st, fmt.Errorf("metric %s: %w", name, err)
		}
		*into = v
		seen++
	}
	if err := sc.Err(); err != nil {
		return st, err
	}
	if seen < 2 {
		return st, fmt.Errorf("no process_resident_memory_bytes and go_goroutines in the metrics")
	}
	return st, nil
}
