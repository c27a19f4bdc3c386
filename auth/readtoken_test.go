package auth

import (
	"encoding/base64"
	"testing"

	"github.com/splitstream/splitstream/event"
)

func TestReadTokens(t *testing.T) {
	rt, err := NewReadTokens(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []event.Cursor{{}, {Tx: 1, Position: 2}, {Tx: 1<<63 + 5, Position: 1<<62 + 7}} {
		got, err := rt.Open(rt.Seal(c))
		if err != nil || got != c {
			t.Errorf("Open(Seal(%v)) = %v, %v", c, got, err)
		}
	}
	tok := rt.Seal(event.Cursor{Tx: 10, Position: 20})
	raw, _ := base64.RawURLEncoding.DecodeString(tok)
	// Every flipped bit fails, and so does a token from another secret, an
	// unsigned v1 token and a truncated one.
	for i := range raw {
		b := append([]byte(nil), raw...)
		b[i] ^= 1
		if _, err := rt.Open(base64.RawURLEncoding.EncodeToString(b)); err == nil {
			t.Errorf("byte %d flipped: accepted", i)
		}
	}
	other, _ := NewReadTokens([]byte("another secret, also 32 bytes long!"))
	for name, bad := range map[string]string{
		"other secret": other.Seal(event.Cursor{Tx: 10, Position: 20}),
		"v1":           event.Cursor{Tx: 10, Position: 20}.Token(),
		"truncated":    tok[:len(tok)-2],
		"empty":        "",
		"padded":       tok + "==",
	} {
		if _, err := rt.Open(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewReadTokens([]byte("short")); err == nil {
		t.Error("short secret accepted")
	}
}
