package postgres_test

import (
	"context"
	"testing"

	"github.com/splitstream/splitstream/event"
	"github.com/splitstream/splitstream/internal/testenv"
)

// The lanes' cursors are saved with the relay's checkpoint, and never
// moved back with it.
func TestRelaySourceSavesLaneCursors(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx := context.Background()
	src := testenv.RelaySource(t, pool)
	if got, err := src.LaneCheckpoint(ctx, "r"); err != nil || len(got) != 0 {
		t.Fatalf("before any save: %v, %v", got, err)
	}
	lanes := []event.Cursor{{Tx: 5, Position: 9}, {}, {Tx: 1 << 40, Position: 12}}
	if err := src.SaveLanes(ctx, "r", event.Cursor{Tx: 1 << 40, Position: 12}, lanes); err != nil {
		t.Fatal(err)
	}
	if err := src.SaveLanes(ctx, "r", event.Cursor{Tx: 3, Position: 3}, []event.Cursor{{Tx: 3, Position: 3}}); err != nil {
		t.Fatal(err)
	}
	got, err := src.LaneCheckpoint(ctx, "r")
	if err != nil || len(got) != 3 || got[0] != lanes[0] || got[2] != lanes[2] {
		t.Fatalf("lanes %v, %v; want %v", got, err, lanes)
	}
	if c, _ := src.Checkpoint(ctx, "r"); c != (event.Cursor{Tx: 1 << 40, Position: 12}) {
		t.Fatalf("checkpoint %v", c)
	}
}
