package main

import (
	"context"
	"log/slog"
	"slices"
	"testing"
)

// Each server is opened once however often it is asked for, and what was
// opened is closed in reverse order.
func TestDepsOpenOnceCloseInReverse(t *testing.T) {
	d := &deps{log: slog.New(slog.DiscardHandler)}
	var dials, closed []string
	opener := func(name string, held **string) func() (*string, error) {
		return func() (*string, error) {
			return open(context.Background(), d, held, name, func(context.Context) (*string, error) {
				dials = append(dials, name)
				return &name, nil
			}, func(*string) { closed = append(closed, name) })
		}
	}
	var first, second *string
	a, b := opener("first", &first), opener("second", &second)
	for _, o := range []func() (*string, error){a, b, a, b} {
		if _, err := o(); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(dials, []string{"first", "second"}) {
		t.Fatalf("dialled %v, want each once", dials)
	}
	d.close()
	if !slices.Equal(closed, []string{"second", "first"}) {
		t.Fatalf("closed %v, want the reverse of opening", closed)
	}
}
