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

// readTokenVersion is the first byte of every token: v1 was unsigned, v2
// named one cursor of the whole log, v3 names lane cursors.
const readTokenVersion = 3

// macBytes is how much of the HMAC-SHA256 a token carries (128 bits).
const macBytes = 16

// MaxReadPoints bounds the lanes one token names (a mutation writes one
// stream, so one lane; the bound keeps a forged length cheap to refuse).
const MaxReadPoints = 8

// pointBytes is one point: the lane (255 for the whole log), tx, position.
const pointBytes = 1 + 8 + 8

// wholeLogLane is WholeLog on the wire.
const wholeLogLane = 255

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

// Seal returns the opaque token for points (at most MaxReadPoints; lanes
// 0..254 or event.WholeLog); more are cut to the bound.
func (t *ReadTokens) Seal(points []event.ReadPoint) string {
	points = points[:min(len(points), MaxReadPoints)]
	b := make([]byte, 0, 2+len(points)*pointBytes+macBytes)
	b = append(b, readTokenVersion, byte(len(points)))
	for _, p := range points {
		lane := byte(wholeLogLane)
		if p.Lane >= 0 && p.Lane < wholeLogLane {
			lane = byte(p.Lane)
		}
		b = append(b, lane)
		b = binary.BigEndian.AppendUint64(b, p.Cursor.Tx)
		b = binary.BigEndian.AppendUint64(b, uint64(p.Cursor.Position))
	}
	b = append(b, t.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

// ErrBadReadToken is a token this system did not sign.
var ErrBadReadToken = errors.New("not a token returned by a mutation")

// ErrOldReadToken is a token signed before lanes (v2): it names no lane,
// so it cannot say what to wait for.
var ErrOldReadToken = fmt.Errorf("%w (before projector lanes); use the token of a new mutation", event.ErrOldToken)

// Open checks token's signature and returns its points.
func (t *ReadTokens) Open(token string) ([]event.ReadPoint, error) {
	if len(token) > base64.RawURLEncoding.EncodedLen(2+MaxReadPoints*pointBytes+macBytes) {
		return nil, ErrBadReadToken
	}
	b, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil || len(b) < 2+macBytes {
		return nil, ErrBadReadToken
	}
	if b[0] == 2 && len(b) == 1+8+8+macBytes {
		return nil, ErrOldReadToken
	}
	n := int(b[1])
	if b[0] != readTokenVersion || n < 1 || n > MaxReadPoints || len(b) != 2+n*pointBytes+macBytes {
		return nil, ErrBadReadToken
	}
	body, sum := b[:len(b)-macBytes], b[len(b)-macBytes:]
	if !hmac.Equal(sum, t.mac(body)) {
		return nil, ErrBadReadToken
	}
	out := make([]event.ReadPoint, n)
	for i := range out {
		p := body[2+i*pointBytes:]
		pos := int64(binary.BigEndian.Uint64(p[9:17]))
		if pos < 0 {
			return nil, ErrBadReadToken
		}
		lane := int(p[0])
		if lane == wholeLogLane {
			lane = event.WholeLog
		}
		out[i] = event.ReadPoint{Lane: lane, Cursor: event.Cursor{Tx: binary.BigEndian.Uint64(p[1:9]), Position: pos}}
	}
	return out, nil
}
