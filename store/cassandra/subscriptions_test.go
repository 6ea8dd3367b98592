//go:build integration

package cassandra

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/heraldhq/herald/store"
)

// lostLWT makes the next subscription transactions report a timeout:
// before executing them (they did not happen) or after (they did).
type lostLWT struct {
	mu            sync.Mutex
	before, after int
}

func (l *lostLWT) install(s *Store) {
	s.lwtFn = func(ctx context.Context, q *gocql.Query, prev map[string]any) (bool, error) {
		l.mu.Lock()
		var skip, lose bool
		switch {
		case l.before > 0:
			l.before--
			skip = true
		case l.after > 0:
			l.after--
			lose = true
		}
		l.mu.Unlock()
		if skip {
			return false, gocql.ErrTimeoutNoResponse
		}
		applied, err := mapScanCAS(ctx, q, prev)
		if lose && err == nil {
			return false, gocql.ErrTimeoutNoResponse
		}
		return applied, err
	}
}

// members lists every member of topic (one page).
func members(t *testing.T, ctx context.Context, s *Store, topic string) []store.Subscription {
	t.Helper()
	m, err := s.Members(ctx, topic, "", 100)
	if err != nil {
		t.Fatalf("Members(%s): %v", topic, err)
	}
	return m
}

func memberCount(t *testing.T, ctx context.Context, s *Store, topic string) int64 {
	t.Helper()
	n, err := s.MemberCount(ctx, topic)
	if err != nil {
		t.Fatalf("MemberCount(%s): %v", topic, err)
	}
	return n
}

// TestSubscriptionOutcomeLost: a subscription transaction whose answer is
// lost is settled by a serial read: one that applied reports created
// (removed) and counts once, one that did not is tried again.
func TestSubscriptionOutcomeLost(t *testing.T) {
	s := openStore(t, testConfig(t))
	ctx := ctxFor(t)
	lost := &lostLWT{}
	lost.install(s)
	u, topic := uniq("lost"), uniq("lost-topic")
	at := time.Date(2026, 12, 1, 9, 0, 0, 123456000, time.UTC)
	unknown := func() float64 {
		return counterValue(s.m.casUnknown.WithLabelValues("subscribe")) + counterValue(s.m.casUnknown.WithLabelValues("unsubscribe"))
	}

	lost.after = 1 // applied, answer lost
	if created, err := s.Subscribe(ctx, u, topic, at); err != nil || !created {
		t.Fatalf("Subscribe with a lost answer = %v, %v; want created", created, err)
	}
	lost.before = 1 // not applied, answer lost
	u2 := uniq("lost2")
	if created, err := s.Subscribe(ctx, u2, topic, at); err != nil || !created {
		t.Fatalf("Subscribe after an unapplied attempt = %v, %v; want created", created, err)
	}
	if created, err := s.Subscribe(ctx, u, topic, at.Add(time.Hour)); err != nil || created {
		t.Fatalf("repeated Subscribe = %v, %v; want not created", created, err)
	}
	if n := memberCount(t, ctx, s, topic); n != 2 {
		t.Fatalf("MemberCount = %d, want 2", n)
	}
	m := members(t, ctx, s, topic)
	if len(m) != 2 || !m[0].SubscribedAt.Equal(at) || !m[1].SubscribedAt.Equal(at) {
		t.Fatalf("Members = %+v, want both at %v", m, at)
	}

	lost.after = 1
	if removed, err := s.Unsubscribe(ctx, u, topic); err != nil || !removed {
		t.Fatalf("Unsubscribe with a lost answer = %v, %v; want removed", removed, err)
	}
	lost.before = 1
	if removed, err := s.Unsubscribe(ctx, u2, topic); err != nil || !removed {
		t.Fatalf("Unsubscribe after an unapplied attempt = %v, %v; want removed", removed, err)
	}
	if n := memberCount(t, ctx, s, topic); n != 0 {
		t.Fatalf("MemberCount after unsubscribing both = %d, want 0", n)
	}
	if m := members(t, ctx, s, topic); len(m) != 0 {
		t.Fatalf("Members after unsubscribing both = %+v", m)
	}
	if got := unknown(); got != 4 {
		t.Fatalf("cas_unknown_total for subscriptions = %v, want 4", got)
	}
}

// TestSubscriptionIndexRepair: a call that failed between its
// transaction and the topic index (simulated by changing the tables
// behind the store's back) is repaired by repeating it.
func TestSubscriptionIndexRepair(t *testing.T) {
	s := openStore(t, testConfig(t))
	ctx := ctxFor(t)
	u, topic := uniq("repair"), uniq("repair-topic")
	at := time.Date(2026, 12, 1, 10, 0, 0, 1000, time.UTC)
	if created, err := s.Subscribe(ctx, u, topic, at); err != nil || !created {
		t.Fatalf("Subscribe = %v, %v", created, err)
	}
	// Subscribed, but the index row was never written.
	if err := s.session.Query(s.q.memberDelete, topic, u).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	if created, err := s.Subscribe(ctx, u, topic, time.Time{}); err != nil || created {
		t.Fatalf("repeated Subscribe = %v, %v; want not created", created, err)
	}
	if m := members(t, ctx, s, topic); len(m) != 1 || m[0].UserID != u || !m[0].SubscribedAt.Equal(at) {
		t.Fatalf("Members after the repair = %+v, want %s at %v (the first subscribed_at)", m, u, at)
	}
	// Unsubscribed, but the index row was never deleted.
	if _, err := s.session.Query(s.q.subDelete, u, topic).MapScanCASContext(ctx, map[string]any{}); err != nil {
		t.Fatal(err)
	}
	if removed, err := s.Unsubscribe(ctx, u, topic); err != nil || removed {
		t.Fatalf("repeated Unsubscribe = %v, %v; want not removed", removed, err)
	}
	if m := members(t, ctx, s, topic); len(m) != 0 {
		t.Fatalf("Members after the repair = %+v, want none", m)
	}
	topics, err := s.Topics(ctx, u)
	if err != nil || len(topics) != 0 {
		t.Fatalf("Topics = %+v, %v; want none", topics, err)
	}
}

// TestMemberCountNeverNegative: a count driven below zero (drift by
// failed counter updates) reads as 0.
func TestMemberCountNeverNegative(t *testing.T) {
	s := openStore(t, testConfig(t))
	ctx := ctxFor(t)
	topic := uniq("drift")
	if err := s.session.Query(s.q.countAdd, int64(-3), topic).ExecContext(ctx); err != nil {
		t.Fatal(err)
	}
	if n := memberCount(t, ctx, s, topic); n != 0 {
		t.Fatalf("MemberCount = %d, want 0", n)
	}
}

// TestMembersPagesByUserID: Members resumes after the given user id, in
// bytewise order, across driver pages.
func TestMembersPagesByUserID(t *testing.T) {
	s := openStore(t, testConfig(t))
	ctx := ctxFor(t)
	topic := uniq("pages")
	var want []string
	for i := range 12 {
		u := uniq(string(rune('a' + i%3)))
		want = append(want, u)
		if _, err := s.Subscribe(ctx, u, topic, time.Time{}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(want)
	var got []string
	after := ""
	for {
		page, err := s.Members(ctx, topic, after, 5)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range page {
			got = append(got, m.UserID)
		}
		if len(page) < 5 {
			break
		}
		after = page[len(page)-1].UserID
	}
	if !slices.Equal(got, want) {
		t.Fatalf("pages = %v, want %v", got, want)
	}
	if n := memberCount(t, ctx, s, topic); n != 12 {
		t.Fatalf("MemberCount = %d, want 12", n)
	}
}
