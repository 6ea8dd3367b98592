package embedded

import (
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestSubscriptionsSurviveReopen: memberships, their SubscribedAt and the
// member counts are on disk; after a reopen they continue (a repeat is not
// new, an unsubscribe updates the count).
func TestSubscriptionsSurviveReopen(t *testing.T) {
	ctx := testCtx(t)
	path := filepath.Join(t.TempDir(), "herald.db")
	s := open(t, path, false)
	at := time.Date(2026, 11, 22, 10, 0, 0, 123456789, time.UTC)
	for _, m := range []struct{ user, topic string }{{"u1", "news"}, {"u2", "news"}, {"u1", "sports"}} {
		if created, err := s.Subscribe(ctx, m.user, m.topic, at); err != nil || !created {
			t.Fatalf("Subscribe(%s, %s) = %v, %v", m.user, m.topic, created, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = open(t, path, false)
	want := at.Truncate(time.Microsecond)
	topics, err := s.Topics(ctx, "u1")
	if err != nil || len(topics) != 2 || topics[0].Topic != "news" || topics[1].Topic != "sports" || !topics[0].SubscribedAt.Equal(want) {
		t.Fatalf("Topics(u1) after reopen = %+v, %v", topics, err)
	}
	members, err := s.Members(ctx, "news", "", 10)
	if err != nil || len(members) != 2 || members[0].UserID != "u1" || members[1].UserID != "u2" || !members[1].SubscribedAt.Equal(want) {
		t.Fatalf("Members(news) after reopen = %+v, %v", members, err)
	}
	if n, err := s.MemberCount(ctx, "news"); err != nil || n != 2 {
		t.Fatalf("MemberCount(news) after reopen = %d, %v; want 2", n, err)
	}
	if created, err := s.Subscribe(ctx, "u2", "news", at.Add(time.Hour)); err != nil || created {
		t.Fatalf("Subscribe again after reopen = %v, %v; want false", created, err)
	}
	if removed, err := s.Unsubscribe(ctx, "u1", "news"); err != nil || !removed {
		t.Fatalf("Unsubscribe after reopen = %v, %v", removed, err)
	}
	if n, err := s.MemberCount(ctx, "news"); err != nil || n != 1 {
		t.Fatalf("MemberCount(news) after the unsubscribe = %d, %v; want 1", n, err)
	}
}

// TestUnsubscribeDropsEmptyBuckets: the last membership of a user or a
// topic takes its nested bucket and its counter with it, so churn leaves
// nothing behind.
func TestUnsubscribeDropsEmptyBuckets(t *testing.T) {
	ctx := testCtx(t)
	s := open(t, filepath.Join(t.TempDir(), "herald.db"), true)
	if _, err := s.Subscribe(ctx, "u", "t", time.Time{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unsubscribe(ctx, "u", "t"); err != nil {
		t.Fatal(err)
	}
	if err := s.db.View(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bSubsByUser, bSubsByTopic, bSubsCount} {
			if k, _ := tx.Bucket(b).Cursor().First(); k != nil {
				t.Errorf("bucket %s still holds %q", b, k)
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
