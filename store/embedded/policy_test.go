package embedded

import (
	"bytes"
	"context"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/heraldhq/herald/store"
)

// dueCount is the number of entries in scope's due bucket (0 if none).
func dueCount(t *testing.T, s *Store, scope string) int {
	t.Helper()
	n := 0
	if err := s.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bPolicyDue).Bucket([]byte(scope)); b != nil {
			n = b.Stats().KeyN
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDueKeyOrder: byte order of dueKey is PolicyDue.Less order, and
// decodeDue inverts it, for user ids that are prefixes of each other or
// hold 0x00, 0x01 and 0xff, keys likewise, and times before 1970.
func TestDueKeyOrder(t *testing.T) {
	times := []time.Time{
		{}, // the zero PolicyDue's
		time.Unix(-1, 0).UTC(),
		time.Unix(0, 0).UTC(),
		time.Unix(0, 1000).UTC(),
		time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC),
	}
	parts := []string{"", "a", "a\x00", "a\x00\x00", "a\x00b", "a\x01", "a\xff", "ab", "b", "\x00", "\xff"}
	var all []store.PolicyDue
	for _, at := range times {
		for _, u := range parts {
			for _, k := range parts {
				all = append(all, store.PolicyDue{At: at, UserID: u, Key: k})
			}
		}
	}
	r := rand.New(rand.NewPCG(1, 2))
	r.Shuffle(len(all), func(i, j int) { all[i], all[j] = all[j], all[i] })
	for i := 0; i+1 < len(all); i++ {
		a, b := all[i], all[i+1]
		if got, want := bytes.Compare(dueKey(a), dueKey(b)), cmpDue(a, b); got != want {
			t.Fatalf("dueKey order of %+v and %+v is %d, Less order %d", a, b, got, want)
		}
	}
	// Sorted by key bytes, the entries are sorted by Less, all distinct.
	slices.SortFunc(all, func(a, b store.PolicyDue) int { return bytes.Compare(dueKey(a), dueKey(b)) })
	for i := 0; i+1 < len(all); i++ {
		if !all[i].Less(all[i+1]) {
			t.Fatalf("in dueKey order %+v comes before %+v", all[i], all[i+1])
		}
	}
	for _, d := range all {
		got, err := decodeDue(dueKey(d))
		if err != nil || !got.At.Equal(d.At) || got.At.Location() != time.UTC || got.UserID != d.UserID || got.Key != d.Key {
			t.Fatalf("decodeDue(dueKey(%+v)) = %+v, %v", d, got, err)
		}
	}
	for _, bad := range [][]byte{nil, make([]byte, 9), append(make([]byte, 8), 'u', 0, 2), append(make([]byte, 8), 'u', 'v')} {
		if _, err := decodeDue(bad); err == nil {
			t.Errorf("decodeDue(%x) = nil error", bad)
		}
	}
}

func cmpDue(a, b store.PolicyDue) int {
	switch {
	case a.Less(b):
		return -1
	case b.Less(a):
		return 1
	}
	return 0
}

// TestPolicyCursorDropsEntries: SetPolicyCursor deletes the entries at or
// before the cursor from the file (an ignored cursor deletes nothing), and
// PutPolicy deletes entries due more than PolicyDueRetention ago, at most
// pruneBatch per call.
func TestPolicyCursorDropsEntries(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)}
	s, err := Open(Config{Path: filepath.Join(t.TempDir(), "herald.db"), Logger: quiet, NoSync: true, Now: clk.now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	w := fence(t, s)
	var ds []store.PolicyDue
	for i := range 10 {
		ds = append(ds, store.PolicyDue{At: clk.now().Add(time.Duration(i) * time.Minute), UserID: "u", Key: "k"})
	}
	if err := w.PutPolicy(ctx, "u", []byte("s"), ds); err != nil {
		t.Fatal(err)
	}
	if err := w.SetPolicyCursor(ctx, ds[3]); err != nil {
		t.Fatal(err)
	}
	if n := dueCount(t, s, "test"); n != 6 {
		t.Fatalf("after a cursor at the 4th entry %d entries are left, want 6", n)
	}
	// Entries written at or before the cursor later stay until the next
	// cursor, which drops them.
	if err := w.PutPolicy(ctx, "u", []byte("s"), ds[:2]); err != nil {
		t.Fatal(err)
	}
	if err := w.SetPolicyCursor(ctx, ds[1]); err != nil { // not after: ignored
		t.Fatal(err)
	}
	if n := dueCount(t, s, "test"); n != 8 {
		t.Fatalf("after an ignored cursor %d entries, want 8", n)
	}
	if err := w.SetPolicyCursor(ctx, ds[4]); err != nil {
		t.Fatal(err)
	}
	if n := dueCount(t, s, "test"); n != 5 {
		t.Fatalf("after a cursor at the 5th entry %d entries are left, want 5", n)
	}

	// An outage past the retention: the next puts drop the stale entries,
	// pruneBatch at a time.
	old := make([]store.PolicyDue, pruneBatch+6)
	for i := range old {
		old[i] = store.PolicyDue{At: ds[9].At.Add(time.Duration(i+1) * time.Second), UserID: "v", Key: "k"}
	}
	if err := w.PutPolicy(ctx, "v", nil, old); err != nil {
		t.Fatal(err)
	}
	if n := dueCount(t, s, "test"); n != 5+len(old) {
		t.Fatalf("%d entries, want %d", n, 5+len(old))
	}
	clk.add(store.PolicyDueRetention + time.Hour)
	fresh := store.PolicyDue{At: clk.now(), UserID: "u", Key: "fresh"}
	if err := w.PutPolicy(ctx, "u", []byte("s"), []store.PolicyDue{fresh}); err != nil {
		t.Fatal(err)
	}
	if n := dueCount(t, s, "test"); n != 5+len(old)-pruneBatch+1 {
		t.Fatalf("after one put past the retention %d entries, want %d", n, 5+len(old)-pruneBatch+1)
	}
	if err := w.PutPolicy(ctx, "u", []byte("s"), []store.PolicyDue{fresh}); err != nil {
		t.Fatal(err)
	}
	got, err := s.PolicyDue(ctx, "test", store.PolicyDue{}, clk.now(), 100)
	if err != nil || len(got) != 1 || cmpDue(got[0], fresh) != 0 {
		t.Fatalf("after the stale entries were pruned PolicyDue = %+v, %v; want only %+v", got, err, fresh)
	}
}

// TestPolicyBucketsAddedToOldFile: a file written before the policy
// buckets existed opens (they are created) and keeps its format.
func TestPolicyBucketsAddedToOldFile(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "herald.db")
	s := open(t, path, true)
	if _, err := fence(t, s).Append(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bPolicy, bPolicyDue, bPolicyCursor} {
			if err := tx.DeleteBucket(b); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path, true)
	w := fence(t, s)
	d := store.PolicyDue{At: time.Now().UTC().Truncate(time.Second), UserID: "u", Key: "k"}
	if err := w.PutPolicy(ctx, "u", []byte("s"), []store.PolicyDue{d}); err != nil {
		t.Fatalf("PutPolicy on a file without the policy buckets at open: %v", err)
	}
	if err := w.SetPolicyCursor(ctx, d); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PolicyState(ctx, "u"); err != nil || string(got) != "s" {
		t.Fatalf("PolicyState = %q, %v", got, err)
	}
	if names := bucketNames(t, s); !slices.Contains(names, "policydue") || !slices.Contains(names, "herald") {
		t.Fatalf("buckets after reopen: %v", names)
	}
}

func bucketNames(t *testing.T, s *Store) []string {
	t.Helper()
	var names []string
	if err := s.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, _ *bolt.Bucket) error {
			names = append(names, string(name))
			return nil
		})
	}); err != nil {
		t.Fatal(err)
	}
	return names
}
