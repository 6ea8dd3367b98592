//go:build integration

package cassandra

import (
	"context"
	"errors"
	"testing"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/prometheus/client_golang/prometheus"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// cacheCounts returns the writer cache's counters of s.
func cacheCounts(s *Store) (skipped, read, load float64) {
	return counterValue(s.m.writerCache.WithLabelValues("skipped")),
		counterValue(s.m.writerCache.WithLabelValues("read")),
		counterValue(s.m.writerCache.WithLabelValues("load"))
}

func cachedStore(t *testing.T, ids int) *Store {
	cfg := testConfig(t)
	cfg.Registerer = prometheus.NewRegistry() // counters of this store only
	cfg.WriterCacheIDs = ids
	return openStore(t, cfg)
}

func wantCounts(t *testing.T, s *Store, skipped, read, load float64) {
	t.Helper()
	if a, b, c := cacheCounts(s); a != skipped || b != read || c != load {
		t.Fatalf("writer cache: skipped %v, read %v, loaded %v; want %v, %v, %v", a, b, c, skipped, read, load)
	}
}

func appendOK(t *testing.T, ctx context.Context, w store.Writer, ns ...herald.Notification) []store.AppendResult {
	t.Helper()
	res, err := w.Append(ctx, ns)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func wantResult(t *testing.T, r store.AppendResult, created bool, seq uint64) {
	t.Helper()
	if r.Created != created || r.Notification.Seq != seq {
		t.Fatalf("%s: created %v at seq %d, want created %v at %d", r.Notification.EventID, r.Created, r.Notification.Seq, created, seq)
	}
}

// TestWriterCacheSkipsReads: once a writer has loaded a user, parts of new
// events are written without a read; a duplicate (an id the writer knows)
// is read first and comes back as stored, at its seq.
func TestWriterCacheSkipsReads(t *testing.T) {
	ctx := ctxFor(t)
	s := cachedStore(t, 0)
	w, err := s.Fence(ctx, uniq("scope"))
	if err != nil {
		t.Fatal(err)
	}
	u := uniq("cached")
	res := appendOK(t, ctx, w, mkNotif(u, "e1"), mkNotif(u, "e2"))
	wantResult(t, res[1], true, 2)
	wantCounts(t, s, 1, 0, 1) // the load was the one read
	res = appendOK(t, ctx, w, mkNotif(u, "e3"))
	wantResult(t, res[0], true, 3)
	wantCounts(t, s, 2, 0, 1)
	res = appendOK(t, ctx, w, mkNotif(u, "e4"), mkNotif(u, "e2"), mkNotif(u, "e4"))
	wantResult(t, res[0], true, 4)
	wantResult(t, res[1], false, 2)
	wantResult(t, res[2], false, 4) // the same event twice in one part: one copy
	if res[1].Notification.Title != "t e2" {
		t.Fatalf("stored duplicate = %+v", res[1].Notification)
	}
	wantCounts(t, s, 2, 1, 1)
	checkDense(t, ctx, s, u, 4)
	if n, _ := s.UnreadCount(ctx, u); n != 4 {
		t.Fatalf("UnreadCount = %d, want 4", n)
	}
}

// TestWriterCacheLoadsEarlierEpochs: a new writer (another process, a new
// epoch) starts from what is stored: it finds the previous writer's events
// as duplicates and goes on after its last seq, and its own previous
// epoch's state is not used by the successor in the same process.
func TestWriterCacheLoadsEarlierEpochs(t *testing.T) {
	ctx := ctxFor(t)
	s1, s2 := cachedStore(t, 0), cachedStore(t, 0)
	scope, u := uniq("scope"), uniq("epochs")
	w1, err := s1.Fence(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	appendOK(t, ctx, w1, mkNotif(u, "e1"), mkNotif(u, "e2"), mkNotif(u, "e3"))
	w2, err := s2.Fence(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	res := appendOK(t, ctx, w2, mkNotif(u, "e2"), mkNotif(u, "e4"))
	wantResult(t, res[0], false, 2)
	wantResult(t, res[1], true, 4)
	wantCounts(t, s2, 0, 1, 1)
	// Back to the first store, a third epoch: w1's cached state (last 3)
	// must not be trusted by it.
	w3, err := s1.Fence(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	res = appendOK(t, ctx, w3, mkNotif(u, "e5"))
	wantResult(t, res[0], true, 5)
	if _, err := w1.Append(ctx, []herald.Notification{mkNotif(u, "z")}); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("fenced writer's Append = %v, want ErrFenced", err)
	}
	checkDense(t, ctx, s1, u, 5)
}

// TestWriterCacheLostAnswer: a batch that landed but whose answer was lost
// (and one that never landed) leaves no cached state: the retry reads what
// is stored and returns the same seqs, created once.
func TestWriterCacheLostAnswer(t *testing.T) {
	ctx := ctxFor(t)
	s := cachedStore(t, 0)
	w, err := s.Fence(ctx, uniq("scope"))
	if err != nil {
		t.Fatal(err)
	}
	u := uniq("lost")
	appendOK(t, ctx, w, mkNotif(u, "e1"))

	s.execFn = func(ctx context.Context, b *gocql.Batch) error { // landed, answer lost
		if err := b.ExecContext(ctx); err != nil {
			return err
		}
		return gocql.ErrTimeoutNoResponse
	}
	if _, err := w.Append(ctx, []herald.Notification{mkNotif(u, "e2"), mkNotif(u, "e3")}); err == nil {
		t.Fatal("Append with a lost answer succeeded")
	}
	s.execFn = execBatch
	res := appendOK(t, ctx, w, mkNotif(u, "e2"), mkNotif(u, "e3"), mkNotif(u, "e4"))
	wantResult(t, res[0], false, 2)
	wantResult(t, res[1], false, 3)
	wantResult(t, res[2], true, 4)

	s.execFn = func(context.Context, *gocql.Batch) error { return gocql.ErrTimeoutNoResponse } // never landed
	if _, err := w.Append(ctx, []herald.Notification{mkNotif(u, "e5")}); err == nil {
		t.Fatal("Append with a failed batch succeeded")
	}
	s.execFn = execBatch
	res = appendOK(t, ctx, w, mkNotif(u, "e5"))
	wantResult(t, res[0], true, 5)
	checkDense(t, ctx, s, u, 5)
	_, _, loads := cacheCounts(s)
	if loads != 3 {
		t.Fatalf("user loaded %v times, want 3 (first use, after each failure)", loads)
	}
}

// TestWriterCacheHeavyAndOff: a user over the per-user cap, and a store
// with the cache off, are appended the uncached way, with the same results.
func TestWriterCacheHeavyAndOff(t *testing.T) {
	for _, tc := range []struct {
		name string
		ids  int
	}{{"heavy", 64 * 2}, {"off", -1}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxFor(t)
			s := cachedStore(t, tc.ids)
			w, err := s.Fence(ctx, uniq("scope"))
			if err != nil {
				t.Fatal(err)
			}
			u := uniq(tc.name)
			for i, e := range []string{"e1", "e2", "e3", "e4", "e2", "e5"} {
				res := appendOK(t, ctx, w, mkNotif(u, e))
				want, created := uint64(min(i+1, 5)), e != "e2" || i == 1
				if e == "e2" {
					want = 2
				} else if i == 5 {
					want = 5
				}
				wantResult(t, res[0], created, want)
			}
			checkDense(t, ctx, s, u, 5)
			skipped, read, _ := cacheCounts(s)
			switch tc.name {
			case "heavy": // userCap 2: e1 to e3 unread, heavy once e3 is in
				if skipped != 3 || read != 3 {
					t.Fatalf("heavy user: skipped %v, read %v; want 3, 3", skipped, read)
				}
			case "off":
				if skipped != 0 || read != 0 {
					t.Fatalf("cache off: skipped %v, read %v; want none", skipped, read)
				}
			}
		})
	}
}
