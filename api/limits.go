package api

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limit is a token-bucket rate: Rate tokens per second, bursts of Burst.
// The zero value means no limit.
type Limit struct {
	Rate  float64
	Burst int
}

func (l Limit) off() bool { return l.Rate <= 0 }

// limiters holds one token bucket per key (API key or user id). It is
// bounded: keys live in two generations; when the current one is full it
// becomes the previous and the older one is dropped, so idle keys age out
// without a sweeper goroutine and memory stays under 2×max buckets.
type limiters struct {
	limit Limit
	max   int

	mu        sync.Mutex
	cur, prev map[string]*rate.Limiter
}

func newLimiters(l Limit, max int) *limiters {
	return &limiters{limit: l, max: max, cur: map[string]*rate.Limiter{}}
}

// allow takes n tokens for key; when refused it returns how long to wait.
func (ls *limiters) allow(key string, n int, now time.Time) (bool, time.Duration) {
	if ls == nil || ls.limit.off() {
		return true, 0
	}
	ls.mu.Lock()
	lim := ls.cur[key]
	if lim == nil {
		if lim = ls.prev[key]; lim == nil {
			lim = rate.NewLimiter(rate.Limit(ls.limit.Rate), ls.limit.Burst)
		}
		if len(ls.cur) >= ls.max {
			ls.prev, ls.cur = ls.cur, make(map[string]*rate.Limiter, ls.max)
		}
		ls.cur[key] = lim
	}
	ls.mu.Unlock()
	if n > ls.limit.Burst {
		// A request larger than the bucket can never pass: make it wait
		// for a full bucket instead of refusing it forever.
		n = ls.limit.Burst
	}
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return false, time.Second
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// tooMany writes a 429 with Retry-After in whole seconds (at least 1).
func tooMany(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(wait.Seconds())))))
	writeError(w, http.StatusTooManyRequests, "", "rate limit exceeded, retry after "+wait.Round(time.Millisecond).String())
}
