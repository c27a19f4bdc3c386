// Package elastic owns Splitstream's use of Elasticsearch: the client, the
// read models' mappings in versioned indices behind aliases, the bulk writer
// the projector uses, and the searches the query service runs.
package elastic

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/elastic/go-elasticsearch/v8"
)

// Open returns a client for url and checks that a genuine Elasticsearch 8
// answers. A failure is one line a person can act on.
func Open(ctx context.Context, rawURL string) (*elasticsearch.Client, error) {
	es, err := New(rawURL)
	if err != nil {
		return nil, err
	}
	if err := Check(ctx, es); err != nil {
		host := rawURL
		if u, perr := url.Parse(rawURL); perr == nil {
			host = u.Host
		}
		return nil, fmt.Errorf("ELASTICSEARCH_URL: cannot reach %s (%s) — is Elasticsearch running? Try: make services", host, reason(err))
	}
	return es, nil
}

// New returns a client for url without contacting it.
func New(rawURL string) (*elasticsearch.Client, error) {
	es, err := elasticsearch.NewClient(elasticsearch.Config{
		Addresses:     []string{rawURL},
		MaxRetries:    2,
		RetryOnStatus: []int{502, 503, 504},
		Transport: &http.Transport{
			MaxIdleConnsPerHost:   64,
			ResponseHeaderTimeout: 30 * time.Second,
			IdleConnTimeout:       90 * time.Second,
		},
	})
	if err != nil {
		return nil, fmt.Errorf("ELASTICSEARCH_URL: %w", err)
	}
	return es, nil
}

// Check asks the cluster for its health, for readiness.
func Check(ctx context.Context, es *elasticsearch.Client) error {
	res, err := es.Cluster.Health(es.Cluster.Health.WithContext(ctx))
	if err != nil {
		return fmt.Errorf("elasticsearch unreachable: %s", reason(err))
	}
	defer res.Body.Close()
	if res.IsError() {
		body, _ := io.ReadAll(io.LimitReader(res.Body, 512))
		return fmt.Errorf("elasticsearch answered %s: %s", res.Status(), strings.TrimSpace(string(body)))
	}
	return nil
}

func reason(err error) string {
	switch msg := err.Error(); {
	case strings.Contains(msg, "refused"):
		return "connection refused"
	case strings.Contains(msg, "not Elasticsearch") || strings.Contains(msg, "unknown product"):
		return "the server is not Elasticsearch"
	case errors.Is(err, context.DeadlineExceeded) || strings.Contains(msg, "timeout"):
		return "timed out"
	default:
		return msg
	}
}
