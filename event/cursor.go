package event

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Cursor is a place in relay order: events are published ordered by the
// writing transaction's id, then by position. Everything below the oldest
// running transaction is final in that order, which is what makes the relay
// gap-safe and lets the read side keep a watermark without holes.
type Cursor struct {
	Tx       uint64 `json:"tx"`
	Position int64  `json:"position"`
}

// Less reports whether c comes before d in relay order.
func (c Cursor) Less(d Cursor) bool {
	if c.Tx != d.Tx {
		return c.Tx < d.Tx
	}
	return c.Position < d.Position
}

// IsZero reports whether c is the start of the log.
func (c Cursor) IsZero() bool { return c.Tx == 0 && c.Position == 0 }

// ErrBadToken is returned for a token that this system did not issue.
var ErrBadToken = errors.New("malformed consistency token")

// ErrOldToken is a token of a version this build no longer reads (a
// signed token from before projector lanes names no lane).
var ErrOldToken = errors.New("read-your-writes token of an older version")

// Token encodes c as the opaque read-your-writes token returned by mutations.
func (c Cursor) Token() string {
	return base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("v1:%d:%d", c.Tx, c.Position)))
}

// ParseToken decodes a token made by Cursor.Token.
func ParseToken(token string) (Cursor, error) {
	raw, err := base64.RawURLEncoding.DecodeString(token)
	if err != nil {
		return Cursor{}, ErrBadToken
	}
	parts := strings.Split(string(raw), ":")
	if len(parts) != 3 || parts[0] != "v1" {
		return Cursor{}, ErrBadToken
	}
	tx, err1 := strconv.ParseUint(parts[1], 10, 64)
	pos, err2 := strconv.ParseInt(parts[2], 10, 64)
	if err1 != nil || err2 != nil || pos < 0 {
		return Cursor{}, ErrBadToken
	}
	return Cursor{Tx: tx, Position: pos}, nil
}

// Record is an event in relay order: its own cursor and the cursor of the
// event published just before it. A consumer that has applied Prev and then
// this record knows it has applied everything up to Cursor, with no holes.
type Record struct {
	Envelope Envelope
	Cursor   Cursor
	Prev     Cursor
	// Lanes is how many projector lanes the relay routed the record
	// among (0: not routed to lanes), Lane the one it went to, and
	// LanePrev the cursor of the record published just before it in the
	// same lane: a lane's consumer chains its watermark by LanePrev.
	Lanes    int
	Lane     int
	LanePrev Cursor
}

// WholeLog is the lane of a ReadPoint on the whole log's watermark, as
// kept by a projector without lanes.
const WholeLog = -1

// ReadPoint is what a read-your-writes token waits for: lane Lane's
// watermark (or, for WholeLog, the whole log's) at or past Cursor. A
// lane's watermark covers only that lane's events, so a token names the
// lanes its mutation wrote to, and a read waits for those alone.
type ReadPoint struct {
	Lane   int
	Cursor Cursor
}
