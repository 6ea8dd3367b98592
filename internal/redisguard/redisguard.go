// Package redisguard holds what every Herald component that treats Redis
// as an optional accelerator needs around its client: the shared key
// prefix, a cooldown that skips Redis for a moment after it failed (so that
// a Redis that hangs costs one timeout per cooldown rather than one per
// call), and a limiter that lets one error log line through per interval.
// Presence and routing (delivery/cluster) and the preference cache
// (store/prefcache) use it; the client itself comes from internal/conn.
package redisguard

import (
	"sync/atomic"
	"time"
)

// DefaultPrefix prefixes Herald's Redis keys unless configured otherwise.
const DefaultPrefix = "herald:"

// Prefix is a configured key prefix; the zero value means DefaultPrefix.
type Prefix string

// String is the prefix in effect.
func (p Prefix) String() string {
	if p == "" {
		return DefaultPrefix
	}
	return string(p)
}

// Default reports whether the prefix in effect is DefaultPrefix.
func (p Prefix) Default() bool { return p.String() == DefaultPrefix }

// Key returns the key of id in the namespace kind: <prefix><kind>:<id>.
func (p Prefix) Key(kind, id string) string { return p.String() + kind + ":" + id }

// DefaultCooldown is Cooldown's period when For is zero.
const DefaultCooldown = time.Second

// Cooldown remembers a recent failure. The zero value (period
// DefaultCooldown) is ready to use; it is safe for concurrent use.
type Cooldown struct {
	// For is how long Active reports true after Trip; 0 means
	// DefaultCooldown. Set it before first use.
	For   time.Duration
	until atomic.Int64 // unix nanoseconds
}

// Trip starts (or restarts) the cooldown.
func (c *Cooldown) Trip() {
	d := c.For
	if d <= 0 {
		d = DefaultCooldown
	}
	c.until.Store(time.Now().Add(d).UnixNano())
}

// Active reports whether the last Trip was less than For ago.
func (c *Cooldown) Active() bool { return time.Now().UnixNano() < c.until.Load() }

// DefaultLogEvery is LogLimiter's interval when Every is zero.
const DefaultLogEvery = 10 * time.Second

// LogLimiter lets one log line through per interval and counts the rest.
// The zero value (interval DefaultLogEvery) is ready to use; it is safe
// for concurrent use.
type LogLimiter struct {
	// Every is the interval; 0 means DefaultLogEvery. Set it before first
	// use.
	Every      time.Duration
	last       atomic.Int64 // unix nanoseconds of the last line let through
	suppressed atomic.Int64
}

// Allow reports whether to log now and, if so, how many lines were
// suppressed since the last one let through.
func (l *LogLimiter) Allow() (suppressed int64, ok bool) {
	every := l.Every
	if every <= 0 {
		every = DefaultLogEvery
	}
	now := time.Now().UnixNano()
	last := l.last.Load()
	if (last != 0 && now-last < int64(every)) || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return 0, false
	}
	return l.suppressed.Swap(0), true
}
