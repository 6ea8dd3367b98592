package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// inboxState is what a reader sees of one user: used to check that a
// refused append changed nothing.
type inboxState struct {
	list   []herald.Notification
	last   uint64
	unread int64
}

func stateOf(t *testing.T, ctx context.Context, st store.Store, userID string) inboxState {
	t.Helper()
	return inboxState{
		list:   mustList(t, ctx, st, userID, 0, 0, false),
		last:   mustLastSeq(t, ctx, st, userID),
		unread: mustUnread(t, ctx, st, userID),
	}
}

func sameState(t *testing.T, what string, got, want inboxState) {
	t.Helper()
	if got.last != want.last || got.unread != want.unread {
		t.Fatalf("%s: LastSeq/UnreadCount %d/%d, want %d/%d", what, got.last, got.unread, want.last, want.unread)
	}
	wantSeqs(t, what, got.list, seqsOf(want.list))
	for i, n := range got.list {
		w := want.list[i]
		if n.EventID != w.EventID || n.ID != w.ID || n.Read != w.Read || n.Prev != w.Prev {
			t.Fatalf("%s: seq %d is %s/%s read=%v prev %d, want %s/%s read=%v prev %d",
				what, n.Seq, n.EventID, n.ID, n.Read, n.Prev, w.EventID, w.ID, w.Read, w.Prev)
		}
	}
}

func wantFenced(t *testing.T, what string, res []store.AppendResult, err error) {
	t.Helper()
	if !errors.Is(err, store.ErrFenced) {
		t.Fatalf("%s: %d results, err %v; want ErrFenced", what, len(res), err)
	}
}

// fenceRefusesOldWriter: once the scope is fenced again, the old Writer's
// appends fail with ErrFenced and change nothing a reader sees, whether
// they carry new events, a replay of stored ones, or a user it never
// wrote; and it stays fenced.
func (s *suite) fenceRefusesOldWriter(t *testing.T) {
	st, ctx := s.open(t)
	scope := s.scope("zombie")
	old := mustFence(t, ctx, st, scope)
	u, fresh := s.user("fenced"), s.user("fenced-fresh")
	stored := notifs(u, "a", 3)
	mustAppend(t, ctx, old, stored)
	mustMarkRead(t, ctx, st, u, 2)
	before := stateOf(t, ctx, st, u)

	mustFence(t, ctx, st, scope)

	res, err := old.Append(ctx, notifs(u, "b", 2))
	wantFenced(t, "fenced writer, new events", res, err)
	res, err = old.Append(ctx, stored)
	wantFenced(t, "fenced writer, replay of its own batch", res, err)
	res, err = old.Append(ctx, []herald.Notification{notif(fresh, "x"), notif(u, "c")})
	wantFenced(t, "fenced writer, new user", res, err)
	res, err = old.Append(ctx, notifs(u, "d", 1))
	wantFenced(t, "fenced writer, second attempt", res, err)

	sameState(t, "after the fenced appends", stateOf(t, ctx, st, u), before)
	if got := stateOf(t, ctx, st, fresh); got.last != 0 || got.unread != 0 || len(got.list) != 0 {
		t.Fatalf("a fenced append created user %s: LastSeq %d, UnreadCount %d, %d listed", fresh, got.last, got.unread, len(got.list))
	}
}

// fenceNewWriterContinues: the new Writer of a scope continues each user's
// seqs densely after what the fenced one stored, and replaying through it
// a batch the old writer stored (what an enricher does after taking over
// a partition) returns the stored seqs with Created=false.
func (s *suite) fenceNewWriterContinues(t *testing.T) {
	st, ctx := s.open(t)
	scope := s.scope("takeover")
	old := mustFence(t, ctx, st, scope)
	u, v := s.user("take-u"), s.user("take-v")
	batch := []herald.Notification{notif(u, "e1"), notif(v, "e1"), notif(u, "e2"), notif(u, "e3")}
	orig := mustAppend(t, ctx, old, batch)

	cur := mustFence(t, ctx, st, scope)
	replay := mustAppend(t, ctx, cur, batch)
	for i, r := range replay {
		o := orig[i].Notification
		if r.Created || r.Notification.Seq != o.Seq || r.Notification.ID != o.ID || r.Notification.UserID != o.UserID {
			t.Fatalf("replay result %d: created=%v seq %d id %s, want false %d %s",
				i, r.Created, r.Notification.Seq, r.Notification.ID, o.Seq, o.ID)
		}
	}

	more := mustAppend(t, ctx, cur, []herald.Notification{notif(v, "e2"), notif(u, "e4"), notif(u, "e1")})
	for i, want := range []struct {
		created   bool
		seq, prev uint64
	}{{true, 2, 1}, {true, 4, 3}, {false, 1, 0}} {
		r := more[i]
		if r.Created != want.created || r.Notification.Seq != want.seq || r.Notification.Prev != want.prev {
			t.Fatalf("new writer, result %d: created=%v seq/prev %d/%d, want %v %d/%d",
				i, r.Created, r.Notification.Seq, r.Notification.Prev, want.created, want.seq, want.prev)
		}
	}
	checkChain(t, "List(u)", mustList(t, ctx, st, u, 0, 0, false), 1, 4)
	checkChain(t, "List(v)", mustList(t, ctx, st, v, 0, 0, false), 1, 2)
	if got := mustUnread(t, ctx, st, u); got != 4 {
		t.Fatalf("UnreadCount(u) = %d, want 4", got)
	}
	if got := mustLastSeq(t, ctx, st, v); got != 2 {
		t.Fatalf("LastSeq(v) = %d, want 2", got)
	}
}

// fenceScopesIndependent: fencing one scope fences only its own writers.
func (s *suite) fenceScopesIndependent(t *testing.T) {
	st, ctx := s.open(t)
	sa, sb := s.scope("a"), s.scope("b")
	a1 := mustFence(t, ctx, st, sa)
	b1 := mustFence(t, ctx, st, sb)
	ua, ub := s.user("scope-a"), s.user("scope-b")
	mustAppend(t, ctx, a1, notifs(ua, "x", 1))
	mustAppend(t, ctx, b1, notifs(ub, "x", 1))

	a2 := mustFence(t, ctx, st, sa)
	if r := mustAppend(t, ctx, b1, notifs(ub, "y", 1))[0]; !r.Created || r.Notification.Seq != 2 {
		t.Fatalf("writer of scope B after scope A was fenced: created=%v seq %d, want true 2", r.Created, r.Notification.Seq)
	}
	res, err := a1.Append(ctx, notifs(ua, "y", 1))
	wantFenced(t, "old writer of scope A", res, err)

	mustFence(t, ctx, st, sb)
	if r := mustAppend(t, ctx, a2, notifs(ua, "y", 1))[0]; !r.Created || r.Notification.Seq != 2 {
		t.Fatalf("new writer of scope A after scope B was fenced: created=%v seq %d, want true 2", r.Created, r.Notification.Seq)
	}
	res, err = b1.Append(ctx, notifs(ub, "z", 1))
	wantFenced(t, "old writer of scope B", res, err)
	if got := mustLastSeq(t, ctx, st, ub); got != 2 {
		t.Fatalf("LastSeq(scope B's user) = %d, want 2", got)
	}
}

// fenceValidatesScope: an empty scope or one longer than MaxScopeBytes is
// a *herald.ValidationError naming "scope"; MaxScopeBytes bytes are fine.
func (s *suite) fenceValidatesScope(t *testing.T) {
	st, ctx := s.open(t)
	for name, scope := range map[string]string{
		"an empty scope": "",
		fmt.Sprintf("a %d-byte scope", store.MaxScopeBytes+1): strings.Repeat("s", store.MaxScopeBytes+1),
	} {
		w, err := st.Fence(ctx, scope)
		var ve *herald.ValidationError
		if !errors.As(err, &ve) || ve.Field != "scope" {
			t.Errorf("Fence with %s = %v, %v; want a *herald.ValidationError on scope", name, w, err)
		}
	}
	long := s.scope("max")
	long += strings.Repeat("s", store.MaxScopeBytes-len(long))
	w := mustFence(t, ctx, st, long)
	mustAppend(t, ctx, w, notifs(s.user("max-scope"), "e", 1))
}

// fenceAfterClose: Fence, and Append through a Writer handed out before,
// return ErrClosed once the store is closed.
func (s *suite) fenceAfterClose(t *testing.T) {
	st, ctx := s.open(t)
	scope := s.scope("closed")
	w := mustFence(t, ctx, st, scope)
	mustAppend(t, ctx, w, notifs(s.user("fence-closed"), "e", 1))
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := st.Fence(ctx, scope); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Fence after Close = %v, want ErrClosed", err)
	}
	if _, err := st.Fence(ctx, s.scope("never")); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Fence of a new scope after Close = %v, want ErrClosed", err)
	}
	if _, err := w.Append(ctx, notifs(s.user("fence-closed2"), "e", 1)); !errors.Is(err, store.ErrClosed) {
		t.Errorf("Writer.Append after Close = %v, want ErrClosed", err)
	}
}

// fenceRacesAppends fences a scope while its old Writer keeps appending
// for a user: the old writer's appends end with ErrFenced (the first one
// started after Fence returned does), and the inbox is the old writer's
// stored prefix followed by the new writer's notifications, dense. An
// append of the old writer that was already in flight when the fence
// happened may report seqs that the new writer then took (a store that
// fences by timestamps, like Cassandra, lets such a late write lose):
// those seqs must hold the new writer's notifications, never the old one's.
func (s *suite) fenceRacesAppends(t *testing.T) {
	st, ctx := s.open(t)
	scope := s.scope("race")
	old := mustFence(t, ctx, st, scope)
	u := s.user("fence-race")

	started := make(chan struct{})
	type outcome struct {
		created []uint64
		err     error
	}
	done := make(chan outcome, 1)
	go func() {
		var o outcome
		defer func() { done <- o }()
		// A store that never fences would loop until ctx ends; the bound
		// turns that into a prompt failure.
		for i := 0; i < 10000; i++ {
			res, err := old.Append(ctx, notifs(u, fmt.Sprintf("old%d", i), 2))
			if i == 0 {
				close(started)
			}
			if err != nil {
				o.err = err
				return
			}
			for _, r := range res {
				o.created = append(o.created, r.Notification.Seq)
			}
		}
		o.err = errors.New("10000 appends of the old writer succeeded")
	}()
	<-started
	cur := mustFence(t, ctx, st, scope)
	mine := mustAppend(t, ctx, cur, notifs(u, "new", 3))
	o := <-done
	if !errors.Is(o.err, store.ErrFenced) {
		t.Fatalf("old writer's appends ended with %v, want ErrFenced", o.err)
	}
	first := mine[0].Notification.Seq
	all := mustList(t, ctx, st, u, 0, 0, false)
	total := first + uint64(len(mine)) - 1
	checkChain(t, "List", all, 1, total)
	for i, r := range mine {
		if !r.Created || r.Notification.Seq != first+uint64(i) || all[first-1+uint64(i)].EventID != r.Notification.EventID {
			t.Fatalf("new writer result %d: created=%v seq %d, want created at %d and listed there", i, r.Created, r.Notification.Seq, first+uint64(i))
		}
	}
	for _, n := range all[:first-1] {
		if !strings.HasPrefix(n.EventID, "old") {
			t.Fatalf("seq %d before the new writer's holds %s", n.Seq, n.EventID)
		}
	}
	for _, seq := range o.created {
		if seq >= first {
			continue // a late write the new writer's overwrote (checked above)
		}
		if !strings.HasPrefix(all[seq-1].EventID, "old") {
			t.Fatalf("old writer's seq %d holds %s", seq, all[seq-1].EventID)
		}
	}
}
