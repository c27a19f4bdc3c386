package event

import "testing"

func TestTokenRoundTrip(t *testing.T) {
	for _, c := range []Cursor{{}, {Tx: 1, Position: 1}, {Tx: 1 << 40, Position: 987654321}} {
		got, err := ParseToken(c.Token())
		if err != nil || got != c {
			t.Fatalf("ParseToken(%v.Token()) = %v, %v", c, got, err)
		}
	}
	for _, bad := range []string{"", "xyz", Cursor{}.Token() + "=", "djI6MToy" /* v2:1:2 */} {
		if _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) accepted a bad token", bad)
		}
	}
}

func TestCursorOrder(t *testing.T) {
	a, b, c := Cursor{Tx: 5, Position: 9}, Cursor{Tx: 6, Position: 2}, Cursor{Tx: 6, Position: 3}
	if !a.Less(b) || !b.Less(c) || c.Less(a) || a.Less(a) {
		t.Fatal("relay order is tx first, then position")
	}
}
