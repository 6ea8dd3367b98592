package storetest

import (
	"fmt"
	"slices"
	"testing"

	herald "github.com/heraldhq/herald"
)

func (s *suite) appendSequencesPerUser(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("seq")
	first := notifs(u, "a", 5)
	res := mustAppend(t, ctx, w, first)
	for i, r := range res {
		if !r.Created {
			t.Fatalf("result %d: Created=false for a new event id", i)
		}
		if r.Notification.Seq != uint64(i+1) || r.Notification.Prev != uint64(i) {
			t.Fatalf("result %d: seq/prev %d/%d, want %d/%d", i, r.Notification.Seq, r.Notification.Prev, i+1, i)
		}
		if r.Notification.Read {
			t.Fatalf("result %d: new notification is Read", i)
		}
		sameContent(t, fmt.Sprintf("result %d", i), r.Notification, first[i])
	}

	second := notifs(u, "b", 3)
	res = mustAppend(t, ctx, w, second)
	for i, r := range res {
		if !r.Created || r.Notification.Seq != uint64(6+i) || r.Notification.Prev != uint64(5+i) {
			t.Fatalf("second call, result %d: created=%v seq/prev %d/%d, want true %d/%d",
				i, r.Created, r.Notification.Seq, r.Notification.Prev, 6+i, 5+i)
		}
	}
	if got := mustLastSeq(t, ctx, st, u); got != 8 {
		t.Fatalf("LastSeq = %d, want 8", got)
	}

	l := mustList(t, ctx, st, u, 0, 0, false)
	checkChain(t, "List", l, 1, 8)
	all := slices.Concat(first, second)
	for i, n := range l {
		sameContent(t, fmt.Sprintf("listed seq %d", n.Seq), n, all[i])
		if n.Read {
			t.Fatalf("listed seq %d is Read before any MarkRead", n.Seq)
		}
	}
}

func (s *suite) appendIndependentUsers(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u1, u2 := s.user("ind1"), s.user("ind2")
	mustAppend(t, ctx, w, notifs(u1, "x", 3))
	res := mustAppend(t, ctx, w, notifs(u2, "y", 2))
	for i, r := range res {
		if r.Notification.Seq != uint64(i+1) || r.Notification.Prev != uint64(i) {
			t.Fatalf("second user, result %d: seq/prev %d/%d, want %d/%d", i, r.Notification.Seq, r.Notification.Prev, i+1, i)
		}
	}
	if got := mustLastSeq(t, ctx, st, u1); got != 3 {
		t.Fatalf("LastSeq(u1) = %d, want 3", got)
	}
	if got := mustLastSeq(t, ctx, st, u2); got != 2 {
		t.Fatalf("LastSeq(u2) = %d, want 2", got)
	}
	for _, n := range mustList(t, ctx, st, u2, 0, 0, false) {
		if n.UserID != u2 || n.EventID[0] != 'y' {
			t.Fatalf("List(u2) returned %q of user %q", n.EventID, n.UserID)
		}
	}
	if got := mustUnread(t, ctx, st, u1); got != 3 {
		t.Fatalf("UnreadCount(u1) = %d, want 3", got)
	}
}

func (s *suite) appendInterleavedBatch(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	a, b, c := s.user("ia"), s.user("ib"), s.user("ic")
	batch := []herald.Notification{
		notif(a, "a1"), notif(b, "b1"), notif(a, "a2"), notif(c, "c1"), notif(b, "b2"), notif(a, "a3"),
	}
	wantSeq := []uint64{1, 1, 2, 1, 2, 3}
	res := mustAppend(t, ctx, w, batch)
	for i, r := range res {
		n := r.Notification
		if !r.Created || n.Seq != wantSeq[i] || n.Prev != wantSeq[i]-1 {
			t.Fatalf("result %d (%s): created=%v seq/prev %d/%d, want true %d/%d",
				i, batch[i].EventID, r.Created, n.Seq, n.Prev, wantSeq[i], wantSeq[i]-1)
		}
		sameContent(t, fmt.Sprintf("result %d", i), n, batch[i])
	}
	for u, want := range map[string][]string{a: {"a1", "a2", "a3"}, b: {"b1", "b2"}, c: {"c1"}} {
		l := mustList(t, ctx, st, u, 0, 0, false)
		checkChain(t, "List("+u+")", l, 1, uint64(len(want)))
		for i, n := range l {
			if n.EventID != want[i] {
				t.Fatalf("List(%s)[%d] = %s, want %s", u, i, n.EventID, want[i])
			}
		}
		if got := mustUnread(t, ctx, st, u); got != int64(len(want)) {
			t.Fatalf("UnreadCount(%s) = %d, want %d", u, got, len(want))
		}
	}
}

func (s *suite) appendDuplicateAcrossCalls(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("dup")
	orig := mustAppend(t, ctx, w, []herald.Notification{notif(u, "e1"), notif(u, "e2")})

	again := notif(u, "e1")
	again.ID = herald.NewID(baseTime.Add(1e9)) // a different notification id
	again.Title = "changed title"
	res := mustAppend(t, ctx, w, []herald.Notification{again})
	r := res[0]
	if r.Created {
		t.Fatal("Created=true for an event id already in the inbox")
	}
	if r.Notification.Seq != 1 || r.Notification.Prev != 0 {
		t.Fatalf("duplicate: seq/prev %d/%d, want the stored 1/0", r.Notification.Seq, r.Notification.Prev)
	}
	sameContent(t, "duplicate", r.Notification, orig[0].Notification)

	if got := mustLastSeq(t, ctx, st, u); got != 2 {
		t.Fatalf("LastSeq = %d after a duplicate, want 2", got)
	}
	if got := mustUnread(t, ctx, st, u); got != 2 {
		t.Fatalf("UnreadCount = %d after a duplicate, want 2", got)
	}
	l := mustList(t, ctx, st, u, 0, 0, false)
	checkChain(t, "List", l, 1, 2)
	if l[0].Title != orig[0].Notification.Title {
		t.Fatalf("stored title changed to %q by a duplicate", l[0].Title)
	}
}

func (s *suite) appendDuplicateWithinBatch(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("dupbatch")
	dup := notif(u, "e1")
	dup.ID = herald.NewID(baseTime.Add(2e9))
	batch := []herald.Notification{notif(u, "e1"), notif(u, "e2"), dup, notif(u, "e3")}
	res := mustAppend(t, ctx, w, batch)

	want := []struct {
		created   bool
		seq, prev uint64
	}{{true, 1, 0}, {true, 2, 1}, {false, 1, 0}, {true, 3, 2}}
	for i, w := range want {
		r := res[i]
		if r.Created != w.created || r.Notification.Seq != w.seq || r.Notification.Prev != w.prev {
			t.Fatalf("result %d: created=%v seq/prev %d/%d, want %v %d/%d",
				i, r.Created, r.Notification.Seq, r.Notification.Prev, w.created, w.seq, w.prev)
		}
	}
	if res[2].Notification.ID != res[0].Notification.ID {
		t.Fatalf("duplicate in batch returned ID %q, want the stored %q", res[2].Notification.ID, res[0].Notification.ID)
	}
	if got := mustLastSeq(t, ctx, st, u); got != 3 {
		t.Fatalf("LastSeq = %d, want 3", got)
	}
	if got := mustUnread(t, ctx, st, u); got != 3 {
		t.Fatalf("UnreadCount = %d, want 3", got)
	}
	checkChain(t, "List", mustList(t, ctx, st, u, 0, 0, false), 1, 3)
}

func (s *suite) appendSameEventIDOtherUser(t *testing.T) {
	_, w, ctx := s.openWriter(t)
	u1, u2 := s.user("same1"), s.user("same2")
	res := mustAppend(t, ctx, w, []herald.Notification{notif(u1, "shared"), notif(u2, "shared")})
	for i, r := range res {
		if !r.Created || r.Notification.Seq != 1 {
			t.Fatalf("result %d: created=%v seq %d; dedup must be per user", i, r.Created, r.Notification.Seq)
		}
	}
	res = mustAppend(t, ctx, w, []herald.Notification{notif(u2, "shared")})
	if res[0].Created || res[0].Notification.UserID != u2 {
		t.Fatalf("replay for u2: created=%v user %q", res[0].Created, res[0].Notification.UserID)
	}
}

func (s *suite) appendReplayBatch(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	a, b, c := s.user("ra"), s.user("rb"), s.user("rc")
	mustAppend(t, ctx, w, notifs(a, "pre", 2)) // a does not start at 1
	batch := []herald.Notification{
		notif(a, "1"), notif(b, "1"), notif(c, "1"), notif(a, "2"), notif(b, "2"), notif(a, "3"),
	}
	first := mustAppend(t, ctx, w, batch)
	second := mustAppend(t, ctx, w, batch)
	for i := range batch {
		f, g := first[i], second[i]
		if !f.Created {
			t.Fatalf("first append, result %d: Created=false", i)
		}
		if g.Created {
			t.Fatalf("replay, result %d: Created=true", i)
		}
		if g.Notification.Seq != f.Notification.Seq || g.Notification.Prev != f.Notification.Prev {
			t.Fatalf("replay, result %d: seq/prev %d/%d, first append gave %d/%d",
				i, g.Notification.Seq, g.Notification.Prev, f.Notification.Seq, f.Notification.Prev)
		}
		sameContent(t, fmt.Sprintf("replay result %d", i), g.Notification, f.Notification)
	}
	for u, last := range map[string]uint64{a: 5, b: 2, c: 1} {
		if got := mustLastSeq(t, ctx, st, u); got != last {
			t.Fatalf("LastSeq(%s) = %d after replay, want %d", u, got, last)
		}
		if got := mustUnread(t, ctx, st, u); got != int64(last) {
			t.Fatalf("UnreadCount(%s) = %d after replay, want %d", u, got, last)
		}
	}

	// A replay that carries one more record than the crashed attempt.
	extended := append(append([]herald.Notification{}, batch...), notif(b, "3"))
	res := mustAppend(t, ctx, w, extended)
	for i := range batch {
		if res[i].Created || res[i].Notification.Seq != first[i].Notification.Seq {
			t.Fatalf("extended replay, result %d: created=%v seq %d", i, res[i].Created, res[i].Notification.Seq)
		}
	}
	if r := res[len(batch)]; !r.Created || r.Notification.Seq != 3 || r.Notification.Prev != 2 {
		t.Fatalf("new record in extended replay: created=%v seq/prev %d/%d, want true 3/2",
			r.Created, r.Notification.Seq, r.Notification.Prev)
	}
}

func (s *suite) appendReplayAfterRead(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("readreplay")
	batch := notifs(u, "e", 2)
	mustAppend(t, ctx, w, batch)
	if got := mustMarkRead(t, ctx, st, u, 1); got != 1 {
		t.Fatalf("MarkRead(1) = %d, want 1", got)
	}
	res := mustAppend(t, ctx, w, batch)
	for i, r := range res {
		if r.Created || r.Notification.Seq != uint64(i+1) {
			t.Fatalf("replay result %d: created=%v seq %d", i, r.Created, r.Notification.Seq)
		}
	}
	if got := mustUnread(t, ctx, st, u); got != 1 {
		t.Fatalf("UnreadCount = %d after replaying a read notification, want 1", got)
	}
	l := mustList(t, ctx, st, u, 0, 0, false)
	if !l[0].Read || l[1].Read {
		t.Fatalf("Read flags after replay: %v %v, want true false", l[0].Read, l[1].Read)
	}
}

func (s *suite) appendIgnoresInputSeqPrevRead(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("ignore")
	n := notif(u, "e")
	n.Seq, n.Prev, n.Read = 77, 76, true
	r := mustAppend(t, ctx, w, []herald.Notification{n})[0]
	if r.Notification.Seq != 1 || r.Notification.Prev != 0 || r.Notification.Read {
		t.Fatalf("seq/prev/read %d/%d/%v, want 1/0/false", r.Notification.Seq, r.Notification.Prev, r.Notification.Read)
	}
	if got := mustUnread(t, ctx, st, u); got != 1 {
		t.Fatalf("UnreadCount = %d, want 1", got)
	}
	if got := mustLastSeq(t, ctx, st, u); got != 1 {
		t.Fatalf("LastSeq = %d, want 1", got)
	}
}

func (s *suite) appendEmpty(t *testing.T) {
	_, w, ctx := s.openWriter(t)
	res, err := w.Append(ctx, nil)
	if err != nil {
		t.Fatalf("Append(nil): %v", err)
	}
	if len(res) != 0 {
		t.Fatalf("Append(nil) returned %d results", len(res))
	}
}

func (s *suite) listAfterAndLimit(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("list")
	mustAppend(t, ctx, w, notifs(u, "e", 10))
	cases := []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 0, span(1, 10)},
		{0, -1, span(1, 10)},
		{0, 100, span(1, 10)},
		{0, 1, []uint64{1}},
		{3, 4, span(4, 7)},
		{8, 10, span(9, 10)},
		{9, 0, []uint64{10}},
		{10, 0, nil},
		{1000, 5, nil},
	}
	for _, c := range cases {
		l := mustList(t, ctx, st, u, c.after, c.limit, false)
		if c.want == nil {
			c.want = []uint64{}
		}
		wantSeqs(t, fmt.Sprintf("List(after=%d, limit=%d)", c.after, c.limit), l, c.want)
		for _, n := range l {
			if n.UserID != u {
				t.Fatalf("List returned UserID %q, want %q", n.UserID, u)
			}
		}
	}
}

func (s *suite) listPaging(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("paging")
	for b := range 5 {
		mustAppend(t, ctx, w, notifs(u, fmt.Sprintf("b%d", b), 7))
	}
	var got []herald.Notification
	after := uint64(0)
	for pages := 0; ; pages++ {
		if pages > 20 {
			t.Fatal("paging did not terminate")
		}
		page := mustList(t, ctx, st, u, after, 4, false)
		if len(page) == 0 {
			break
		}
		if len(page) > 4 {
			t.Fatalf("page of %d with limit 4", len(page))
		}
		got = append(got, page...)
		after = page[len(page)-1].Seq
	}
	checkChain(t, "paged List", got, 1, 35)
}

func (s *suite) listUnreadOnly(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("unreadonly")
	mustAppend(t, ctx, w, notifs(u, "e", 6))
	if got := mustMarkRead(t, ctx, st, u, 2, 4, 5); got != 3 {
		t.Fatalf("MarkRead(2,4,5) = %d, want 3", got)
	}
	l := mustList(t, ctx, st, u, 0, 0, true)
	wantSeqs(t, "List(unreadOnly)", l, []uint64{1, 3, 6})
	for _, n := range l {
		if n.Read {
			t.Fatalf("unreadOnly listed seq %d with Read=true", n.Seq)
		}
		if n.Prev != n.Seq-1 {
			t.Fatalf("unreadOnly seq %d: prev %d, want the user's previous seq %d", n.Seq, n.Prev, n.Seq-1)
		}
	}
	wantSeqs(t, "List(after=1, limit=1, unreadOnly)", mustList(t, ctx, st, u, 1, 1, true), []uint64{3})
	wantSeqs(t, "List(after=3, unreadOnly)", mustList(t, ctx, st, u, 3, 0, true), []uint64{6})
	wantSeqs(t, "List(after=6, unreadOnly)", mustList(t, ctx, st, u, 6, 0, true), []uint64{})

	all := mustList(t, ctx, st, u, 0, 0, false)
	checkChain(t, "List", all, 1, 6)
	for _, n := range all {
		wantRead := n.Seq == 2 || n.Seq == 4 || n.Seq == 5
		if n.Read != wantRead {
			t.Fatalf("seq %d: Read=%v, want %v", n.Seq, n.Read, wantRead)
		}
	}
}

func (s *suite) listUnknownUser(t *testing.T) {
	st, ctx := s.open(t)
	u := s.user("nobody")
	if l := mustList(t, ctx, st, u, 0, 0, false); len(l) != 0 {
		t.Fatalf("List(unknown user) returned %d", len(l))
	}
	if l := mustList(t, ctx, st, u, 0, 10, true); len(l) != 0 {
		t.Fatalf("List(unknown user, unreadOnly) returned %d", len(l))
	}
	if got := mustLastSeq(t, ctx, st, u); got != 0 {
		t.Fatalf("LastSeq(unknown user) = %d", got)
	}
}

func (s *suite) unreadMarkRead(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("markread")
	mustAppend(t, ctx, w, notifs(u, "e", 5))
	if got := mustUnread(t, ctx, st, u); got != 5 {
		t.Fatalf("UnreadCount = %d, want 5", got)
	}
	steps := []struct {
		seqs []uint64
		want int64
	}{
		{[]uint64{1, 2}, 3},
		{[]uint64{2}, 3},          // already read: idempotent
		{[]uint64{0, 99, 3}, 2},   // unknown seqs ignored
		{nil, 2},                  // nothing to do
		{[]uint64{4, 4}, 1},       // repeated seq counted once
		{[]uint64{1, 2, 3, 4}, 1}, // all already read
	}
	for _, step := range steps {
		if got := mustMarkRead(t, ctx, st, u, step.seqs...); got != step.want {
			t.Fatalf("MarkRead(%v) = %d, want %d", step.seqs, got, step.want)
		}
		if got := mustUnread(t, ctx, st, u); got != step.want {
			t.Fatalf("UnreadCount after MarkRead(%v) = %d, want %d", step.seqs, got, step.want)
		}
	}
	if got := mustLastSeq(t, ctx, st, u); got != 5 {
		t.Fatalf("LastSeq = %d after MarkRead, want 5", got)
	}
	wantSeqs(t, "List(unreadOnly)", mustList(t, ctx, st, u, 0, 0, true), []uint64{5})
}

func (s *suite) unreadMarkAllRead(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("markall")
	mustAppend(t, ctx, w, notifs(u, "a", 4))
	mustMarkRead(t, ctx, st, u, 2)
	if got := mustMarkAllRead(t, ctx, st, u); got != 0 {
		t.Fatalf("MarkAllRead = %d, want 0", got)
	}
	if got := mustUnread(t, ctx, st, u); got != 0 {
		t.Fatalf("UnreadCount after MarkAllRead = %d", got)
	}
	if l := mustList(t, ctx, st, u, 0, 0, true); len(l) != 0 {
		t.Fatalf("List(unreadOnly) after MarkAllRead returned seqs %v", seqsOf(l))
	}
	for _, n := range mustList(t, ctx, st, u, 0, 0, false) {
		if !n.Read {
			t.Fatalf("seq %d unread after MarkAllRead", n.Seq)
		}
	}
	if got := mustMarkAllRead(t, ctx, st, u); got != 0 {
		t.Fatalf("second MarkAllRead = %d, want 0", got)
	}

	mustAppend(t, ctx, w, notifs(u, "b", 2))
	if got := mustUnread(t, ctx, st, u); got != 2 {
		t.Fatalf("UnreadCount after appending 2 = %d, want 2", got)
	}
	wantSeqs(t, "List(unreadOnly)", mustList(t, ctx, st, u, 0, 0, true), []uint64{5, 6})
	if got := mustMarkRead(t, ctx, st, u, 6); got != 1 {
		t.Fatalf("MarkRead(6) = %d, want 1", got)
	}
}

func (s *suite) unreadPerUser(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u1, u2 := s.user("pu1"), s.user("pu2")
	mustAppend(t, ctx, w, append(notifs(u1, "x", 3), notifs(u2, "y", 3)...))
	if got := mustMarkRead(t, ctx, st, u1, 1, 2); got != 1 {
		t.Fatalf("MarkRead(u1, 1, 2) = %d, want 1", got)
	}
	if got := mustUnread(t, ctx, st, u2); got != 3 {
		t.Fatalf("UnreadCount(u2) = %d after marking u1's seqs, want 3", got)
	}
	if got := mustMarkAllRead(t, ctx, st, u2); got != 0 {
		t.Fatalf("MarkAllRead(u2) = %d", got)
	}
	if got := mustUnread(t, ctx, st, u1); got != 1 {
		t.Fatalf("UnreadCount(u1) = %d after MarkAllRead(u2), want 1", got)
	}
	wantSeqs(t, "List(u1, unreadOnly)", mustList(t, ctx, st, u1, 0, 0, true), []uint64{3})
}

func (s *suite) unreadUnknownUser(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("ghost")
	if got := mustUnread(t, ctx, st, u); got != 0 {
		t.Fatalf("UnreadCount(unknown) = %d", got)
	}
	if got := mustMarkRead(t, ctx, st, u, 1, 2); got != 0 {
		t.Fatalf("MarkRead(unknown) = %d", got)
	}
	if got := mustMarkAllRead(t, ctx, st, u); got != 0 {
		t.Fatalf("MarkAllRead(unknown) = %d", got)
	}
	if got := mustUnread(t, ctx, st, u); got != 0 {
		t.Fatalf("UnreadCount(unknown) after marks = %d", got)
	}
	// Marking must not have created state that disturbs a later first append.
	r := mustAppend(t, ctx, w, []herald.Notification{notif(u, "first")})[0]
	if r.Notification.Seq != 1 || mustUnread(t, ctx, st, u) != 1 {
		t.Fatalf("first append after marks: seq %d, unread %d; want 1, 1", r.Notification.Seq, mustUnread(t, ctx, st, u))
	}
}
