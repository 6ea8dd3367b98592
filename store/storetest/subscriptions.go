package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heraldhq/herald/store"
)

// topic returns a topic unique to this run, valid for herald.ValidateTopic.
func (s *suite) topic(name string) string {
	return fmt.Sprintf("tp-%s-%d-%s", s.run, s.n.Add(1), name)
}

// subsBase is a fixed SubscribedAt with a sub-microsecond part and a
// non-UTC location: stores keep microseconds and return UTC.
var subsBase = time.Date(2026, 11, 22, 11, 0, 0, 123456789, time.FixedZone("UTC+2", 2*3600))

// subsAt is subsBase plus i seconds.
func subsAt(i int) time.Time { return subsBase.Add(time.Duration(i) * time.Second) }

// stored is how a store returns at: microseconds, UTC.
func stored(at time.Time) time.Time { return at.Truncate(time.Microsecond).UTC() }

func mustSubscribe(t *testing.T, ctx context.Context, st store.Store, userID, topic string, at time.Time) bool {
	t.Helper()
	created, err := st.Subscribe(ctx, userID, topic, at)
	if err != nil {
		t.Fatalf("Subscribe(%s, %s): %v", userID, topic, err)
	}
	return created
}

func mustUnsubscribe(t *testing.T, ctx context.Context, st store.Store, userID, topic string) bool {
	t.Helper()
	removed, err := st.Unsubscribe(ctx, userID, topic)
	if err != nil {
		t.Fatalf("Unsubscribe(%s, %s): %v", userID, topic, err)
	}
	return removed
}

func mustTopics(t *testing.T, ctx context.Context, st store.Store, userID string) []store.Subscription {
	t.Helper()
	l, err := st.Topics(ctx, userID)
	if err != nil {
		t.Fatalf("Topics(%s): %v", userID, err)
	}
	if l == nil {
		t.Fatalf("Topics(%s) returned nil", userID)
	}
	return l
}

func mustMembers(t *testing.T, ctx context.Context, st store.Store, topic, after string, limit int) []store.Subscription {
	t.Helper()
	l, err := st.Members(ctx, topic, after, limit)
	if err != nil {
		t.Fatalf("Members(%s, after %q, %d): %v", topic, after, limit, err)
	}
	if l == nil {
		t.Fatalf("Members(%s, after %q, %d) returned nil", topic, after, limit)
	}
	if len(l) > limit {
		t.Fatalf("Members(limit %d) returned %d members", limit, len(l))
	}
	return l
}

// allMembers pages through topic 1,000 at a time.
func allMembers(t *testing.T, ctx context.Context, st store.Store, topic string) []store.Subscription {
	t.Helper()
	var out []store.Subscription
	after := ""
	for page := 0; ; page++ {
		if page > 100 {
			t.Fatalf("Members(%s) paging did not end after %d pages", topic, page)
		}
		l := mustMembers(t, ctx, st, topic, after, 1000)
		if len(l) == 0 {
			return out
		}
		out = append(out, l...)
		after = l[len(l)-1].UserID
	}
}

// wantCount checks MemberCount: exact unless the suite runs with
// Options.ApproxMemberCount, which allows an error of 1 + want/10.
func (s *suite) wantCount(t *testing.T, ctx context.Context, st store.Store, topic string, want int64) {
	t.Helper()
	got, err := st.MemberCount(ctx, topic)
	if err != nil {
		t.Fatalf("MemberCount(%s): %v", topic, err)
	}
	if got == want {
		return
	}
	if s.opts.ApproxMemberCount && got >= 0 && abs(got-want) <= 1+want/10 {
		return
	}
	t.Fatalf("MemberCount(%s) = %d, want %d (approximate allowed: %v)", topic, got, want, s.opts.ApproxMemberCount)
}

func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

func fmtSubs(l []store.Subscription) string {
	parts := make([]string, len(l))
	for i, sub := range l {
		parts[i] = fmt.Sprintf("(%s, %s, %s)", sub.UserID, sub.Topic, sub.SubscribedAt.Format(time.RFC3339Nano))
	}
	return "[" + strings.Join(parts, " ") + "]"
}

// wantSubs compares subscriptions as a store returns them: equal
// instants, in UTC, in order.
func wantSubs(t *testing.T, what string, got, want []store.Subscription) {
	t.Helper()
	ok := len(got) == len(want)
	for i := 0; ok && i < len(got); i++ {
		g, w := got[i], want[i]
		ok = g.UserID == w.UserID && g.Topic == w.Topic && g.SubscribedAt.Equal(w.SubscribedAt) && g.SubscribedAt.Location() == time.UTC
	}
	if !ok {
		t.Fatalf("%s:\n got  %d %s\n want %d %s", what, len(got), fmtSubs(got), len(want), fmtSubs(want))
	}
}

// subscribeAll subscribes every subscription of subs (all expected new)
// from a few goroutines, so that setting up thousands of memberships on a
// networked backend stays quick.
func subscribeAll(t *testing.T, ctx context.Context, st store.Store, subs []store.Subscription) {
	t.Helper()
	const workers = 4
	next := make(chan store.Subscription)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for sub := range next {
				created, err := st.Subscribe(ctx, sub.UserID, sub.Topic, sub.SubscribedAt)
				if err != nil || !created {
					t.Errorf("Subscribe(%s, %s) = %v, %v; want true, nil", sub.UserID, sub.Topic, created, err)
				}
			}
		})
	}
	for _, sub := range subs {
		next <- sub
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// subsSubscribe: a new membership reports true and keeps at in
// microseconds, UTC; subscribing again reports false and keeps the first
// SubscribedAt; a zero at means now.
func (s *suite) subsSubscribe(t *testing.T) {
	st, ctx := s.open(t)
	u, topic := s.user("sub"), s.topic("sub")
	if !mustSubscribe(t, ctx, st, u, topic, subsAt(0)) {
		t.Fatal("Subscribe (new) = false, want true")
	}
	want := []store.Subscription{{UserID: u, Topic: topic, SubscribedAt: stored(subsAt(0))}}
	wantSubs(t, "Topics after Subscribe", mustTopics(t, ctx, st, u), want)
	wantSubs(t, "Members after Subscribe", mustMembers(t, ctx, st, topic, "", 10), want)

	for _, at := range []time.Time{subsAt(60), subsAt(-60), {}} {
		if mustSubscribe(t, ctx, st, u, topic, at) {
			t.Fatalf("Subscribe again (at %v) = true, want false", at)
		}
	}
	wantSubs(t, "Topics after subscribing again", mustTopics(t, ctx, st, u), want)
	wantSubs(t, "Members after subscribing again", mustMembers(t, ctx, st, topic, "", 10), want)
	s.wantCount(t, ctx, st, topic, 1)

	// A zero at is the time of the call.
	v := s.user("sub-now")
	before := time.Now().Truncate(time.Microsecond)
	if !mustSubscribe(t, ctx, st, v, topic, time.Time{}) {
		t.Fatal("Subscribe (zero at) = false, want true")
	}
	after := time.Now()
	l := mustTopics(t, ctx, st, v)
	if len(l) != 1 || l[0].Topic != topic || l[0].UserID != v {
		t.Fatalf("Topics after Subscribe with a zero at: %s", fmtSubs(l))
	}
	if at := l[0].SubscribedAt; at.Before(before) || at.After(after) || at.Location() != time.UTC {
		t.Fatalf("Subscribe with a zero at: SubscribedAt %v, want a UTC time between %v and %v", at, before, after)
	}
}

// subsUnsubscribe: Unsubscribe reports whether there was a membership;
// afterwards neither Topics nor Members shows it, and subscribing again
// is new, with the new at.
func (s *suite) subsUnsubscribe(t *testing.T) {
	st, ctx := s.open(t)
	u, topic, other := s.user("unsub"), s.topic("unsub"), s.topic("unsub-other")
	if mustUnsubscribe(t, ctx, st, u, topic) {
		t.Fatal("Unsubscribe of a user never subscribed = true")
	}
	mustSubscribe(t, ctx, st, u, topic, subsAt(0))
	if mustUnsubscribe(t, ctx, st, u, other) {
		t.Fatal("Unsubscribe from a topic the user is not in = true")
	}
	if mustUnsubscribe(t, ctx, st, s.user("unsub-stranger"), topic) {
		t.Fatal("Unsubscribe of a non-member = true")
	}
	if !mustUnsubscribe(t, ctx, st, u, topic) {
		t.Fatal("Unsubscribe of a member = false")
	}
	if mustUnsubscribe(t, ctx, st, u, topic) {
		t.Fatal("second Unsubscribe = true")
	}
	wantSubs(t, "Topics after Unsubscribe", mustTopics(t, ctx, st, u), nil)
	wantSubs(t, "Members after Unsubscribe", mustMembers(t, ctx, st, topic, "", 10), nil)
	s.wantCount(t, ctx, st, topic, 0)

	if !mustSubscribe(t, ctx, st, u, topic, subsAt(5)) {
		t.Fatal("Subscribe after Unsubscribe = false, want true")
	}
	want := []store.Subscription{{UserID: u, Topic: topic, SubscribedAt: stored(subsAt(5))}}
	wantSubs(t, "Topics after subscribing back", mustTopics(t, ctx, st, u), want)
	wantSubs(t, "Members after subscribing back", mustMembers(t, ctx, st, topic, "", 10), want)
}

// subsTopicsOrder: Topics are ascending by topic whatever the order of
// subscribing; unknown users and topics give empty, non-nil lists.
func (s *suite) subsTopicsOrder(t *testing.T) {
	st, ctx := s.open(t)
	u := s.user("order")
	base := s.topic("order")
	names := []string{"m", "a", "z", "B", "a.b", "a-", "0", "a:", "Z@x", "b_"}
	var want []store.Subscription
	for i, n := range names {
		topic := base + "-" + n
		mustSubscribe(t, ctx, st, u, topic, subsAt(i))
		want = append(want, store.Subscription{UserID: u, Topic: topic, SubscribedAt: stored(subsAt(i))})
	}
	slices.SortFunc(want, func(a, b store.Subscription) int { return strings.Compare(a.Topic, b.Topic) })
	wantSubs(t, "Topics", mustTopics(t, ctx, st, u), want)

	wantSubs(t, "Topics of an unknown user", mustTopics(t, ctx, st, s.user("order-none")), nil)
	wantSubs(t, "Members of an unknown topic", mustMembers(t, ctx, st, s.topic("order-none"), "", 10), nil)
	s.wantCount(t, ctx, st, s.topic("order-none"), 0)
}

// subsMembersPaging: 2,500 members, paged 1,000 at a time with the last
// user id of a page as the next after, come back each exactly once in
// bytewise order; an after that is no member starts at the next one; a
// limit of 10,000 returns them all.
func (s *suite) subsMembersPaging(t *testing.T) {
	st, ctx := s.open(t)
	topic := s.topic("paging")
	const n = 2500
	subs := make([]store.Subscription, n)
	for i := range subs {
		// s.user numbers ids in decimal, so bytewise order differs from
		// the order of creation ("-10-" sorts before "-9-").
		subs[i] = store.Subscription{UserID: s.user(fmt.Sprintf("m%d", i)), Topic: topic, SubscribedAt: subsAt(i % 7)}
	}
	rand.Shuffle(len(subs), func(i, j int) { subs[i], subs[j] = subs[j], subs[i] })
	subscribeAll(t, ctx, st, subs)
	want := make([]store.Subscription, n)
	for i, sub := range subs {
		sub.SubscribedAt = stored(sub.SubscribedAt)
		want[i] = sub
	}
	slices.SortFunc(want, func(a, b store.Subscription) int { return strings.Compare(a.UserID, b.UserID) })

	var got []store.Subscription
	after := ""
	for page := 0; ; page++ {
		if page > 3 {
			t.Fatalf("paging did not end after %d pages (%d members)", page, len(got))
		}
		l := mustMembers(t, ctx, st, topic, after, 1000)
		if len(l) == 0 {
			break
		}
		if page < 2 && len(l) != 1000 {
			t.Fatalf("page %d has %d members, want 1000", page, len(l))
		}
		got = append(got, l...)
		after = l[len(l)-1].UserID
	}
	wantSubs(t, "2,500 members paged by 1,000", got, want)
	wantSubs(t, "limit 10,000", mustMembers(t, ctx, st, topic, "", 10_000), want)
	s.wantCount(t, ctx, st, topic, n)

	// after is strict, and need not be a member.
	for _, i := range []int{0, 999, 1000, 2498} {
		wantSubs(t, fmt.Sprintf("after member %d", i), mustMembers(t, ctx, st, topic, want[i].UserID, 3), want[i+1:min(i+4, n)])
		between := want[i].UserID + "\x00"
		wantSubs(t, fmt.Sprintf("after a key just past member %d", i), mustMembers(t, ctx, st, topic, between, 2), want[i+1:min(i+3, n)])
	}
	if l := mustMembers(t, ctx, st, topic, want[n-1].UserID, 10); len(l) != 0 {
		t.Fatalf("after the last member: %s", fmtSubs(l))
	}
	for limit := 1; limit <= 3; limit++ {
		wantSubs(t, fmt.Sprintf("limit %d", limit), mustMembers(t, ctx, st, topic, "", limit), want[:limit])
	}
}

// subsValidation: bad topics, user ids and limits are refused with a
// *herald.ValidationError naming the field, and store nothing.
func (s *suite) subsValidation(t *testing.T) {
	st, ctx := s.open(t)
	u, topic := s.user("subs-invalid"), s.topic("subs-invalid")
	for _, bad := range []string{"", strings.Repeat("t", 129), "a/b", "has space", "é"} {
		what := fmt.Sprintf(" of topic %q", bad)
		_, err := st.Subscribe(ctx, u, bad, subsAt(0))
		wantInvalid(t, "Subscribe"+what, err, "topic")
		_, err = st.Unsubscribe(ctx, u, bad)
		wantInvalid(t, "Unsubscribe"+what, err, "topic")
		_, err = st.Members(ctx, bad, "", 10)
		wantInvalid(t, "Members"+what, err, "topic")
		_, err = st.MemberCount(ctx, bad)
		wantInvalid(t, "MemberCount"+what, err, "topic")
	}
	for _, bad := range []string{"", tooLongUserID} {
		what := fmt.Sprintf(" of a %d-byte user id", len(bad))
		_, err := st.Subscribe(ctx, bad, topic, subsAt(0))
		wantInvalid(t, "Subscribe"+what, err, "user_id")
		_, err = st.Unsubscribe(ctx, bad, topic)
		wantInvalid(t, "Unsubscribe"+what, err, "user_id")
		_, err = st.Topics(ctx, bad)
		wantInvalid(t, "Topics"+what, err, "user_id")
	}
	for _, limit := range []int{0, -1, 10_001} {
		_, err := st.Members(ctx, topic, "", limit)
		wantInvalid(t, fmt.Sprintf("Members with limit %d", limit), err, "limit")
	}
	wantSubs(t, "Topics after refused calls", mustTopics(t, ctx, st, u), nil)
	wantSubs(t, "Members after refused calls", mustMembers(t, ctx, st, topic, "", 10), nil)
	// A topic of exactly 128 bytes is fine.
	long := topic + "-" + strings.Repeat("x", 128-len(topic)-1)
	if !mustSubscribe(t, ctx, st, u, long, subsAt(0)) {
		t.Fatal("Subscribe to a 128-byte topic = false")
	}
}

// subsMaxTopics: a user at MaxTopicsPerUser topics cannot subscribe to
// another (a *herald.ValidationError on "topic", nothing stored), may
// subscribe again to one it has, and fits one more after an Unsubscribe.
func (s *suite) subsMaxTopics(t *testing.T) {
	st, ctx := s.open(t)
	u := s.user("max-topics")
	base := s.topic("max")
	subs := make([]store.Subscription, store.MaxTopicsPerUser)
	for i := range subs {
		subs[i] = store.Subscription{UserID: u, Topic: fmt.Sprintf("%s-%04d", base, i), SubscribedAt: subsAt(0)}
	}
	subscribeAll(t, ctx, st, subs)
	if l := mustTopics(t, ctx, st, u); len(l) != store.MaxTopicsPerUser {
		t.Fatalf("Topics after %d subscribes: %d", store.MaxTopicsPerUser, len(l))
	}

	extra := base + "-extra"
	_, err := st.Subscribe(ctx, u, extra, subsAt(1))
	wantInvalid(t, "Subscribe to topic MaxTopicsPerUser+1", err, "topic")
	if l := mustMembers(t, ctx, st, extra, "", 10); len(l) != 0 {
		t.Fatalf("a refused Subscribe stored a member: %s", fmtSubs(l))
	}
	s.wantCount(t, ctx, st, extra, 0)
	if l := mustTopics(t, ctx, st, u); len(l) != store.MaxTopicsPerUser || slices.ContainsFunc(l, func(sub store.Subscription) bool { return sub.Topic == extra }) {
		t.Fatalf("a refused Subscribe changed Topics: %d topics", len(l))
	}
	// Another user is not limited by this one's topics.
	if !mustSubscribe(t, ctx, st, s.user("max-other"), extra, subsAt(1)) {
		t.Fatal("another user's Subscribe = false")
	}

	// At the cap, subscribing again to a topic the user has is fine.
	if mustSubscribe(t, ctx, st, u, subs[7].Topic, subsAt(2)) {
		t.Fatal("Subscribe again at the cap = true, want false")
	}
	// After an Unsubscribe one more fits, and then no more.
	if !mustUnsubscribe(t, ctx, st, u, subs[3].Topic) {
		t.Fatal("Unsubscribe at the cap = false")
	}
	if !mustSubscribe(t, ctx, st, u, extra, subsAt(3)) {
		t.Fatal("Subscribe after an Unsubscribe at the cap = false")
	}
	_, err = st.Subscribe(ctx, u, subs[3].Topic, subsAt(4))
	wantInvalid(t, "Subscribe at the cap again", err, "topic")
	if l := mustTopics(t, ctx, st, u); len(l) != store.MaxTopicsPerUser {
		t.Fatalf("Topics at the end: %d, want %d", len(l), store.MaxTopicsPerUser)
	}
}

// subsMemberCount follows adds, repeats, removes and re-adds.
func (s *suite) subsMemberCount(t *testing.T) {
	st, ctx := s.open(t)
	topic, other := s.topic("count"), s.topic("count-other")
	a, b, c := s.user("count-a"), s.user("count-b"), s.user("count-c")
	s.wantCount(t, ctx, st, topic, 0)
	for _, u := range []string{a, b, c} {
		mustSubscribe(t, ctx, st, u, topic, subsAt(0))
	}
	s.wantCount(t, ctx, st, topic, 3)
	mustSubscribe(t, ctx, st, b, topic, subsAt(1))
	s.wantCount(t, ctx, st, topic, 3)
	mustUnsubscribe(t, ctx, st, b, topic)
	s.wantCount(t, ctx, st, topic, 2)
	mustUnsubscribe(t, ctx, st, b, topic)
	s.wantCount(t, ctx, st, topic, 2)
	mustSubscribe(t, ctx, st, b, topic, subsAt(2))
	s.wantCount(t, ctx, st, topic, 3)
	for _, u := range []string{a, b, c} {
		mustUnsubscribe(t, ctx, st, u, topic)
	}
	s.wantCount(t, ctx, st, topic, 0)
	s.wantCount(t, ctx, st, other, 0)
}

// subsTopicsIndependent: memberships of one topic do not show in another,
// and leaving one topic keeps the user's other memberships.
func (s *suite) subsTopicsIndependent(t *testing.T) {
	st, ctx := s.open(t)
	ta, tb := s.topic("ind-a"), s.topic("ind-b")
	u1, u2 := s.user("ind-1"), s.user("ind-2")
	mustSubscribe(t, ctx, st, u1, ta, subsAt(1))
	mustSubscribe(t, ctx, st, u1, tb, subsAt(2))
	mustSubscribe(t, ctx, st, u2, tb, subsAt(3))
	a1 := store.Subscription{UserID: u1, Topic: ta, SubscribedAt: stored(subsAt(1))}
	b1 := store.Subscription{UserID: u1, Topic: tb, SubscribedAt: stored(subsAt(2))}
	b2 := store.Subscription{UserID: u2, Topic: tb, SubscribedAt: stored(subsAt(3))}
	wantSubs(t, "Members(a)", mustMembers(t, ctx, st, ta, "", 10), []store.Subscription{a1})
	wantSubs(t, "Members(b)", mustMembers(t, ctx, st, tb, "", 10), []store.Subscription{b1, b2})
	wantSubs(t, "Topics(u1)", mustTopics(t, ctx, st, u1), []store.Subscription{a1, b1})
	wantSubs(t, "Topics(u2)", mustTopics(t, ctx, st, u2), []store.Subscription{b2})
	s.wantCount(t, ctx, st, ta, 1)
	s.wantCount(t, ctx, st, tb, 2)

	mustUnsubscribe(t, ctx, st, u1, ta)
	wantSubs(t, "Members(a) after u1 left a", mustMembers(t, ctx, st, ta, "", 10), nil)
	wantSubs(t, "Members(b) after u1 left a", mustMembers(t, ctx, st, tb, "", 10), []store.Subscription{b1, b2})
	wantSubs(t, "Topics(u1) after leaving a", mustTopics(t, ctx, st, u1), []store.Subscription{b1})
	s.wantCount(t, ctx, st, ta, 0)
	s.wantCount(t, ctx, st, tb, 2)
}

// subsConcurrent: many users subscribe to one topic at once, each twice
// from two goroutines (exactly one of the two is new), and to a topic of
// their own; then half of them leave concurrently. Members, MemberCount and
// Topics agree with what happened.
func (s *suite) subsConcurrent(t *testing.T) {
	st, ctx := s.open(t)
	topic := s.topic("conc")
	const goroutines, perG = 8, 25
	users := make([]string, goroutines*perG)
	own := make([]string, len(users))
	for i := range users {
		users[i], own[i] = s.user(fmt.Sprintf("conc%d", i)), s.topic(fmt.Sprintf("own%d", i))
	}
	var created [goroutines * perG][2]bool
	var wg sync.WaitGroup
	for g := range goroutines {
		for k := range 2 {
			wg.Go(func() {
				// The two goroutines of a pair share users, in opposite orders.
				for j := range perG {
					if k == 1 {
						j = perG - 1 - j
					}
					i := g*perG + j
					ok, err := st.Subscribe(ctx, users[i], topic, subsAt(k))
					if err != nil {
						t.Errorf("Subscribe(%s): %v", users[i], err)
						return
					}
					created[i][k] = ok
					if k == 0 {
						if ok, err := st.Subscribe(ctx, users[i], own[i], subsAt(0)); err != nil || !ok {
							t.Errorf("Subscribe(%s, own topic) = %v, %v", users[i], ok, err)
							return
						}
					}
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, c := range created {
		if c[0] == c[1] {
			t.Fatalf("user %d: the two concurrent Subscribes reported created %v and %v, want exactly one true", i, c[0], c[1])
		}
	}
	got := allMembers(t, ctx, st, topic)
	want := slices.Sorted(slices.Values(users))
	if len(got) != len(want) {
		t.Fatalf("Members: %d, want %d", len(got), len(want))
	}
	for i := range got {
		k := 0
		if created[slices.Index(users, got[i].UserID)][1] {
			k = 1
		}
		if got[i].UserID != want[i] || !got[i].SubscribedAt.Equal(stored(subsAt(k))) {
			t.Fatalf("member %d: %s at %v, want %s at %v (the Subscribe that created it)", i, got[i].UserID, got[i].SubscribedAt, want[i], stored(subsAt(k)))
		}
	}
	s.wantCount(t, ctx, st, topic, int64(len(users)))

	for g := range goroutines {
		wg.Go(func() {
			for j := range perG {
				if j%2 == 0 {
					i := g*perG + j
					if ok, err := st.Unsubscribe(ctx, users[i], topic); err != nil || !ok {
						t.Errorf("Unsubscribe(%s) = %v, %v", users[i], ok, err)
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
	var left []string
	for i, u := range users {
		if i%perG%2 == 1 {
			left = append(left, u)
		}
		l := mustTopics(t, ctx, st, u)
		wantN := 1
		if i%perG%2 == 1 {
			wantN = 2
		}
		if len(l) != wantN {
			t.Fatalf("Topics(%s): %s, want %d topics", u, fmtSubs(l), wantN)
		}
	}
	slices.Sort(left)
	got = allMembers(t, ctx, st, topic)
	if len(got) != len(left) {
		t.Fatalf("Members after the unsubscribes: %d, want %d", len(got), len(left))
	}
	for i := range got {
		if got[i].UserID != left[i] {
			t.Fatalf("member %d after the unsubscribes: %s, want %s", i, got[i].UserID, left[i])
		}
	}
	s.wantCount(t, ctx, st, topic, int64(len(left)))
}
