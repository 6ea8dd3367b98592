package push

import (
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff is the retry delay of a push job for one device: exponential
// with full jitter (a delay drawn uniformly from [0, min(Cap, Base·2^(n-1))]
// before retry n), Retry-After honoured as a floor, a bounded number of
// attempts, and never a retry scheduled past the job's expiry.
//
// Full jitter, not the half jitter of internal/retry: internal/retry paces
// one loop against one dependency, where a guaranteed minimum wait is the
// point; here thousands of jobs fail together when a provider hiccups, and
// spreading their retries over the whole window is what keeps them from
// coming back as a second wave (the circuit breaker, not the backoff, is
// what pauses a provider that is down). It lives here because it is push
// policy: expiry and Retry-After are notions of this package.
//
// The zero value is not useful: set Base and Cap (MaxAttempts 0 means
// DefaultMaxAttempts). A Backoff holds no state and is safe for concurrent
// use.
type Backoff struct {
	// Base is the ceiling of the first retry's delay.
	Base time.Duration
	// Cap bounds every delay's ceiling (a Retry-After may exceed it).
	Cap time.Duration
	// MaxAttempts bounds the sends of one job to one device, the first
	// included; 0 means DefaultMaxAttempts.
	MaxAttempts int
	// Rand returns a uniform value in [0, n]; nil means math/rand/v2.
	// Tests set it to pin the jitter.
	Rand func(n int64) int64
}

// DefaultMaxAttempts is the attempt bound when Backoff.MaxAttempts is 0.
const DefaultMaxAttempts = 8

// Why Next gives up.
var (
	ErrAttemptsExhausted = errors.New("push: attempts exhausted")
	ErrExpired           = errors.New("push: the notification expires before the next attempt")
)

// Next returns the delay before the next attempt, given attempts (the sends
// already made, ≥ 1 after a failure), the provider's Retry-After (0 if
// none), now and the job's expiry (zero: none). It returns an error instead
// (ErrAttemptsExhausted, ErrExpired) when the job must be given up: the
// attempts are used up, or the retry would fall at or after the expiry.
func (b Backoff) Next(attempts int, retryAfter time.Duration, now, expiresAt time.Time) (time.Duration, error) {
	maxAttempts := b.MaxAttempts
	if maxAttempts <= 0 {
		maxAttempts = DefaultMaxAttempts
	}
	if attempts >= maxAttempts {
		return 0, ErrAttemptsExhausted
	}
	d := b.jitter(b.ceiling(attempts))
	d = max(d, retryAfter)
	if !expiresAt.IsZero() && !now.Add(d).Before(expiresAt) {
		return 0, ErrExpired
	}
	return d, nil
}

// ceiling is min(Cap, Base·2^(attempts-1)), without overflow.
func (b Backoff) ceiling(attempts int) time.Duration {
	d := b.Base
	for i := 1; i < attempts && d < b.Cap; i++ {
		d *= 2
	}
	return max(min(d, b.Cap), 0)
}

func (b Backoff) jitter(ceiling time.Duration) time.Duration {
	if ceiling <= 0 {
		return 0
	}
	if b.Rand != nil {
		return time.Duration(min(max(b.Rand(int64(ceiling)), 0), int64(ceiling)))
	}
	return rand.N(ceiling + 1)
}
