//go:build integration

package prefcache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/stacktest"
	"github.com/heraldhq/herald/store/memory"
)

// newCache returns a cache over a fresh memory store, with a random key
// prefix, and a client for inspecting Redis. It fails (never skips) when
// Redis is unreachable.
func newCache(t *testing.T, tweak func(*Config)) (*Store, *memory.Store, *redis.Client) {
	t.Helper()
	// The stack's URL, password and TLS (internal/stacktest).
	rc := stacktest.RedisClient()
	t.Cleanup(func() { _ = rc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis is unreachable (start it with scripts/stack/stack.sh up): %v; settings: %s", err, stacktest.Describe())
	}
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	prefix := "t" + hex.EncodeToString(b) + ":"
	inner := memory.New()
	cfg := Config{Store: inner, Redis: rc, KeyPrefix: prefix, Logger: quiet}
	if tweak != nil {
		tweak(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var keys []string
		for it := rc.Scan(ctx, 0, prefix+"*", 100).Iterator(); it.Next(ctx); {
			keys = append(keys, it.Val())
		}
		if len(keys) > 0 {
			rc.Del(ctx, keys...)
		}
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s, inner, rc
}

func muted(types ...string) herald.Preferences {
	return herald.Preferences{MutedTypes: types, Channels: herald.Channels{InApp: true, Push: true}}
}

func TestHitThenInvalidate(t *testing.T) {
	s, inner, rc := newCache(t, nil)
	ctx := context.Background()
	if err := s.PutPreferences(ctx, "u-1", muted("like")); err != nil {
		t.Fatal(err)
	}
	h, m := counter(s.m.hits), counter(s.m.misses)
	p, err := s.GetPreferences(ctx, "u-1") // miss: fills
	if err != nil || !slices.Equal(p.MutedTypes, []string{"like"}) {
		t.Fatalf("first read: %+v %v", p, err)
	}
	ttl, err := rc.PTTL(ctx, s.key("u-1")).Result()
	if err != nil || ttl <= 0 || ttl > 5*time.Minute {
		t.Fatalf("cached entry TTL %v (%v)", ttl, err)
	}

	// Change the store of record behind the cache's back: a hit still
	// answers the cached value, proving the inner store was not asked.
	if err := inner.PutPreferences(ctx, "u-1", muted("follow")); err != nil {
		t.Fatal(err)
	}
	p, err = s.GetPreferences(ctx, "u-1")
	if err != nil || !slices.Equal(p.MutedTypes, []string{"like"}) {
		t.Fatalf("cached read: %+v %v", p, err)
	}
	if counter(s.m.hits)-h != 1 || counter(s.m.misses)-m != 1 {
		t.Fatalf("hits %v misses %v", counter(s.m.hits)-h, counter(s.m.misses)-m)
	}

	// A write through the cache invalidates it.
	if err := s.PutPreferences(ctx, "u-1", muted("mention")); err != nil {
		t.Fatal(err)
	}
	if n, _ := rc.Exists(ctx, s.key("u-1")).Result(); n != 0 {
		t.Fatal("entry survived PutPreferences")
	}
	p, err = s.GetPreferences(ctx, "u-1")
	if err != nil || !slices.Equal(p.MutedTypes, []string{"mention"}) {
		t.Fatalf("read after write: %+v %v", p, err)
	}

	// A user who never set any preferences gets (and caches) the defaults.
	p, err = s.GetPreferences(ctx, "u-new")
	if err != nil || !p.Channels.InApp || !p.Channels.Push || len(p.MutedTypes) != 0 {
		t.Fatalf("defaults: %+v %v", p, err)
	}
	if n, _ := rc.Exists(ctx, s.key("u-new")).Result(); n != 1 {
		t.Fatal("defaults not cached")
	}
}

func TestEntryExpires(t *testing.T) {
	s, inner, rc := newCache(t, func(c *Config) { c.TTL = 50 * time.Millisecond })
	ctx := context.Background()
	if _, err := s.GetPreferences(ctx, "u-ttl"); err != nil {
		t.Fatal(err)
	}
	if err := inner.PutPreferences(ctx, "u-ttl", muted("like")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		if n, _ := rc.Exists(ctx, s.key("u-ttl")).Result(); n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("entry never expired")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if p, err := s.GetPreferences(ctx, "u-ttl"); err != nil || !slices.Equal(p.MutedTypes, []string{"like"}) {
		t.Fatalf("after expiry: %+v %v", p, err)
	}
}

// The classic race: a reader misses and reads the old value, a writer
// writes and invalidates, then the reader fills. The lease makes the late
// fill a no-op.
func TestLateFillLosesToWrite(t *testing.T) {
	s, inner, rc := newCache(t, nil)
	ctx := context.Background()
	if err := inner.PutPreferences(ctx, "u-race", muted("old")); err != nil {
		t.Fatal(err)
	}
	key := s.key("u-race")
	lease, ok := s.takeLease(ctx, key) // the reader missed...
	if !ok {
		t.Fatal("no lease on a missing key")
	}
	old, err := inner.GetPreferences(ctx, "u-race") // ...and read the old value
	if err != nil {
		t.Fatal(err)
	}
	// Meanwhile another reader sees the lease and reads through.
	if p, err := s.GetPreferences(ctx, "u-race"); err != nil || !slices.Equal(p.MutedTypes, []string{"old"}) {
		t.Fatalf("reader during a lease: %+v %v", p, err)
	}
	if v, _ := rc.Get(ctx, key).Result(); v != lease {
		t.Fatalf("the second reader replaced the lease: %q", v)
	}
	if err := s.PutPreferences(ctx, "u-race", muted("new")); err != nil {
		t.Fatal(err)
	}
	s.fill(ctx, key, lease, old) // too late
	if n, _ := rc.Exists(ctx, key).Result(); n != 0 {
		t.Fatal("a fill after the write cached the old value")
	}
	if p, err := s.GetPreferences(ctx, "u-race"); err != nil || !slices.Equal(p.MutedTypes, []string{"new"}) {
		t.Fatalf("after the race: %+v %v", p, err)
	}
}

func TestCorruptEntryIsDropped(t *testing.T) {
	s, inner, rc := newCache(t, nil)
	ctx := context.Background()
	if err := inner.PutPreferences(ctx, "u-bad", muted("like")); err != nil {
		t.Fatal(err)
	}
	for _, junk := range []string{"{not json", "garbage"} {
		if err := rc.Set(ctx, s.key("u-bad"), junk, time.Minute).Err(); err != nil {
			t.Fatal(err)
		}
		if p, err := s.GetPreferences(ctx, "u-bad"); err != nil || !slices.Equal(p.MutedTypes, []string{"like"}) {
			t.Fatalf("%q: %+v %v", junk, p, err)
		}
		if n, _ := rc.Exists(ctx, s.key("u-bad")).Result(); n != 0 {
			t.Fatalf("%q was not dropped", junk)
		}
	}
}

// TestCachedPreferences: one MGET returns the cached users only; a user
// not cached, or whose entry is corrupt, is left to GetPreferences.
func TestCachedPreferences(t *testing.T) {
	s, inner, rc := newCache(t, nil)
	ctx := t.Context()
	if err := inner.PutPreferences(ctx, "u-1", muted("like")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetPreferences(ctx, "u-1"); err != nil { // fills
		t.Fatal(err)
	}
	if err := rc.Set(ctx, s.key("u-bad"), "{not json", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	got := s.CachedPreferences(ctx, []string{"u-1", "u-2", "u-bad"})
	if len(got) != 1 || !slices.Equal(got["u-1"].MutedTypes, []string{"like"}) {
		t.Fatalf("CachedPreferences = %+v, want only u-1 muting like", got)
	}
	if got := s.CachedPreferences(ctx, nil); len(got) != 0 {
		t.Fatalf("CachedPreferences(nil) = %+v", got)
	}
}
