package query

import (
	"fmt"
	"testing"
)

// A subscriber's memory of the revisions it was sent is bounded, and
// still keeps an older revision of a recent document from going out again.
func TestSubscriberMemoryIsBounded(t *testing.T) {
	s := newSub[Product](1)
	for i := range 3 * maxSeen {
		id := fmt.Sprintf("p%d", i)
		if !s.offer(id, 2, &Product{ID: id}) {
			t.Fatalf("offer %d: subscriber full", i)
		}
		<-s.ch
		if len(s.seen) > maxSeen {
			t.Fatalf("after %d documents the subscriber remembers %d revisions, over %d", i+1, len(s.seen), maxSeen)
		}
	}
	last := fmt.Sprintf("p%d", 3*maxSeen-1)
	s.offer(last, 1, &Product{ID: last})
	select {
	case <-s.ch:
		t.Fatal("an older revision of a document just sent went out again")
	default:
	}
}
