package elastic

import (
	"context"
	"sync"
)

// coalesce runs fn for many callers at once: a caller joins the next run
// that starts after its call, never one already under way, so the effect it
// waits for is the one it asked for.
type coalesce struct {
	mu      sync.Mutex
	running bool
	next    *run
}

type run struct {
	done chan struct{}
	err  error
}

// Do waits for a run of fn that started after this call.
func (c *coalesce) Do(ctx context.Context, fn func(context.Context) error) error {
	c.mu.Lock()
	if c.next == nil {
		c.next = &run{done: make(chan struct{})}
	}
	r := c.next
	if !c.running {
		c.start(fn)
	}
	c.mu.Unlock()
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// start runs the pending run; called with mu held.
func (c *coalesce) start(fn func(context.Context) error) {
	r := c.next
	c.next = nil
	c.running = true
	go func() {
		r.err = fn(context.Background())
		close(r.done)
		c.mu.Lock()
		c.running = false
		if c.next != nil {
			c.start(fn)
		}
		c.mu.Unlock()
	}()
}
