package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/splitstream/splitstream/elastic"
	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/query"
)

// TestCopiesStartTogether starts two projectors and a query service at the
// same moment on a fresh index prefix, as a deployment does: all three
// become ready, and every alias ends with exactly one index, its write
// index, with nothing left over.
func TestCopiesStartTogether(t *testing.T) {
	dbURL, _ := testenv.Postgres(t)
	amqpURL := testenv.RabbitMQ(t)
	es, prefix := testenv.Elasticsearch(t)
	base := map[string]string{
		"DATABASE_URL": dbURL, "AMQP_URL": amqpURL, "SPLITSTREAM_INDEX_PREFIX": prefix,
		"SPLITSTREAM_REFRESH_INTERVAL": "200ms",
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	start := make(chan struct{})
	var ready []string
	for i, role := range []string{"projector", "projector", "query"} {
		env := map[string]string{"SPLITSTREAM_ADMIN_ADDR": freeAddr(t), "SPLITSTREAM_QUERY_ADDR": freeAddr(t),
			"SPLITSTREAM_JWT_SECRET": testJWTSecret, "SPLITSTREAM_TOKEN_SECRET": testTokenSecret}
		for k, v := range base {
			env[k] = v
		}
		addr := env["SPLITSTREAM_ADMIN_ADDR"]
		if role == "query" {
			addr = env["SPLITSTREAM_QUERY_ADDR"]
		}
		ready = append(ready, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			var stderr lockedBuffer
			if code := run(ctx, []string{role}, func(k string) string { return env[k] }, io.Discard, &stderr); ctx.Err() == nil {
				t.Errorf("%s copy %d exited with %d before the test ended: %s", role, i, code, stderr.tail(500))
			}
		}()
	}
	close(start)
	for _, addr := range ready {
		deadline := time.Now().Add(60 * time.Second)
		for {
			res, err := http.Get("http://" + addr + "/readyz")
			if err == nil {
				res.Body.Close()
				if res.StatusCode == http.StatusOK {
					break
				}
			}
			if time.Now().After(deadline) || t.Failed() {
				t.Fatalf("%s not ready (%v)", addr, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	var got map[string]struct {
		Aliases map[string]struct {
			IsWriteIndex bool `json:"is_write_index"`
		} `json:"aliases"`
	}
	if err := elastic.Do(context.Background(), es, http.MethodGet, "/"+prefix+"-*/_alias", "", &got); err != nil {
		t.Fatal(err)
	}
	models := append(append([]string{}, elastic.Models...), query.Checkpoints.Index)
	if len(got) != len(models) {
		names := make([]string, 0, len(got))
		for n := range got {
			names = append(names, n)
		}
		t.Errorf("%d indices under %s, want %d: %s", len(got), prefix, len(models), strings.Join(names, ", "))
	}
	for _, m := range models {
		alias := elastic.Alias(prefix, m)
		var writes []string
		for name, idx := range got {
			if a, ok := idx.Aliases[alias]; ok && a.IsWriteIndex {
				writes = append(writes, name)
			}
		}
		if len(writes) != 1 {
			t.Errorf("%s: write indices %v, want exactly one", alias, writes)
		}
	}
}

// lockedBuffer collects a copy's error output, written from any goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	return len(p), nil
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.buf[max(0, len(b.buf)-n):])
}
