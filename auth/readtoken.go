package auth

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/splitstream/splitstream/event"
)

// ReadTokens signs the read-your-writes tokens mutations return, so a
// client cannot make the query service wait for a place in the log that
// was never written. Every instance shares the secret.
type ReadTokens struct {
	key []byte
}

// readTokenVersion is the first byte of every token; v1 was unsigned.
const readTokenVersion = 2

// macBytes is how much of the HMAC-SHA256 a token carries (128 bits).
const macBytes = 16

const readTokenBytes = 1 + 8 + 8 + macBytes

// NewReadTokens returns tokens signed with secret (at least MinSecretBytes).
func NewReadTokens(secret []byte) (*ReadTokens, error) {
	if len(secret) < MinSecretBytes {
		return nil, fmt.Errorf("auth: SPLITSTREAM_TOKEN_SECRET must be at least %d bytes", MinSecretBytes)
	}
	// A key of its own, so the token secret and the JWT secret may be the
	// same bytes without one kind of signature passing for the other.
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("splitstream read-your-writes token"))
	return &ReadTokens{key: m.Sum(nil)}, nil
}

func (t *ReadTokens) mac(body []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write(body)
	return m.Sum(nil)[:macBytes]
}

// Seal returns the opaque token for c.
func (t *ReadTokens) Seal(c event.Cursor) string {
	b := make([]byte, 0, readTokenBytes)
	b = append(b, readTokenVersion)
	b = binary.BigEndian.AppendUint64(b, c.Tx)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Position))
	b = append(b, t.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ErrBadReadToken is a token this system did not sign.
var ErrBadReadToken = errors.New("not a token returned by a mutation")

// Open checks token's signature and returns its cursor.
func (t *ReadTokens) Open(token string) (event.Cursor, error) {
	if base64.RawURLEncoding.DecodedLen(len(token)) != readTokenBytes {
		return event.Cursor{}, ErrBadReadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) != readTokenBytes || b[0] != readTokenVersion {
		return event.Cursor{}, ErrBadReadToken
	}
	body, sum := b[:readTokenBytes-macBytes], b[readTokenBytes-macBytes:]
	if !hmac.Equal(sum, t.mac(body)) {
		return event.Cursor{}, ErrBadReadToken
	}
	pos := int64(binary.BigEndian.Uint64(body[9:17]))
	if pos < 0 {
		return event.Cursor{}, ErrBadReadToken
	}
	return event.Cursor{Tx: binary.BigEndian.Uint64(body[1:9]), Position: pos}, nil
}
