package postgres_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/splitstream/splitstream/internal/testenv"
	"github.com/splitstream/splitstream/postgres"
)

// A lane is claimed by one member at a time; a claim of a free or expired
// lane bumps its epoch; a deposed holder can neither renew nor release;
// the log has every claim and release.
func TestLeasesClaimExpireFence(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx := context.Background()
	const ttl = 400 * time.Millisecond
	a, err := postgres.NewLeases(pool, "a", ttl)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := postgres.NewLeases(pool, "b", ttl)
	if _, err := postgres.NewLeases(nil, "x", ttl); err == nil {
		t.Fatal("nil pool accepted")
	}

	ea, ok, err := a.Claim(ctx, 3)
	if err != nil || !ok || ea != 1 {
		t.Fatalf("a claims lane 3: epoch %d, %v, %v", ea, ok, err)
	}
	if _, ok, err := b.Claim(ctx, 3); err != nil || ok {
		t.Fatalf("b claimed a held lane: %v, %v", ok, err)
	}
	if got, err := a.Renew(ctx, map[int]int64{3: ea}); err != nil || got[3] != ea {
		t.Fatalf("a renews: %v, %v", got, err)
	}
	time.Sleep(ttl + 100*time.Millisecond) // a stops renewing: its lease expires
	eb, ok, err := b.Claim(ctx, 3)
	if err != nil || !ok || eb != ea+1 {
		t.Fatalf("b claims the expired lane: epoch %d, %v, %v", eb, ok, err)
	}
	if got, err := a.Renew(ctx, map[int]int64{3: ea}); err != nil || len(got) != 0 {
		t.Fatalf("deposed a renewed: %v, %v", got, err)
	}
	if err := a.Release(ctx, 3, ea); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := a.Claim(ctx, 3); ok {
		t.Fatal("a's stale release freed b's lane")
	}
	if err := b.Release(ctx, 3, eb); err != nil {
		t.Fatal(err)
	}
	if ea2, ok, err := a.Claim(ctx, 3); err != nil || !ok || ea2 != eb+1 {
		t.Fatalf("a claims the released lane: %d, %v, %v", ea2, ok, err)
	}

	log, err := postgres.LeaseLog(ctx, pool)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range log {
		got = append(got, e.Member+" "+e.Action)
	}
	want := []string{"a claim", "b claim", "b release", "a claim"}
	if len(got) != len(want) {
		t.Fatalf("lease log %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("lease log %v, want %v", got, want)
		}
	}
}

// Members that heartbeat are live until the TTL passes without one; Leave
// takes one out at once.
func TestLeasesHeartbeat(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx := context.Background()
	const ttl = 300 * time.Millisecond
	a, _ := postgres.NewLeases(pool, "a", ttl)
	b, _ := postgres.NewLeases(pool, "b", ttl)
	c, _ := postgres.NewLeases(pool, "c", ttl)
	for _, l := range []*postgres.Leases{c, a, b} {
		if _, err := l.Heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if m, _ := a.Heartbeat(ctx); len(m) != 3 || m[0] != "a" || m[2] != "c" {
		t.Fatalf("members %v, want [a b c]", m)
	}
	if err := b.Leave(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl + 100*time.Millisecond) // c stops heartbeating
	if m, _ := a.Heartbeat(ctx); len(m) != 1 || m[0] != "a" {
		t.Fatalf("members %v, want [a]", m)
	}
}

// The first process records P; another P is refused with what to do.
func TestCheckLanes(t *testing.T) {
	_, pool := testenv.Postgres(t)
	ctx := context.Background()
	if err := postgres.CheckLanes(ctx, pool, 8); err != nil {
		t.Fatal(err)
	}
	if err := postgres.CheckLanes(ctx, pool, 8); err != nil {
		t.Fatalf("same P again: %v", err)
	}
	err := postgres.CheckLanes(ctx, pool, 4)
	if !errors.Is(err, postgres.ErrLanesChanged) {
		t.Fatalf("another P: %v, want ErrLanesChanged", err)
	}
	t.Log(err)
	for _, bad := range []int{0, 256} {
		if postgres.CheckLanes(ctx, pool, bad) == nil {
			t.Fatalf("%d lanes accepted", bad)
		}
	}
}
