package storetest

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	herald "github.com/heraldhq/herald"
)

// concurrentSharedWriter shares ONE Writer between several
// goroutines, as the enricher shares the Writer of a partition between the
// batches it has in flight: each goroutine appends for its own users (so
// the seqs it gets are predictable), each batch interleaving two users.
// Writer is documented safe for concurrent use.
func (s *suite) concurrentSharedWriter(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	const goroutines, batches, perUser = 4, 10, 5
	users := make([][2]string, goroutines)
	for g := range users {
		users[g] = [2]string{s.user(fmt.Sprintf("cw%d-a", g)), s.user(fmt.Sprintf("cw%d-b", g))}
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			a, b := users[g][0], users[g][1]
			for i := range batches {
				var batch []herald.Notification
				for j := range perUser {
					batch = append(batch, notif(a, fmt.Sprintf("a-%d-%d", i, j)), notif(b, fmt.Sprintf("b-%d-%d", i, j)))
				}
				res, err := w.Append(ctx, batch)
				if err != nil {
					t.Errorf("goroutine %d batch %d: %v", g, i, err)
					return
				}
				if len(res) != len(batch) {
					t.Errorf("goroutine %d batch %d: %d results for %d notifications", g, i, len(res), len(batch))
					return
				}
				for k, r := range res {
					want := uint64(i*perUser + k/2 + 1)
					if !r.Created || r.Notification.Seq != want || r.Notification.UserID != batch[k].UserID {
						t.Errorf("goroutine %d batch %d result %d: created=%v seq %d user %s, want seq %d",
							g, i, k, r.Created, r.Notification.Seq, r.Notification.UserID, want)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	const total = batches * perUser
	for _, pair := range users {
		for _, u := range pair {
			checkChain(t, "List("+u+")", mustList(t, ctx, st, u, 0, 0, false), 1, total)
			if got := mustLastSeq(t, ctx, st, u); got != total {
				t.Fatalf("LastSeq(%s) = %d, want %d", u, got, total)
			}
			if got := mustUnread(t, ctx, st, u); got != total {
				t.Fatalf("UnreadCount(%s) = %d, want %d", u, got, total)
			}
		}
	}
}

// concurrentMarkReadVsAppend races a writer against readers marking
// notifications read, then checks that the unread counter agrees with the
// rows.
func (s *suite) concurrentMarkReadVsAppend(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	users := []string{s.user("race1"), s.user("race2")}
	const batches, perBatch = 20, 5

	done := make(chan struct{})
	var writer, readers sync.WaitGroup
	writer.Go(func() {
		defer close(done)
		for i := range batches {
			var batch []herald.Notification
			for _, u := range users {
				batch = append(batch, notifs(u, fmt.Sprintf("b%d", i), perBatch)...)
			}
			if _, err := w.Append(ctx, batch); err != nil {
				t.Errorf("Append batch %d: %v", i, err)
				return
			}
		}
	})
	for r, u := range users {
		readers.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(r), 42))
			for iter := 0; ; iter++ {
				select {
				case <-done:
					return
				default:
				}
				if iter%7 == 6 {
					if n, err := st.MarkAllRead(ctx, u); err != nil || n < 0 {
						t.Errorf("MarkAllRead(%s) = %d, %v", u, n, err)
						return
					}
					continue
				}
				l, err := st.List(ctx, u, 0, 0, true)
				if err != nil {
					t.Errorf("List(%s): %v", u, err)
					return
				}
				var seqs []uint64
				for _, n := range l {
					if rng.IntN(2) == 0 {
						seqs = append(seqs, n.Seq)
					}
				}
				n, err := st.MarkRead(ctx, u, seqs)
				if err != nil || n < 0 {
					t.Errorf("MarkRead(%s) = %d, %v", u, n, err)
					return
				}
				if c, err := st.UnreadCount(ctx, u); err != nil || c < 0 {
					t.Errorf("UnreadCount(%s) = %d, %v", u, c, err)
					return
				}
			}
		})
	}
	writer.Wait()
	readers.Wait()
	if t.Failed() {
		return
	}
	for _, u := range users {
		all := mustList(t, ctx, st, u, 0, 0, false)
		checkChain(t, "List("+u+")", all, 1, batches*perBatch)
		unreadRows := 0
		for _, n := range all {
			if !n.Read {
				unreadRows++
			}
		}
		if got := len(mustList(t, ctx, st, u, 0, 0, true)); got != unreadRows {
			t.Fatalf("%s: List(unreadOnly) has %d rows, List has %d unread", u, got, unreadRows)
		}
		if got := mustUnread(t, ctx, st, u); got != int64(unreadRows) {
			t.Fatalf("%s: UnreadCount = %d, but %d rows are unread", u, got, unreadRows)
		}
		if got := mustMarkAllRead(t, ctx, st, u); got != 0 {
			t.Fatalf("%s: final MarkAllRead = %d", u, got)
		}
	}
}
