package storetest

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// feedEvent is a broadcast to topic with a CreatedAt that has a
// sub-microsecond part and a non-UTC location (stores keep microseconds
// and return UTC).
func feedEvent(topic, id string, i int) herald.Event {
	return herald.Event{
		ID:        id,
		Audience:  topic,
		Type:      "feed.test",
		Priority:  herald.PriorityHigh,
		Title:     fmt.Sprintf("broadcast %d", i),
		Body:      "to everyone",
		Data:      json.RawMessage(fmt.Sprintf(`{"i":%d,"s":"x"}`, i)),
		CreatedAt: subsAt(i),
		TTL:       3600,
	}
}

func mustPutFeed(t *testing.T, ctx context.Context, st store.Store, ev herald.Event) (int64, bool) {
	t.Helper()
	pos, created, err := st.PutFeedItem(ctx, ev)
	if err != nil {
		t.Fatalf("PutFeedItem(%s, %s): %v", ev.Audience, ev.ID, err)
	}
	return pos, created
}

func mustFeedItems(t *testing.T, ctx context.Context, st store.Store, topic string, after int64, limit int) []store.FeedItem {
	t.Helper()
	l, err := st.FeedItems(ctx, topic, after, limit)
	if err != nil {
		t.Fatalf("FeedItems(%s, after %d, %d): %v", topic, after, limit, err)
	}
	if l == nil {
		t.Fatalf("FeedItems(%s, after %d, %d) returned nil", topic, after, limit)
	}
	if len(l) > limit {
		t.Fatalf("FeedItems(limit %d) returned %d items", limit, len(l))
	}
	for i, it := range l {
		if it.Topic != topic || it.Pos <= after || (i > 0 && it.Pos <= l[i-1].Pos) {
			t.Fatalf("FeedItems(%s, after %d): item %d is (%s, %d), want topic %s, ascending positions after %d", topic, after, i, it.Topic, it.Pos, topic, after)
		}
	}
	return l
}

func mustFeedHead(t *testing.T, ctx context.Context, st store.Store, topic string) int64 {
	t.Helper()
	h, err := st.FeedHead(ctx, topic)
	if err != nil {
		t.Fatalf("FeedHead(%s): %v", topic, err)
	}
	return h
}

func mustFeedCursors(t *testing.T, ctx context.Context, st store.Store, userID string) map[string]int64 {
	t.Helper()
	c, err := st.FeedCursors(ctx, userID)
	if err != nil {
		t.Fatalf("FeedCursors(%s): %v", userID, err)
	}
	if c == nil {
		t.Fatalf("FeedCursors(%s) returned nil", userID)
	}
	return c
}

func mustSetFeedCursor(t *testing.T, ctx context.Context, st store.Store, userID, topic string, pos int64) {
	t.Helper()
	if err := st.SetFeedCursor(ctx, userID, topic, pos); err != nil {
		t.Fatalf("SetFeedCursor(%s, %s, %d): %v", userID, topic, pos, err)
	}
}

func posOf(l []store.FeedItem) []int64 {
	out := make([]int64, len(l))
	for i, it := range l {
		out[i] = it.Pos
	}
	return out
}

// putFeed puts n events to topic and returns their positions, checking
// that the first is 1 and they ascend.
func (s *suite) putFeed(t *testing.T, ctx context.Context, st store.Store, topic string, n int) ([]int64, []herald.Event) {
	t.Helper()
	var (
		pos []int64
		evs []herald.Event
	)
	for i := range n {
		ev := feedEvent(topic, fmt.Sprintf("%s-ev-%d", topic, i), i)
		p, created := mustPutFeed(t, ctx, st, ev)
		if !created {
			t.Fatalf("PutFeedItem(%s) of a new event: created=false (pos %d)", ev.ID, p)
		}
		if i == 0 && p != 1 {
			t.Fatalf("first PutFeedItem of a new topic: pos %d, want 1", p)
		}
		if i > 0 && p <= pos[i-1] {
			t.Fatalf("PutFeedItem %d: pos %d after %d, want ascending", i, p, pos[i-1])
		}
		pos = append(pos, p)
		evs = append(evs, ev)
	}
	return pos, evs
}

// feedPositions: positions from 1, ascending; FeedHead follows; an empty
// feed has head 0 and no items.
func (s *suite) feedPositions(t *testing.T) {
	st, ctx := s.open(t)
	topic := s.topic("feed-pos")
	if h := mustFeedHead(t, ctx, st, topic); h != 0 {
		t.Fatalf("FeedHead of an empty feed = %d, want 0", h)
	}
	if l := mustFeedItems(t, ctx, st, topic, 0, 10); len(l) != 0 {
		t.Fatalf("FeedItems of an empty feed = %v", posOf(l))
	}
	pos, _ := s.putFeed(t, ctx, st, topic, 5)
	if h := mustFeedHead(t, ctx, st, topic); h != pos[4] {
		t.Fatalf("FeedHead = %d, want %d", h, pos[4])
	}
	if got := posOf(mustFeedItems(t, ctx, st, topic, 0, store.MaxFeedPage)); !slices.Equal(got, pos) {
		t.Fatalf("FeedItems = %v, want %v", got, pos)
	}
}

// feedIdempotent: putting an event id again returns its position with
// created=false and adds nothing, even with other content.
func (s *suite) feedIdempotent(t *testing.T) {
	st, ctx := s.open(t)
	topic := s.topic("feed-idem")
	pos, evs := s.putFeed(t, ctx, st, topic, 3)
	again := evs[1]
	again.Title = "changed"
	p, created := mustPutFeed(t, ctx, st, again)
	if created || p != pos[1] {
		t.Fatalf("PutFeedItem again: (%d, created %v), want (%d, false)", p, created, pos[1])
	}
	l := mustFeedItems(t, ctx, st, topic, 0, 10)
	if got := posOf(l); !slices.Equal(got, pos) {
		t.Fatalf("FeedItems after a repeated put = %v, want %v", got, pos)
	}
	if l[1].Event.Title != evs[1].Title {
		t.Fatalf("repeated put changed the stored title to %q", l[1].Event.Title)
	}
	if h := mustFeedHead(t, ctx, st, topic); h != pos[2] {
		t.Fatalf("FeedHead after a repeated put = %d, want %d", h, pos[2])
	}
}

// feedValidation: bad events, topics, user ids, limits and positions are
// refused with a *herald.ValidationError naming the field.
func (s *suite) feedValidation(t *testing.T) {
	st, ctx := s.open(t)
	topic, u := s.topic("feed-invalid"), s.user("feed-invalid")
	ev := feedEvent(topic, "ev-1", 1)

	noAud := ev
	noAud.Audience = ""
	noAud.UserID = u
	_, _, err := st.PutFeedItem(ctx, noAud)
	wantInvalid(t, "PutFeedItem without audience", err, "audience")
	for _, bad := range []string{strings.Repeat("t", 129), "a/b", "has space", "é"} {
		e := ev
		e.Audience = bad
		_, _, err := st.PutFeedItem(ctx, e)
		wantInvalid(t, fmt.Sprintf("PutFeedItem to audience %q", bad), err, "audience")
		_, err = st.FeedItems(ctx, bad, 0, 10)
		wantInvalid(t, fmt.Sprintf("FeedItems of topic %q", bad), err, "topic")
		_, err = st.FeedHead(ctx, bad)
		wantInvalid(t, fmt.Sprintf("FeedHead of topic %q", bad), err, "topic")
		err = st.SetFeedCursor(ctx, u, bad, 1)
		wantInvalid(t, fmt.Sprintf("SetFeedCursor of topic %q", bad), err, "topic")
	}
	noID := ev
	noID.ID = ""
	_, _, err = st.PutFeedItem(ctx, noID)
	wantInvalid(t, "PutFeedItem without id", err, "id")
	badID := ev
	badID.ID = "\xff\xfe"
	_, _, err = st.PutFeedItem(ctx, badID)
	wantInvalid(t, "PutFeedItem with a non-UTF-8 id", err, "id")
	big := ev
	big.Body = strings.Repeat("b", herald.MaxEventBytes)
	_, _, err = st.PutFeedItem(ctx, big)
	wantInvalid(t, "PutFeedItem of an event over 64 KiB", err, "event")
	for _, bad := range []string{"", tooLongUserID} {
		_, err := st.FeedCursors(ctx, bad)
		wantInvalid(t, fmt.Sprintf("FeedCursors of a %d-byte user id", len(bad)), err, "user_id")
		err = st.SetFeedCursor(ctx, bad, topic, 1)
		wantInvalid(t, fmt.Sprintf("SetFeedCursor of a %d-byte user id", len(bad)), err, "user_id")
	}
	for _, limit := range []int{0, -1, store.MaxFeedPage + 1} {
		_, err := st.FeedItems(ctx, topic, 0, limit)
		wantInvalid(t, fmt.Sprintf("FeedItems with limit %d", limit), err, "limit")
	}
	if h := mustFeedHead(t, ctx, st, topic); h != 0 {
		t.Fatalf("refused puts stored something: FeedHead = %d", h)
	}
}

// feedPaging: FeedItems pages with after and limit; a limit of
// MaxFeedPage is accepted.
func (s *suite) feedPaging(t *testing.T) {
	st, ctx := s.open(t)
	topic := s.topic("feed-page")
	pos, _ := s.putFeed(t, ctx, st, topic, 7)
	for limit := 1; limit <= 3; limit++ {
		var got []int64
		after := int64(0)
		for page := 0; ; page++ {
			if page > 10 {
				t.Fatalf("limit %d: paging did not end", limit)
			}
			l := mustFeedItems(t, ctx, st, topic, after, limit)
			if len(l) == 0 {
				break
			}
			got = append(got, posOf(l)...)
			after = l[len(l)-1].Pos
		}
		if !slices.Equal(got, pos) {
			t.Fatalf("pages of %d = %v, want %v", limit, got, pos)
		}
	}
	if got := posOf(mustFeedItems(t, ctx, st, topic, pos[2], 2)); !slices.Equal(got, pos[3:5]) {
		t.Fatalf("FeedItems(after %d, 2) = %v, want %v", pos[2], got, pos[3:5])
	}
	if l := mustFeedItems(t, ctx, st, topic, pos[6], store.MaxFeedPage); len(l) != 0 {
		t.Fatalf("FeedItems after the head = %v", posOf(l))
	}
}

// feedRoundTrip: the stored event is the one put, with CreatedAt in UTC
// at microsecond precision.
func (s *suite) feedRoundTrip(t *testing.T) {
	st, ctx := s.open(t)
	topic := s.topic("feed-rt")
	_, evs := s.putFeed(t, ctx, st, topic, 2)
	l := mustFeedItems(t, ctx, st, topic, 0, 10)
	if len(l) != 2 {
		t.Fatalf("FeedItems = %d items, want 2", len(l))
	}
	for i, it := range l {
		g, w := it.Event, evs[i]
		if g.ID != w.ID || g.Audience != topic || g.UserID != "" || g.Type != w.Type || g.Priority != w.Priority ||
			g.Title != w.Title || g.Body != w.Body || string(g.Data) != string(w.Data) || g.TTL != w.TTL {
			t.Errorf("item %d: got %+v, want %+v", i, g, w)
		}
		if !g.CreatedAt.Equal(stored(w.CreatedAt)) || g.CreatedAt.Location() != time.UTC {
			t.Errorf("item %d: CreatedAt %v, want %v in UTC", i, g.CreatedAt, stored(w.CreatedAt))
		}
	}
}

// feedTopicsIndependent: two topics' positions, heads and items are
// separate.
func (s *suite) feedTopicsIndependent(t *testing.T) {
	st, ctx := s.open(t)
	a, b := s.topic("feed-a"), s.topic("feed-b")
	pa, _ := s.putFeed(t, ctx, st, a, 3)
	pb, _ := s.putFeed(t, ctx, st, b, 1)
	// The same event id in another topic is another item.
	p, created := mustPutFeed(t, ctx, st, feedEvent(b, a+"-ev-0", 9))
	if !created || p <= pb[0] {
		t.Fatalf("an event id of topic a put to topic b: (%d, created %v), want a new item after %d", p, created, pb[0])
	}
	if h := mustFeedHead(t, ctx, st, a); h != pa[2] {
		t.Fatalf("FeedHead(a) = %d, want %d", h, pa[2])
	}
	if h := mustFeedHead(t, ctx, st, b); h != p {
		t.Fatalf("FeedHead(b) = %d, want %d", h, p)
	}
	if got := posOf(mustFeedItems(t, ctx, st, a, 0, 10)); !slices.Equal(got, pa) {
		t.Fatalf("FeedItems(a) = %v, want %v", got, pa)
	}
	for _, it := range mustFeedItems(t, ctx, st, b, 0, 10) {
		if it.Event.Audience != b {
			t.Fatalf("FeedItems(b) holds an event of %q", it.Event.Audience)
		}
	}
}

// feedCursors: cursors are per (user, topic), only move forward, and
// FeedCursors is never nil.
func (s *suite) feedCursors(t *testing.T) {
	st, ctx := s.open(t)
	u, v := s.user("feed-cur-u"), s.user("feed-cur-v")
	a, b := s.topic("feed-cur-a"), s.topic("feed-cur-b")
	if c := mustFeedCursors(t, ctx, st, u); len(c) != 0 {
		t.Fatalf("FeedCursors of a new user = %v", c)
	}
	mustSetFeedCursor(t, ctx, st, u, a, 5)
	mustSetFeedCursor(t, ctx, st, u, b, 2)
	mustSetFeedCursor(t, ctx, st, v, a, 1)
	mustSetFeedCursor(t, ctx, st, u, a, 3) // back: ignored
	mustSetFeedCursor(t, ctx, st, u, b, 2) // same: no change
	mustSetFeedCursor(t, ctx, st, u, b, 7)
	want := map[string]int64{a: 5, b: 7}
	if got := mustFeedCursors(t, ctx, st, u); !mapsEqual(got, want) {
		t.Fatalf("FeedCursors(u) = %v, want %v", got, want)
	}
	if got := mustFeedCursors(t, ctx, st, v); !mapsEqual(got, map[string]int64{a: 1}) {
		t.Fatalf("FeedCursors(v) = %v, want {%s: 1}", got, a)
	}
	mustSetFeedCursor(t, ctx, st, v, b, 0)
	if got := mustFeedCursors(t, ctx, st, v); !mapsEqual(got, map[string]int64{a: 1, b: 0}) {
		t.Fatalf("FeedCursors(v) after a cursor at 0 = %v", got)
	}
	if err := st.SetFeedCursor(ctx, u, a, -1); err == nil {
		t.Fatal("SetFeedCursor at -1: no error")
	}
}

func mapsEqual(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// feedConcurrent: concurrent puts of distinct events to one topic get
// distinct positions, all listed; concurrent cursor writes keep the
// highest.
func (s *suite) feedConcurrent(t *testing.T) {
	st, ctx := s.open(t)
	topic, u := s.topic("feed-conc"), s.user("feed-conc")
	const workers, each = 4, 5
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		all  []int64
		errs []error
	)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				pos, created, err := st.PutFeedItem(ctx, feedEvent(topic, fmt.Sprintf("w%d-%d", w, i), i))
				if err == nil {
					err = st.SetFeedCursor(ctx, u, topic, pos)
				}
				mu.Lock()
				switch {
				case err != nil:
					errs = append(errs, err)
				case !created:
					errs = append(errs, fmt.Errorf("w%d-%d: created=false", w, i))
				default:
					all = append(all, pos)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		t.Error(err)
	}
	slices.Sort(all)
	if len(slices.Compact(slices.Clone(all))) != len(all) {
		t.Fatalf("positions repeated: %v", all)
	}
	if got := posOf(mustFeedItems(t, ctx, st, topic, 0, store.MaxFeedPage)); !slices.Equal(got, all) {
		t.Fatalf("FeedItems = %v, want %v", got, all)
	}
	if len(all) > 0 {
		if h := mustFeedHead(t, ctx, st, topic); h != all[len(all)-1] {
			t.Fatalf("FeedHead = %d, want %d", h, all[len(all)-1])
		}
		if c := mustFeedCursors(t, ctx, st, u); c[topic] != all[len(all)-1] {
			t.Fatalf("cursor after concurrent writes = %d, want the highest %d", c[topic], all[len(all)-1])
		}
	}
}
