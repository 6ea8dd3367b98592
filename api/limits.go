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

// verdict is what allow decided.
type verdict int

const (
	allowed verdict = iota
	// later: the request fits the bucket but not now; retry after wait.
	later
	// never: the request is larger than the burst and can never pass.
	never
)

// allow takes n tokens for key, all or none: every event of a batch is
// charged. When refused it says whether the request could pass later
// (and after how long: when the bucket will hold n tokens) or never (n is
// more than the burst).
func (ls *limiters) allow(key string, n int, now time.Time) (verdict, time.Duration) {
	if ls == nil || ls.limit.off() {
		return allowed, 0
	}
	if n > ls.limit.Burst {
		return never, 0
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
	r := lim.ReserveN(now, n)
	if !r.OK() {
		return never, 0
	}
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return later, d
	}
	return allowed, 0
}

// retryAfter sets Retry-After to wait in whole seconds, at least 1.
func retryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(math.Max(1, math.Ceil(wait.Seconds())))))
}

// tooMany writes a 429 with Retry-After in whole seconds (at least 1).
func tooMany(w http.ResponseWriter, wait time.Duration) {
	retryAfter(w, wait)
	writeError(w, http.StatusTooManyRequests, "", "rate limit exceeded, retry after "+wait.Round(time.Millisecond).String())
}
