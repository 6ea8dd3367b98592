//go:build integration

package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/stacktest"
)

// publisher is a publish-only Cluster of the fleet (no gateway, never
// Run), as the fan-out stage's.
func (f *fleet) publisher() *Cluster {
	f.t.Helper()
	pub, err := New(Config{Conn: stacktest.Redis(), GatewayID: randomID("fanout-"), KeyPrefix: f.prefix, Logger: quiet})
	if err != nil {
		f.t.Fatal(err)
	}
	f.t.Cleanup(func() { _ = pub.Close() })
	return pub
}

func (f *fleet) subscribe(user string, topics ...string) {
	f.t.Helper()
	for _, tp := range topics {
		if _, err := f.store.Subscribe(context.Background(), user, tp, time.Time{}); err != nil {
			f.t.Fatal(err)
		}
	}
}

// waitMembers waits until c's OnlineMembers(topic) is want (sorted).
func waitMembers(t testing.TB, c *Cluster, topic string, want ...string) {
	t.Helper()
	eventually(t, "online members of "+topic, func() bool {
		got, err := c.OnlineMembers(context.Background(), topic)
		if err != nil {
			t.Fatal(err)
		}
		slices.Sort(got)
		return slices.Equal(got, want)
	})
}

// A member connected to gateway B is listed by a publish-only Cluster; a
// user on two gateways is listed once and stays listed while one of them
// holds them; the last disconnect removes the entry.
func TestOnlineMembersAcrossGateways(t *testing.T) {
	f := newFleet(t)
	a, b := f.newNode(nil), f.newNode(nil)
	pub := f.publisher()
	f.subscribe("u-om-1", "team:1", "team:2")
	f.subscribe("u-om-2", "team:1")
	f.subscribe("u-om-off", "team:1") // never connects

	ws1b := b.dial("u-om-1")
	ws2a := a.dial("u-om-2")
	b.dial("u-om-other") // connected, no topics
	waitMembers(t, pub, "team:1", "u-om-1", "u-om-2")
	waitMembers(t, pub, "team:2", "u-om-1")

	// u-om-1 also on A: still one entry for the user.
	ws1a := a.dial("u-om-1")
	eventually(t, "u-om-1 written by both gateways", func() bool {
		n, err := f.rc.ZCard(context.Background(), pub.onlineKey("team:2")).Result()
		return err == nil && n == 2
	})
	waitMembers(t, pub, "team:2", "u-om-1")
	// Leaving A does not hide the connection on B.
	if err := ws1a.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "A's entry removed", func() bool {
		n, err := f.rc.ZCard(context.Background(), pub.onlineKey("team:2")).Result()
		return err == nil && n == 1
	})
	waitMembers(t, pub, "team:2", "u-om-1")

	if err := ws1b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := ws2a.Close(); err != nil {
		t.Fatal(err)
	}
	waitMembers(t, pub, "team:1")
	waitMembers(t, pub, "team:2")
}

// MembershipChanged through gateway A's Cluster reaches B, which holds the
// user: B's cache and then Redis follow.
func TestMembershipChangedReachesOtherGateway(t *testing.T) {
	f := newFleet(t)
	a, b := f.newNode(nil), f.newNode(nil)
	pub := f.publisher()
	f.subscribe("u-mc", "team:1")
	b.dial("u-mc")
	f.waitListed(a, "u-mc", b, true) // listed: B is subscribed
	waitMembers(t, pub, "team:1", "u-mc")

	ctx := context.Background()
	a.cl.MembershipChanged(ctx, "u-mc", "team:new", true)
	eventually(t, "B's cache has team:new", func() bool {
		ts, _ := b.gw.LocalTopics("u-mc")
		return slices.Contains(ts, "team:new")
	})
	waitMembers(t, pub, "team:new", "u-mc")

	// From a publish-only Cluster too (the API's).
	pub.MembershipChanged(ctx, "u-mc", "team:1", false)
	waitMembers(t, pub, "team:1")
	if ts, _ := b.gw.LocalTopics("u-mc"); !slices.Equal(ts, []string{"team:new"}) {
		t.Fatalf("B's topics of u-mc: %v", ts)
	}
	if ts, ok := a.gw.LocalTopics("u-mc"); ok {
		t.Fatalf("A does not hold u-mc but has topics %v", ts)
	}
}

// A crashed gateway's entries stop being listed once their score passes
// (PresenceTTL after the last heartbeat), and readers prune them.
func TestOnlineMembersExpireAfterCrash(t *testing.T) {
	f := newFleet(t)
	b := f.newNode(func(c *Config) { c.PresenceTTL = time.Second; c.Heartbeat = 200 * time.Millisecond })
	pub := f.publisher()
	f.subscribe("u-mx", "team:x")
	b.dial("u-mx")
	waitMembers(t, pub, "team:x", "u-mx")
	b.crash() // the socket stays open: only expiry removes the entry
	waitMembers(t, pub, "team:x")
	eventually(t, "expired entry pruned", func() bool {
		if _, err := pub.OnlineMembers(context.Background(), "team:x"); err != nil {
			t.Fatal(err)
		}
		n, err := f.rc.ZCard(context.Background(), pub.onlineKey("team:x")).Result()
		return err == nil && n == 0
	})
}

// Close removes the gateway's entries at once.
func TestCloseRemovesMemberships(t *testing.T) {
	f := newFleet(t)
	b := f.newNode(nil) // PresenceTTL 30 s: only Close removes the entry
	pub := f.publisher()
	f.subscribe("u-mcl", "team:c")
	b.dial("u-mcl")
	waitMembers(t, pub, "team:c", "u-mcl")
	b.crash()
	if err := b.cl.Close(); err != nil {
		t.Fatal(err)
	}
	n, err := f.rc.ZCard(context.Background(), pub.onlineKey("team:c")).Result()
	if err != nil || n != 0 {
		t.Fatalf("after Close: %d entries, %v", n, err)
	}
}
