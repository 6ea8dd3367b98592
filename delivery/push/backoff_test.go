package push

import (
	"errors"
	"testing"
	"time"
)

func TestBackoffFullJitterBounds(t *testing.T) {
	b := Backoff{Base: 100 * time.Millisecond, Cap: time.Second, MaxAttempts: 20}
	now := time.Unix(1_000_000, 0)
	for attempts := 1; attempts < 20; attempts++ {
		ceiling := min(b.Base<<(attempts-1), b.Cap)
		if attempts > 10 {
			ceiling = b.Cap
		}
		var lo, hi time.Duration = time.Hour, 0
		for range 2000 {
			d, err := b.Next(attempts, 0, now, time.Time{})
			if err != nil {
				t.Fatalf("attempt %d: %v", attempts, err)
			}
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d: delay %v outside [0, %v]", attempts, d, ceiling)
			}
			lo, hi = min(lo, d), max(hi, d)
		}
		// Full jitter spreads over the whole window, not its upper half.
		if lo > ceiling/4 || hi < ceiling*3/4 {
			t.Fatalf("attempt %d: 2000 draws within [%v, %v] of [0, %v]", attempts, lo, hi, ceiling)
		}
	}
}

func TestBackoffPinnedJitter(t *testing.T) {
	top := func(n int64) int64 { return n }
	b := Backoff{Base: time.Second, Cap: 30 * time.Second, Rand: top}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30}
	for i, w := range want {
		d, err := b.Next(i+1, 0, time.Time{}, time.Time{})
		if err != nil || d != w*time.Second {
			t.Fatalf("attempt %d: %v %v, want %v", i+1, d, err, w*time.Second)
		}
	}
	b.Rand = func(int64) int64 { return 0 }
	if d, _ := b.Next(3, 0, time.Time{}, time.Time{}); d != 0 {
		t.Fatalf("bottom of the window: %v", d)
	}
	b.Rand = func(n int64) int64 { return n * 5 } // out of range: clamped
	if d, _ := b.Next(1, 0, time.Time{}, time.Time{}); d != time.Second {
		t.Fatalf("clamped: %v", d)
	}
}

func TestBackoffRetryAfterIsAFloor(t *testing.T) {
	b := Backoff{Base: time.Second, Cap: 10 * time.Second, Rand: func(int64) int64 { return 0 }}
	if d, err := b.Next(1, 5*time.Second, time.Time{}, time.Time{}); err != nil || d != 5*time.Second {
		t.Fatalf("Retry-After 5s: %v %v", d, err)
	}
	// Above the cap too: the provider asked.
	if d, err := b.Next(1, time.Minute, time.Time{}, time.Time{}); err != nil || d != time.Minute {
		t.Fatalf("Retry-After 1m: %v %v", d, err)
	}
	b.Rand = func(n int64) int64 { return n }
	if d, _ := b.Next(4, time.Second, time.Time{}, time.Time{}); d != 8*time.Second {
		t.Fatalf("a smaller Retry-After does not shorten the backoff: %v", d)
	}
}

func TestBackoffGivesUpAtExpiry(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	b := Backoff{Base: time.Second, Cap: time.Minute, Rand: func(n int64) int64 { return n }}
	if d, err := b.Next(1, 0, now, now.Add(2*time.Second)); err != nil || d != time.Second {
		t.Fatalf("before the expiry: %v %v", d, err)
	}
	if _, err := b.Next(2, 0, now, now.Add(2*time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("a retry landing on the expiry: %v", err)
	}
	if _, err := b.Next(1, 10*time.Second, now, now.Add(5*time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("a Retry-After past the expiry: %v", err)
	}
	if _, err := b.Next(1, 0, now, now.Add(-time.Second)); !errors.Is(err, ErrExpired) {
		t.Fatalf("already expired: %v", err)
	}
}

func TestBackoffBoundsAttempts(t *testing.T) {
	b := Backoff{Base: time.Millisecond, Cap: time.Second, MaxAttempts: 3}
	for n := 1; n < 3; n++ {
		if _, err := b.Next(n, 0, time.Time{}, time.Time{}); err != nil {
			t.Fatalf("attempt %d: %v", n, err)
		}
	}
	if _, err := b.Next(3, 0, time.Time{}, time.Time{}); !errors.Is(err, ErrAttemptsExhausted) {
		t.Fatalf("after 3 attempts: %v", err)
	}
	b.MaxAttempts = 0
	if _, err := b.Next(DefaultMaxAttempts, 0, time.Time{}, time.Time{}); !errors.Is(err, ErrAttemptsExhausted) {
		t.Fatalf("default bound: %v", err)
	}
	// A huge attempt count does not overflow.
	b.MaxAttempts = 1 << 30
	if d, err := b.Next(1<<29, 0, time.Time{}, time.Time{}); err != nil || d > b.Cap {
		t.Fatalf("attempt 2^29: %v %v", d, err)
	}
}
