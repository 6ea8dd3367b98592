// Package retry holds the one retry delay Herald's loops use: exponential,
// capped, jittered over its upper half so that many clients retrying the same
// dependency do not do so in lockstep.
package retry

import (
	"context"
	"math/rand/v2"
	"time"
)

// Backoff is a capped exponential delay. The zero value is not useful: set
// Min and Max. It is not safe for concurrent use; each loop owns one.
type Backoff struct {
	Min, Max time.Duration
	cur      time.Duration
}

// Next returns the next delay: the first is about Min, each later one
// doubles up to Max, and each is drawn from [d/2, d].
func (b *Backoff) Next() time.Duration {
	if b.cur == 0 {
		b.cur = b.Min
	} else {
		b.cur = min(2*b.cur, b.Max)
	}
	if b.cur <= 0 {
		return 0
	}
	return b.cur/2 + rand.N(b.cur/2+1)
}

// Attempt returns the delay before retry number n (1 for the first): the
// n-th value Next would return, computed without touching b's state, for
// callers that hold no Backoff between attempts (a driver's stateless retry
// policy, a loop that already counts its attempts). n below 1 counts as 1.
func (b Backoff) Attempt(n int) time.Duration {
	d := b.Min
	for i := 1; i < n && d < b.Max; i++ {
		d *= 2
	}
	d = min(d, b.Max)
	if d <= 0 {
		return 0
	}
	return d/2 + rand.N(d/2+1)
}

// Reset starts the sequence again after a success.
func (b *Backoff) Reset() { b.cur = 0 }

// Sleep waits d or until ctx is done; it reports whether d elapsed.
func Sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}
