package query

import (
	"fmt"
	"testing"

	"github.com/splitstream/splitstream/event"
)

// Every kind has one name and one index, and what it declares is whole.
func TestKindsAreDeclaredOnce(t *testing.T) {
	names, indices, streams := map[Name]bool{}, map[string]bool{}, map[string]Name{}
	for _, k := range Kinds() {
		if names[k.Name] || indices[k.Index] {
			t.Errorf("%s: name or index %q declared twice", k.Name, k.Index)
		}
		names[k.Name], indices[k.Index] = true, true
		if k.Type == nil || k.New == nil || k.Version == nil {
			t.Errorf("%s: not declared with declare", k.Name)
		}
		if len(k.Streams) > 0 && (k.Apply == nil || k.Family == nil) {
			t.Errorf("%s: has streams but no fold or family", k.Name)
		}
		for _, s := range k.Streams {
			if other, ok := streams[s]; ok {
				t.Errorf("stream type %q is the own stream of %s and %s", s, other, k.Name)
			}
			streams[s] = k.Name
		}
		if k.Summary != nil {
			if _, ok := KindNamed(k.Summary.Of.Name); !ok {
				t.Errorf("%s sums %s, which is not declared", k.Name, k.Summary.Of.Name)
			}
		}
	}
	// Every stream the write side has is some kind's own.
	for _, s := range []string{event.StreamProduct, event.StreamReview, event.StreamOrder, event.StreamCustomer} {
		k, ok := KindOfStream(s)
		if !ok {
			t.Errorf("stream type %q has no kind", s)
			continue
		}
		if string(k.Name) != s {
			t.Errorf("stream type %q belongs to kind %q: one spelling wanted", s, k.Name)
		}
	}
	if _, ok := KindOfStream("wishlist"); ok {
		t.Error("an undeclared stream type has a kind")
	}
}

// A product and its reviews share a lane; an order has its own.
func TestLanes(t *testing.T) {
	lane := func(stream, id string, pl event.Payload) string {
		t.Helper()
		l, ok := LaneOf(event.Envelope{StreamType: stream, StreamID: id}, pl)
		if !ok {
			t.Fatalf("%s %s: no lane", stream, id)
		}
		return l
	}
	p := lane(event.StreamProduct, "p1", event.ProductRenamed{Name: "n"})
	if r := lane(event.StreamReview, "r1", event.ReviewAdded{ProductID: "p1"}); r != p {
		t.Errorf("review lane %q, product lane %q: want one", r, p)
	}
	if r := lane(event.StreamReview, "r1", event.ReviewRemoved{ProductID: "p1"}); r != p {
		t.Errorf("removed review lane %q, product lane %q: want one", r, p)
	}
	if o := lane(event.StreamOrder, "p1", event.OrderConfirmed{}); o == p {
		t.Errorf("order p1 shares product p1's lane %q", o)
	}
	if lane(event.StreamProduct, "p2", event.ProductRenamed{}) == p {
		t.Error("two products share a lane")
	}
	if _, ok := LaneOf(event.Envelope{StreamType: "wishlist", StreamID: "w1"}, nil); ok {
		t.Error("an undeclared stream type has a lane")
	}
}

func TestLaneIsStableAndSpread(t *testing.T) {
	// The lane of a family is part of a deployment's data: a changed hash
	// would route a document's later events to another lane than its
	// earlier ones. These values pin it.
	for _, c := range []struct {
		family string
		lanes  int
		want   int
	}{{"product:p-1", 4, 0}, {"order:o-1", 4, 2}, {"review:x", 8, 3}} {
		if got := Lane(c.family, c.lanes); got != c.want {
			t.Errorf("Lane(%q, %d) = %d, want %d", c.family, c.lanes, got, c.want)
		}
	}
	if Lane("anything", 1) != 0 || Lane("anything", 0) != 0 {
		t.Fatal("one lane must be lane 0")
	}
	counts := make([]int, 8)
	for i := 0; i < 8000; i++ {
		counts[Lane(fmt.Sprintf("product:%d", i), 8)]++
	}
	for lane, n := range counts {
		if n < 800 || n > 1200 {
			t.Errorf("lane %d has %d of 8000 families, want about 1000", lane, n)
		}
	}
}
