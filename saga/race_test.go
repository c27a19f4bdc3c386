package saga_test

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/splitstream/splitstream/command"
	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/saga"
)

// The races the package comment argues about, made to happen on purpose:
// the saga's commands go through a hook that can hold one back or fail it.

// hookedCommands runs before ahead of every command.
type hookedCommands struct {
	saga.Commands
	before func(mutation, id string) error
}

func (h hookedCommands) ChangeProduct(ctx context.Context, id string, m command.Meta, c command.ProductCommand) (command.Result, error) {
	if err := h.before(string(c.CommandName()), id); err != nil {
		return command.Result{}, err
	}
	return h.Commands.ChangeProduct(ctx, id, m, c)
}

func (h hookedCommands) ChangeOrder(ctx context.Context, id string, m command.Meta, c command.OrderCommand) (command.Result, error) {
	if err := h.before(string(c.CommandName()), id); err != nil {
		return command.Result{}, err
	}
	return h.Commands.ChangeOrder(ctx, id, m, c)
}

// A saga is half-way through reserving when a cancel, or the deadline,
// rejects the order and releases what is reserved so far. The slow saga
// then reserves the last line, fails to confirm, and releases it: nothing
// stays reserved. (A release sent without first looking would be recorded
// as a no-op before that last reservation, and its replay would leave the
// reservation stranded.)
func TestOrderEndsWhileTheSagaIsReserving(t *testing.T) {
	for _, interrupt := range []string{"cancel", "deadline"} {
		t.Run(interrupt, func(t *testing.T) {
			s := newStack(t, slog.LevelInfo)
			kettle := s.createProduct("Kettle", 5)
			mug := s.createProduct("Mug", 5)
			id := s.mustPlace(line{kettle, 1}, line{mug, 2})
			h, err := s.events.Load(s.ctx, id)
			if err != nil {
				t.Fatal(err)
			}

			reached, resume := make(chan struct{}), make(chan struct{})
			var once sync.Once
			slow := s.startSaga(sagaOpts{commands: hookedCommands{Commands: s.svc, before: func(mutation, pid string) error {
				if mutation == "reserveStock" && pid == mug {
					once.Do(func() {
						close(reached)
						<-resume
					})
				}
				return nil
			}}})
			done := make(chan error, 1)
			go func() { done <- slow.saga.Handle(s.ctx, h[0]) }()
			<-reached

			other := s.startSaga(sagaOpts{deadline: time.Millisecond})
			want := command.StatusCancelled
			switch interrupt {
			case "cancel":
				if err := s.cancelOrder(id); err != nil {
					t.Fatal(err)
				}
				h, err := s.events.Load(s.ctx, id)
				if err != nil {
					t.Fatal(err)
				}
				if err := other.saga.Handle(s.ctx, h[len(h)-1]); err != nil {
					t.Fatal(err)
				}
			case "deadline":
				want = command.StatusRejected
				time.Sleep(10 * time.Millisecond)
				if n, err := other.saga.ExpireDue(s.ctx); err != nil || n != 1 {
					t.Fatalf("expired %d orders (%v), want 1", n, err)
				}
			}
			if err := s.released(kettle, 5); err != nil {
				t.Fatal(err)
			}

			close(resume)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if o := s.order(id); o.Status != want {
				t.Fatalf("order is %s, want %s", o.Status, want)
			}
			for _, p := range []string{kettle, mug} {
				if err := s.released(p, 5); err != nil {
					t.Error(err)
				}
			}
			var reserved, released int
			for _, e := range s.history(mug) {
				switch e.(type) {
				case event.StockReserved:
					reserved++
				case event.StockReleased:
					released++
				}
			}
			if reserved != 1 || released != 1 {
				t.Errorf("mug: %d reservations and %d releases, want one of each", reserved, released)
			}
		})
	}
}

// A line is refused and the rejection itself fails (Postgres away). By the
// retry, stock has come back for that line. The order is still rejected,
// with the first reason, and only then is its stock released: releasing
// before rejecting would have let the retry confirm an order whose first
// line was given back.
func TestRejectionSurvivesAFailedAttempt(t *testing.T) {
	s := newStack(t, slog.LevelInfo)
	kettle := s.createProduct("Kettle", 5)
	toaster := s.createProduct("Toaster", 1)
	id := s.mustPlace(line{kettle, 2}, line{toaster, 3})
	h, err := s.events.Load(s.ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var failed bool
	sg := s.startSaga(sagaOpts{commands: hookedCommands{Commands: s.svc, before: func(mutation, _ string) error {
		if mutation == "rejectOrder" && !failed {
			failed = true
			return errors.New("connection reset by peer")
		}
		return nil
	}}})

	if err := sg.saga.Handle(s.ctx, h[0]); err == nil {
		t.Fatal("first attempt: no error")
	}
	if o := s.order(id); o.Status != command.StatusPending {
		t.Fatalf("order is %s after the failed attempt, want PENDING", o.Status)
	}
	if p := s.product(kettle); p.Reserved[id] != 2 {
		t.Fatalf("kettle holds %v; the reservation must stand until the order is rejected", p.Reserved)
	}
	if _, err := s.svc.ChangeProduct(s.ctx, toaster, command.Meta{}, command.RestockProduct{Quantity: 5}); err != nil {
		t.Fatal(err)
	}

	if err := sg.saga.Handle(s.ctx, h[0]); err != nil {
		t.Fatal(err)
	}
	o := s.order(id)
	if want := "insufficient stock for Toaster: 1 left, 3 wanted"; o.Status != command.StatusRejected || o.Reason != want {
		t.Fatalf("order is %s (%q), want REJECTED (%q)", o.Status, o.Reason, want)
	}
	if err := s.released(kettle, 5); err != nil {
		t.Error(err)
	}
	if err := s.released(toaster, 6); err != nil {
		t.Error(err)
	}
}
