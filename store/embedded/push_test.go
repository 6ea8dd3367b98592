package embedded

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func bucketLen(t *testing.T, s *Store, name []byte) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(name).Stats().KeyN
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestPushProgressExpiresAndIsPruned(t *testing.T) {
	ctx := context.Background()
	c := &clock{t: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)}
	s, err := Open(Config{Path: filepath.Join(t.TempDir(), "h.db"), Logger: quiet, NoSync: true, Now: c.now, PushProgressTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })

	const old = 2*pruneBatch + 10
	for i := range old {
		if err := s.MarkPushSent(ctx, "u", fmt.Sprintf("old-%d", i), "tok"); err != nil {
			t.Fatal(err)
		}
	}
	c.add(30 * time.Minute)
	if err := s.MarkPushSent(ctx, "u", "young", "tok"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.PushSent(ctx, "u", "old-0"); !got["tok"] {
		t.Fatalf("PushSent before expiry = %v", got)
	}
	c.add(45 * time.Minute) // the old ones expired, the young one not
	if got, _ := s.PushSent(ctx, "u", "old-0"); len(got) != 0 {
		t.Fatalf("PushSent of an expired (unpruned) entry = %v, want empty", got)
	}
	if got, _ := s.PushSent(ctx, "u", "young"); !got["tok"] {
		t.Fatalf("PushSent of a live entry = %v", got)
	}
	// Each new mark prunes up to pruneBatch expired entries.
	for i := range 3 {
		if err := s.MarkPushSent(ctx, "u", fmt.Sprintf("new-%d", i), "tok"); err != nil {
			t.Fatal(err)
		}
	}
	if n := bucketLen(t, s, bPushed); n != 4 {
		t.Fatalf("pushed holds %d entries after pruning, want 4 (young + 3 new)", n)
	}
	if n := bucketLen(t, s, bPushExp); n != 4 {
		t.Fatalf("pushexp holds %d entries after pruning, want 4", n)
	}
	// Marking an existing entry neither rewrites nor extends it.
	c.add(50 * time.Minute) // young: 95 min old, expired
	if err := s.MarkPushSent(ctx, "u", "new-0", "tok"); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.PushSent(ctx, "u", "young"); len(got) != 0 {
		t.Fatalf("young after its ttl = %v", got)
	}
}

func TestLegacyDeviceRecord(t *testing.T) {
	ctx := context.Background()
	s := open(t, filepath.Join(t.TempDir(), "h.db"), true)
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	// A record as the previous build wrote it: no last_seen, no registered_at.
	if err := s.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bDevices).Put(suffixKey("u", "tok"), []byte(`{"platform":"ios","app_id":"a","created_at":"2026-01-02T03:04:05Z"}`)); err != nil {
			return err
		}
		return tx.Bucket(bTokens).Put([]byte("tok"), []byte("u"))
	}); err != nil {
		t.Fatal(err)
	}
	ds, err := s.Devices(ctx, "u")
	if err != nil || len(ds) != 1 {
		t.Fatalf("Devices = %v, %v", ds, err)
	}
	if !ds[0].LastSeen.Equal(created) {
		t.Fatalf("legacy LastSeen = %v, want CreatedAt %v", ds[0].LastSeen, created)
	}
	if deleted, err := s.DeleteDeviceIfStale(ctx, "u", "tok", created); err != nil || !deleted {
		t.Fatalf("DeleteDeviceIfStale of a legacy device = %v, %v, want true", deleted, err)
	}
}
