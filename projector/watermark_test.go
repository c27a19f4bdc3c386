package projector

import (
	"math/rand/v2"
	"testing"

	"github.com/splitstream/splitstream/event"
)

func chain(n int) (cur, prev []event.Cursor) {
	p := event.Cursor{}
	for i := 1; i <= n; i++ {
		// Transactions hold 1 to 3 events; positions are not in tx order.
		c := event.Cursor{Tx: uint64(100 + i/3), Position: int64((i%3)*10000 + 5000 - i/3)}
		cur, prev = append(cur, c), append(prev, p)
		p = c
	}
	return cur, prev
}

func TestWatermarkInOrder(t *testing.T) {
	cur, prev := chain(10)
	w := newWatermark(event.Cursor{})
	for i := range cur {
		if !w.done(cur[i], prev[i]) || w.at != cur[i] {
			t.Fatalf("record %d did not move the watermark: %v", i, w.at)
		}
	}
}

func TestWatermarkHoldsUntilTheHoleFills(t *testing.T) {
	cur, prev := chain(5)
	w := newWatermark(event.Cursor{})
	w.done(cur[0], prev[0])
	if w.done(cur[2], prev[2]) || w.done(cur[3], prev[3]) {
		t.Fatal("the watermark passed a hole")
	}
	if w.at != cur[0] {
		t.Fatalf("watermark = %v, want %v", w.at, cur[0])
	}
	if !w.done(cur[1], prev[1]) || w.at != cur[3] {
		t.Fatalf("filling the hole: watermark = %v, want %v", w.at, cur[3])
	}
	if len(w.held) != 0 {
		t.Fatalf("held = %v, want none", w.held)
	}
}

func TestWatermarkShuffledAndDuplicated(t *testing.T) {
	cur, prev := chain(500)
	idx := make([]int, 0, 1000)
	for i := range cur {
		idx = append(idx, i, i)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	rng.Shuffle(len(idx), func(a, b int) { idx[a], idx[b] = idx[b], idx[a] })
	at := map[event.Cursor]int{}
	for i, c := range cur {
		at[c] = i
	}
	seen := make([]bool, len(cur))
	w := newWatermark(event.Cursor{})
	for _, i := range idx {
		w.done(cur[i], prev[i])
		seen[i] = true
		if w.at == (event.Cursor{}) {
			continue
		}
		for j := 0; j <= at[w.at]; j++ {
			if !seen[j] {
				t.Fatalf("watermark %v passed record %d, not seen yet", w.at, j)
			}
		}
	}
	if w.at != cur[len(cur)-1] || len(w.held) != 0 {
		t.Fatalf("watermark = %v with %d held, want %v and none", w.at, len(w.held), cur[len(cur)-1])
	}
}

func TestWatermarkIgnoresWhatItHasPassed(t *testing.T) {
	cur, prev := chain(3)
	w := newWatermark(cur[1]) // resumed from a checkpoint
	if w.done(cur[0], prev[0]) || w.done(cur[1], prev[1]) {
		t.Fatal("a redelivery below the watermark moved it")
	}
	if !w.done(cur[2], prev[2]) || w.at != cur[2] {
		t.Fatalf("watermark = %v, want %v", w.at, cur[2])
	}
}
