package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/storetest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func open(t testing.TB, path string, noSync bool) *Store {
	t.Helper()
	s, err := Open(Config{Path: path, Logger: quiet, NoSync: noSync})
	if err != nil {
		t.Fatalf("Open(%s): %v", path, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "herald.db"), true)
	})
}

// TestConformanceSync runs the suite with fsync on, as `herald dev` does.
func TestConformanceSync(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "herald.db"), false)
	})
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		return open(b, filepath.Join(b.TempDir(), "herald.db"), false)
	})
}

func BenchmarkStoreNoSync(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store {
		return open(b, filepath.Join(b.TempDir(), "herald.db"), true)
	})
}

// fence returns the writer of scope "test" of s: these tests have one
// writer per store, as `herald dev` has one enricher.
func fence(t *testing.T, s *Store) store.Writer {
	t.Helper()
	w, err := s.Fence(t.Context(), "test")
	if err != nil {
		t.Fatalf("Fence: %v", err)
	}
	return w
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func note(userID, eventID string) herald.Notification {
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	return herald.Notification{
		ID: herald.NewID(at), EventID: eventID, Type: "mention", Priority: herald.PriorityHigh,
		Title: "t", Body: "b", Data: []byte(`{"k":"v"}`), CreatedAt: at, UserID: userID,
	}
}

func TestReopenKeepsEverything(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "sub", "dir", "herald.db") // directories are created
	s, err := Open(Config{Path: path, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w := fence(t, s)
	batch := []herald.Notification{note("u1", "a"), note("u2", "a"), note("u1", "b"), note("u1", "c")}
	first, err := w.Append(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkRead(ctx, "u1", []uint64{2}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Claim(ctx, "u1", "push-only", "events/0/1"); err != nil || !ok {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	prefs := herald.Preferences{MutedTypes: []string{"like"}, Channels: herald.Channels{InApp: true},
		QuietHours: &herald.QuietHours{Start: "22:00", End: "07:00", Timezone: "Europe/Paris"}}
	if err := s.PutPreferences(ctx, "u1", prefs); err != nil {
		t.Fatal(err)
	}
	dev := herald.Device{UserID: "u1", Platform: "ios", Token: "tok", AppID: "app", CreatedAt: time.Unix(1e9, 0).UTC()}
	if err := s.PutDevice(ctx, dev); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// Epochs live in the Store, not in the file: the old writer is done.
	if _, err := w.Append(ctx, []herald.Notification{note("u1", "z")}); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Append through a writer of the closed Store = %v, want ErrClosed", err)
	}

	s = open(t, path, false)
	w = fence(t, s)
	l, err := s.List(ctx, "u1", 0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 3 {
		t.Fatalf("after reopen u1 has %d notifications, want 3", len(l))
	}
	for i, want := range []herald.Notification{first[0].Notification, first[2].Notification, first[3].Notification} {
		got := l[i]
		if got.Seq != want.Seq || got.Prev != want.Prev || got.ID != want.ID || got.EventID != want.EventID ||
			got.Title != want.Title || string(got.Data) != string(want.Data) || !got.CreatedAt.Equal(want.CreatedAt) ||
			got.Priority != want.Priority || got.UserID != "u1" {
			t.Fatalf("after reopen [%d] = %+v, want %+v", i, got, want)
		}
		if got.Read != (got.Seq == 2) {
			t.Fatalf("after reopen seq %d Read=%v", got.Seq, got.Read)
		}
	}
	if n, _ := s.UnreadCount(ctx, "u1"); n != 2 {
		t.Fatalf("UnreadCount(u1) after reopen = %d, want 2", n)
	}
	if n, _ := s.LastSeq(ctx, "u2"); n != 1 {
		t.Fatalf("LastSeq(u2) after reopen = %d, want 1", n)
	}
	if ok, _ := s.Claim(ctx, "u1", "push-only", "events/9/9"); ok {
		t.Fatal("claim lost on reopen")
	}
	p, err := s.GetPreferences(ctx, "u1")
	if err != nil || p.QuietHours == nil || p.QuietHours.Timezone != "Europe/Paris" || len(p.MutedTypes) != 1 || p.Channels.Push {
		t.Fatalf("preferences after reopen = %+v (%v)", p, err)
	}
	ds, err := s.Devices(ctx, "u1")
	if err != nil || len(ds) != 1 || ds[0].Token != "tok" || !ds[0].CreatedAt.Equal(dev.CreatedAt) {
		t.Fatalf("devices after reopen = %+v (%v)", ds, err)
	}

	// Dedup survives and seqs continue.
	res, err := w.Append(ctx, []herald.Notification{note("u1", "b"), note("u1", "d")})
	if err != nil {
		t.Fatal(err)
	}
	if res[0].Created || res[0].Notification.Seq != 2 || !res[0].Notification.Read {
		t.Fatalf("replay after reopen = %+v", res[0])
	}
	if !res[1].Created || res[1].Notification.Seq != 4 || res[1].Notification.Prev != 3 {
		t.Fatalf("append after reopen = %+v, want seq 4 prev 3", res[1])
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	if _, err := Open(Config{Logger: quiet}); err == nil {
		t.Fatal("Open without Path succeeded")
	}

	path := filepath.Join(dir, "locked.db")
	open(t, path, true)
	if _, err := Open(Config{Path: path, Logger: quiet, Timeout: 50 * time.Millisecond}); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open of a held file = %v, want ErrLocked", err)
	}

	junk := filepath.Join(dir, "junk.db")
	if err := os.WriteFile(junk, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Path: junk, Logger: quiet}); err == nil {
		t.Fatal("Open of a non-bbolt file succeeded")
	}

	future := filepath.Join(dir, "future.db")
	db, err := bolt.Open(future, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket(bHerald)
		if err != nil {
			return err
		}
		return b.Put(keyFormat, encodeSeq(formatVersion+1))
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(Config{Path: future, Logger: quiet}); !errors.Is(err, ErrFormat) {
		t.Fatalf("Open of a newer format = %v, want ErrFormat", err)
	}
}

// cancelAfter is a context whose Err reports Canceled after n calls: it
// cancels Append between two notifications deterministically.
type cancelAfter struct {
	context.Context
	n atomic.Int32
}

func (c *cancelAfter) Err() error {
	if c.n.Add(-1) < 0 {
		return context.Canceled
	}
	return nil
}

func TestAppendIsAtomicPerBatch(t *testing.T) {
	ctx := testCtx(t)
	s := open(t, filepath.Join(t.TempDir(), "h.db"), true)
	w := fence(t, s)
	if _, err := w.Append(ctx, []herald.Notification{note("u", "before")}); err != nil {
		t.Fatal(err)
	}
	var batch []herald.Notification
	for i := range 200 {
		batch = append(batch, note("u", fmt.Sprintf("e%d", i)), note("v", fmt.Sprintf("e%d", i)))
	}
	cctx := &cancelAfter{Context: ctx}
	cctx.n.Store(1) // the check before the transaction passes, the first one inside fails
	if _, err := w.Append(cctx, batch); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append cancelled mid-batch = %v, want context.Canceled", err)
	}
	for u, want := range map[string]uint64{"u": 1, "v": 0} {
		if n, _ := s.LastSeq(ctx, u); n != want {
			t.Fatalf("LastSeq(%s) after a rolled back batch = %d, want %d", u, n, want)
		}
		if n, _ := s.UnreadCount(ctx, u); n != int64(want) {
			t.Fatalf("UnreadCount(%s) after a rolled back batch = %d, want %d", u, n, want)
		}
	}
	// The same batch then goes in whole, as a replay after a crash would.
	res, err := w.Append(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	if last := res[len(res)-2]; !last.Created || last.Notification.Seq != 201 {
		t.Fatalf("u's last notification: created=%v seq %d, want true 201", last.Created, last.Notification.Seq)
	}

	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := w.Append(cancelled, batch[:1]); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a cancelled ctx = %v", err)
	}
	if _, err := s.List(cancelled, "u", 0, 0, false); !errors.Is(err, context.Canceled) {
		t.Fatalf("List with a cancelled ctx = %v", err)
	}
}

func TestRejectsBadInput(t *testing.T) {
	ctx := testCtx(t)
	s := open(t, filepath.Join(t.TempDir(), "h.db"), true)
	w := fence(t, s)
	long := string(make([]byte, 256))
	for _, batch := range [][]herald.Notification{
		{note("ok", "e"), note("", "e")},
		{note("ok", "e"), note("ok", "")},
		{note(long, "e")},
	} {
		_, err := w.Append(ctx, batch)
		if _, ok := herald.AsValidationError(err); !ok {
			t.Fatalf("Append(%q/%q) = %v, want a ValidationError", batch[len(batch)-1].UserID, batch[len(batch)-1].EventID, err)
		}
	}
	if n, _ := s.LastSeq(ctx, "ok"); n != 0 {
		t.Fatalf("a rejected batch stored %d notifications", n)
	}
	if _, err := s.List(ctx, "", 0, 0, false); err == nil {
		t.Fatal("List with an empty user id succeeded")
	}
	if err := s.PutPreferences(ctx, "ok", herald.Preferences{QuietHours: &herald.QuietHours{Start: "25:00", End: "07:00"}}); err == nil {
		t.Fatal("PutPreferences accepted an invalid quiet hours window")
	}
	if err := s.PutDevice(ctx, herald.Device{UserID: "ok", Platform: "palm", Token: "t"}); err == nil {
		t.Fatal("PutDevice accepted platform palm")
	}
	if l, err := s.List(ctx, "ok", ^uint64(0), 0, false); err != nil || len(l) != 0 {
		t.Fatalf("List(after=max) = %v, %v", l, err)
	}
}

func TestPutPreferencesDoesNotMutateInput(t *testing.T) {
	ctx := testCtx(t)
	s := open(t, filepath.Join(t.TempDir(), "h.db"), true)
	p := herald.Preferences{MutedTypes: []string{"z", "a"}, QuietHours: &herald.QuietHours{Start: "22:00", End: "07:00"}}
	if err := s.PutPreferences(ctx, "u", p); err != nil {
		t.Fatal(err)
	}
	if p.MutedTypes[0] != "z" || p.QuietHours.Timezone != "" {
		t.Fatalf("PutPreferences changed the caller's value: %+v %+v", p.MutedTypes, *p.QuietHours)
	}
	got, err := s.GetPreferences(ctx, "u")
	if err != nil || got.MutedTypes[0] != "a" || got.QuietHours.Timezone != "UTC" {
		t.Fatalf("stored preferences = %+v, %v; want normalised", got, err)
	}
}

// TestMarkAllReadMany checks MarkAllRead over a large unread range, with
// read notifications interleaved, and that the counter matches the index.
func TestMarkAllReadMany(t *testing.T) {
	ctx := testCtx(t)
	s := open(t, filepath.Join(t.TempDir(), "h.db"), true)
	w := fence(t, s)
	const total = 5000
	for b := 0; b < total; b += 500 {
		var batch []herald.Notification
		for i := b; i < b+500; i++ {
			batch = append(batch, note("big", fmt.Sprintf("e%d", i)), note("other", fmt.Sprintf("e%d", i)))
		}
		if _, err := w.Append(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	var odd []uint64
	for seq := uint64(1); seq <= total; seq += 2 {
		odd = append(odd, seq)
	}
	if n, err := s.MarkRead(ctx, "big", odd); err != nil || n != total/2 {
		t.Fatalf("MarkRead(odd) = %d, %v; want %d", n, err, total/2)
	}
	if n, err := s.MarkAllRead(ctx, "big"); err != nil || n != 0 {
		t.Fatalf("MarkAllRead = %d, %v", n, err)
	}
	if l, _ := s.List(ctx, "big", 0, 0, true); len(l) != 0 {
		t.Fatalf("%d unread rows after MarkAllRead", len(l))
	}
	if n, _ := s.UnreadCount(ctx, "other"); n != total {
		t.Fatalf("the other user's unread = %d, want %d", n, total)
	}
	l, err := s.List(ctx, "other", total-3, 0, true)
	if err != nil || len(l) != 3 || l[0].Seq != total-2 {
		t.Fatalf("List(other, after=%d, unreadOnly) = %d rows, %v", total-3, len(l), err)
	}
}

func TestCloseWaitsAndThenRefuses(t *testing.T) {
	ctx := testCtx(t)
	s := open(t, filepath.Join(t.TempDir(), "h.db"), true)
	w := fence(t, s)
	done := make(chan error, 1)
	go func() {
		var err error
		for i := 0; err == nil; i++ {
			_, err = w.Append(ctx, []herald.Notification{note("u", fmt.Sprint(i))})
		}
		done <- err
	}()
	if _, err := s.List(ctx, "u", 0, 1, false); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Append racing Close ended with %v, want ErrClosed", err)
	}
}

// TestPolicySurvivesReopen: state, due index and cursor are in the file.
func TestPolicySurvivesReopen(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "herald.db")
	s := open(t, path, false)
	w := fence(t, s)
	at := time.Now().UTC().Truncate(time.Second).Add(time.Hour)
	d := []store.PolicyDue{
		{At: at, UserID: "u1", Key: "like\x1fp1"},
		{At: at.Add(time.Second), UserID: "u1", Key: "like\x1fp2"},
		{At: at.Add(2 * time.Second), UserID: "u2", Key: "follow\x1ffollow"},
	}
	if err := w.PutPolicy(ctx, "u1", []byte("state-1"), d[:2]); err != nil {
		t.Fatal(err)
	}
	if err := w.PutPolicy(ctx, "u2", []byte("state-2"), d[2:]); err != nil {
		t.Fatal(err)
	}
	if err := w.SetPolicyCursor(ctx, d[0]); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.PutPolicy(ctx, "u1", []byte("late"), nil); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("PutPolicy through a writer of the closed Store = %v, want ErrClosed", err)
	}

	s = open(t, path, false)
	for u, want := range map[string]string{"u1": "state-1", "u2": "state-2"} {
		if got, err := s.PolicyState(ctx, u); err != nil || string(got) != want {
			t.Fatalf("PolicyState(%s) after reopen = %q, %v; want %q", u, got, err, want)
		}
	}
	cur, err := s.PolicyCursor(ctx, "test")
	if err != nil || cmpDue(cur, d[0]) != 0 {
		t.Fatalf("PolicyCursor after reopen = %+v, %v; want %+v", cur, err, d[0])
	}
	got, err := s.PolicyDue(ctx, "test", cur, at.Add(time.Hour), 10)
	if err != nil || len(got) != 2 || cmpDue(got[0], d[1]) != 0 || cmpDue(got[1], d[2]) != 0 {
		t.Fatalf("PolicyDue after reopen = %+v, %v; want %+v", got, err, d[1:])
	}
	// A new Writer of the reopened Store continues.
	w = fence(t, s)
	if err := w.SetPolicyCursor(ctx, d[2]); err != nil {
		t.Fatal(err)
	}
	if n := dueCount(t, s, "test"); n != 0 {
		t.Fatalf("%d due entries left at or before the cursor", n)
	}
}
