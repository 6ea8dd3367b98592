package storetest

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// Bench runs the store benchmarks as sub-benchmarks of b:
//
//   - Append: one Writer.Append of a batch of 100 notifications spread over 10
//     users (the shape of an enricher poll); reports notifications/s.
//   - List: List(limit 50) at varying offsets of a 1000-notification inbox;
//     reports notifications/s.
//   - UnreadCount: UnreadCount of a user with 1000 notifications, 500 read.
//
// newStore is called once per sub-benchmark; the store is closed when it ends.
func Bench(b *testing.B, newStore func(b *testing.B) store.Store) {
	b.Run("Append", func(b *testing.B) { benchAppend(b, newStore) })
	b.Run("List", func(b *testing.B) { benchList(b, newStore) })
	b.Run("UnreadCount", func(b *testing.B) { benchUnreadCount(b, newStore) })
}

// openBench returns a fresh store, closed when b ends, and the Writer of
// a scope of its own (Fence is not measured).
func openBench(b *testing.B, newStore func(b *testing.B) store.Store) (store.Store, store.Writer) {
	st := newStore(b)
	b.Cleanup(func() { _ = st.Close() })
	w, err := st.Fence(b.Context(), "bench-"+runID()+"/0")
	if err != nil {
		b.Fatalf("Fence: %v", err)
	}
	return st, w
}

// benchNotif is notif without the random ULID, so the loop measures the store.
func benchNotif(userID, eventID string) herald.Notification {
	return herald.Notification{
		ID: "01JD" + eventID, EventID: eventID, Type: "mention", Priority: herald.PriorityNormal,
		Title: "Ada mentioned you", Body: "in #general: have a look at this benchmark",
		Data: []byte(`{"url":"/c/general/42"}`), CreatedAt: baseTime, UserID: userID,
	}
}

// fill appends n notifications for userID in batches of 100.
func fill(b *testing.B, ctx context.Context, w store.Writer, userID string, n int) {
	for i := 0; i < n; i += 100 {
		batch := make([]herald.Notification, 0, 100)
		for j := i; j < i+100 && j < n; j++ {
			batch = append(batch, benchNotif(userID, "fill-"+strconv.Itoa(j)))
		}
		if _, err := w.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
}

func benchAppend(b *testing.B, newStore func(b *testing.B) store.Store) {
	_, w := openBench(b, newStore)
	ctx := b.Context()
	run := runID()
	users := make([]string, 10)
	for i := range users {
		users[i] = fmt.Sprintf("bench-%s-%d", run, i)
	}
	const size = 100
	batch := make([]herald.Notification, size)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		for j := range batch {
			batch[j] = benchNotif(users[j%len(users)], "e-"+strconv.Itoa(n))
			n++
		}
		if _, err := w.Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "notifications/s")
}

func benchList(b *testing.B, newStore func(b *testing.B) store.Store) {
	st, w := openBench(b, newStore)
	ctx := b.Context()
	u := "bench-list-" + runID()
	fill(b, ctx, w, u, 1000)
	b.ReportAllocs()
	listed := 0
	for i := 0; b.Loop(); i++ {
		l, err := st.List(ctx, u, uint64(i*50%950), 50, false)
		if err != nil {
			b.Fatal(err)
		}
		listed += len(l)
	}
	b.ReportMetric(float64(listed)/b.Elapsed().Seconds(), "notifications/s")
}

func benchUnreadCount(b *testing.B, newStore func(b *testing.B) store.Store) {
	st, w := openBench(b, newStore)
	ctx := b.Context()
	u := "bench-unread-" + runID()
	fill(b, ctx, w, u, 1000)
	seqs := make([]uint64, 0, 500)
	for s := uint64(1); s <= 1000; s += 2 {
		seqs = append(seqs, s)
	}
	if _, err := st.MarkRead(ctx, u, seqs); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		n, err := st.UnreadCount(ctx, u)
		if err != nil {
			b.Fatal(err)
		}
		if n != 500 {
			b.Fatalf("UnreadCount = %d, want 500", n)
		}
	}
}
