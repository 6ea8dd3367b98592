package redisguard

import (
	"testing"
	"time"
)

func TestPrefix(t *testing.T) {
	for _, tc := range []struct {
		p         Prefix
		key       string
		isDefault bool
	}{
		{"", "herald:prefs:alice", true},
		{"herald:", "herald:prefs:alice", true},
		{"t1:", "t1:prefs:alice", false},
	} {
		if got := tc.p.Key("prefs", "alice"); got != tc.key {
			t.Errorf("Prefix(%q).Key = %q, want %q", tc.p, got, tc.key)
		}
		if tc.p.Default() != tc.isDefault {
			t.Errorf("Prefix(%q).Default() = %v", tc.p, !tc.isDefault)
		}
	}
}

func TestCooldown(t *testing.T) {
	var c Cooldown
	if c.Active() {
		t.Fatal("active before any failure")
	}
	c.Trip()
	if !c.Active() {
		t.Fatal("not active right after a failure")
	}
	short := Cooldown{For: time.Nanosecond}
	short.Trip()
	for short.Active() { // ends: its period is a nanosecond
	}
}

func TestLogLimiter(t *testing.T) {
	var l LogLimiter
	if n, ok := l.Allow(); !ok || n != 0 {
		t.Fatalf("first line: %d %v", n, ok)
	}
	for range 3 {
		if _, ok := l.Allow(); ok {
			t.Fatal("a second line within the interval was let through")
		}
	}
	l.last.Store(1) // the last line was long ago
	if n, ok := l.Allow(); !ok || n != 3 {
		t.Fatalf("after the interval: suppressed=%d ok=%v, want 3 true", n, ok)
	}
}
