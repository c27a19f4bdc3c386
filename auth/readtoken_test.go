package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/splitstream/splitstream/event"
)

func TestReadTokens(t *testing.T) {
	rt, err := NewReadTokens(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range [][]event.ReadPoint{
		{{Lane: 0}},
		{{Lane: 3, Cursor: event.Cursor{Tx: 1, Position: 2}}},
		{{Lane: event.WholeLog, Cursor: event.Cursor{Tx: 1<<63 + 5, Position: 1<<62 + 7}}},
		{{Lane: 254, Cursor: event.Cursor{Tx: 9, Position: 9}}, {Lane: 1, Cursor: event.Cursor{Tx: 8, Position: 3}}},
	} {
		got, err := rt.Open(rt.Seal(ps))
		if err != nil || !reflect.DeepEqual(got, ps) {
			t.Errorf("Open(Seal(%v)) = %v, %v", ps, got, err)
		}
	}
	point := []event.ReadPoint{{Lane: 2, Cursor: event.Cursor{Tx: 10, Position: 20}}}
	tok := rt.Seal(point)
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
		"other secret": other.Seal(point),
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

// A v2 token, as signed before lanes, is refused with its own error.
func TestReadTokensRefuseV2(t *testing.T) {
	rt, err := NewReadTokens(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	b := []byte{2}
	b = binary.BigEndian.AppendUint64(b, 10)
	b = binary.BigEndian.AppendUint64(b, 20)
	m := hmac.New(sha256.New, rt.key)
	m.Write(b)
	b = append(b, m.Sum(nil)[:macBytes]...)
	if _, err := rt.Open(base64.RawURLEncoding.EncodeToString(b)); !errors.Is(err, ErrOldReadToken) {
		t.Fatalf("v2 token: %v, want ErrOldReadToken", err)
	}
}
