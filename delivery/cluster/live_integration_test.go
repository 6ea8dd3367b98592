//go:build integration

package cluster

import (
	"context"
	"slices"
	"testing"

	"github.com/gorilla/websocket"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/stacktest"
)

// The enricher's direct path: a publish-only Cluster (no gateway, never
// Run) hands a batch to the gateways holding its users, in order, in one
// pipeline, and survives Redis forgetting the script.
func TestPublishLiveReachesGateways(t *testing.T) {
	f := newFleet(t)
	a, b := f.newNode(nil), f.newNode(nil)
	wsA, wsB := a.dial("u-live-a"), b.dial("u-live-b")
	f.waitListed(a, "u-live-a", a, true)
	f.waitListed(a, "u-live-b", b, true)

	pub, err := New(Config{Conn: stacktest.Redis(), GatewayID: "enricher:test", KeyPrefix: f.prefix, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()

	ctx := context.Background()
	before := counter(pub.m.forwardedLive) // collectors are shared by processes' Clusters
	// Listed is not yet subscribed: a publish before the subscription is
	// made reaches nobody (and the socket gets it by gap fill later).
	eventually(t, "both gateways subscribed", func() bool {
		subs, err := f.rc.PubSubNumSub(ctx, a.cl.Channel(), b.cl.Channel()).Result()
		return err == nil && subs[a.cl.Channel()] > 0 && subs[b.cl.Channel()] > 0
	})
	var batch []herald.UserNotification
	want := map[string][]uint64{}
	for range 10 {
		for _, u := range []string{"u-live-a", "u-live-b", "u-nowhere"} {
			n := f.appendOne(u)
			batch = append(batch, herald.UserNotification{UserID: u, Notification: n})
			want[u] = append(want[u], n.Seq)
		}
	}
	if err := pub.PublishLive(ctx, batch[:15]); err != nil {
		t.Fatal(err)
	}
	// Redis forgets its scripts (a restart, SCRIPT FLUSH): reloaded once.
	if err := f.rc.ScriptFlush(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := pub.PublishLive(ctx, batch[15:]); err != nil {
		t.Fatalf("after SCRIPT FLUSH: %v", err)
	}
	for user, c := range map[string]*websocket.Conn{"u-live-a": wsA, "u-live-b": wsB} {
		var got []uint64
		for len(got) < len(want[user]) {
			fr := read(t, c)
			if fr.Type != "notification" {
				t.Fatalf("%s got %+v", user, fr)
			}
			got = append(got, fr.Notification.Seq)
		}
		if !slices.Equal(got, want[user]) {
			t.Fatalf("%s received %v, want %v", user, got, want[user])
		}
	}
	if got := counter(pub.m.forwardedLive) - before; got != 20 {
		t.Fatalf("forwarded live %v, want 20 (10 per connected user)", got)
	}
}
