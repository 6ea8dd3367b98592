//go:build integration

package cluster

import (
	"context"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	herald "github.com/heraldhq/herald"
)

// A live broadcast published once by the fan-out's publish-only Cluster
// reaches the live connections of the topic's members on every gateway;
// preferences changed through the publisher are routed to the user's
// gateway first, and a gateway drops a repeat.
func TestBroadcastAcrossGateways(t *testing.T) {
	f := newFleet(t)
	a, b := f.newNode(nil), f.newNode(nil)
	pub := f.publisher()
	for _, u := range []string{"u-bc-a", "u-bc-b", "u-bc-inbox", "u-bc-muted"} {
		f.subscribe(u, "all")
	}
	wsA := a.dialQuery("u-bc-a", "broadcasts=live")
	wsB := b.dialQuery("u-bc-b", "broadcasts=live")
	wsInbox := b.dialQuery("u-bc-inbox", "broadcasts=inbox")
	wsMuted := a.dialQuery("u-bc-muted", "broadcasts=live")
	waitMembers(t, pub, "all", "u-bc-a", "u-bc-b", "u-bc-inbox", "u-bc-muted")

	muted := herald.DefaultPreferences()
	muted.MutedTypes = []string{"promo"}
	if err := f.store.PutPreferences(context.Background(), "u-bc-muted", muted); err != nil {
		t.Fatal(err)
	}
	pub.PreferencesChanged(context.Background(), "u-bc-muted", muted)
	eventually(t, "the preferences routed to gateway A", func() bool {
		return counter(pub.m.forwardedPreferences) >= 1
	})

	bc := herald.Broadcast{EventID: randomID("big-"), Topic: "all", Type: "promo", Priority: herald.PriorityNormal,
		Title: "hello all", CreatedAt: time.Now().UTC()}
	// Publish once A has received (and so applied) the preferences.
	eventually(t, "gateway A received the preferences", func() bool {
		return counter(a.cl.m.receivedPreferences) >= 1
	})
	n, err := pub.Broadcast(context.Background(), bc)
	if err != nil || n != 2 {
		t.Fatalf("Broadcast reached %d gateways (%v), want 2", n, err)
	}
	for _, c := range []struct {
		name string
		fr   frame
	}{{"u-bc-a on A", read(t, wsA)}, {"u-bc-b on B", read(t, wsB)}} {
		if c.fr.Type != "broadcast" || c.fr.Broadcast.EventID != bc.EventID || c.fr.Broadcast.Title != "hello all" {
			t.Fatalf("%s got %+v", c.name, c.fr)
		}
	}
	// A repeat is dropped by both gateways.
	if _, err := pub.Broadcast(context.Background(), bc); err != nil {
		t.Fatal(err)
	}
	// The next frame of every connection is its inbox notification: the
	// inbox-only and the muted member got no broadcast, nobody got the
	// repeat.
	for _, c := range []struct {
		user string
		node *node
		ws   *websocket.Conn
	}{{"u-bc-a", a, wsA}, {"u-bc-b", b, wsB}, {"u-bc-inbox", b, wsInbox}, {"u-bc-muted", a, wsMuted}} {
		if _, err := c.node.cl.Deliver(context.Background(), c.user, f.appendOne(c.user)); err != nil {
			t.Fatal(err)
		}
		if fr := read(t, c.ws); fr.Type != "notification" {
			t.Fatalf("%s got %+v before its notification", c.user, fr)
		}
	}
}
