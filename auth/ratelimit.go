package auth

import (
	"math"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/golang-lru/v2/simplelru"
	"golang.org/x/time/rate"
)

// MaxTrackedCallers bounds the limiter map: past it the least recently seen
// caller is forgotten (and starts again with a full burst if it returns),
// so a flood from many addresses cannot grow memory (~100 B a caller).
const MaxTrackedCallers = 100_000

// Limits holds one token bucket per caller. A caller over its rate is told
// when to retry and never waits, so one caller's flood holds up no one else.
type Limits struct {
	rate  rate.Limit
	burst int

	mu      sync.Mutex
	callers *simplelru.LRU[string, *rate.Limiter]
}

// NewLimits allows perSecond requests a second per caller with a burst of
// twice that; nil (no limits) when perSecond is 0.
func NewLimits(perSecond float64, maxCallers int) *Limits {
	if perSecond <= 0 {
		return nil
	}
	burst := int(math.Ceil(2 * perSecond))
	lru, err := simplelru.NewLRU[string, *rate.Limiter](maxCallers, nil)
	if err != nil {
		panic(err) // only for a non-positive size, a programming error
	}
	return &Limits{rate: rate.Limit(perSecond), burst: burst, callers: lru}
}

// Allow takes one request from key's bucket; when empty it returns false and
// how long until a request would be allowed.
func (l *Limits) Allow(key string, now time.Time) (bool, time.Duration) {
	l.mu.Lock()
	lim, ok := l.callers.Get(key)
	if !ok {
		lim = rate.NewLimiter(l.rate, l.burst)
		l.callers.Add(key, lim)
	}
	l.mu.Unlock()
	r := lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// Tracked is how many callers the limiter remembers.
func (l *Limits) Tracked() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.callers.Len()
}

// limitKey is whom a request counts against: the token's subject, or the
// client's address for anonymous callers (an IPv6 client by its /64, which
// one host usually holds whole).
func limitKey(c Caller, remoteAddr string) string {
	if c.Subject != "" && c.Invalid == nil {
		return "sub:" + c.Subject
	}
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	addr, err := netip.ParseAddr(host)
	if err != nil {
		return "addr:" + host
	}
	addr = addr.Unmap()
	if addr.Is6() {
		p, _ := addr.Prefix(64)
		return "net:" + p.String()
	}
	return "addr:" + addr.String()
}
