package postgres

import "time"

// NextSQL is the relay's batch query, so that a test can EXPLAIN the very
// statement Next runs rather than a copy of it.
const NextSQL = nextSQL

// SetListenPing sets how long Listen waits in silence before it pings.
func (s *RelaySource) SetListenPing(d time.Duration) { s.listenPing = d }
