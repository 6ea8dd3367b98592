//go:build integration

package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/internal/stacktest"
)

// An API process's long poll (a delivery.Waiters attached to its Cluster,
// as app.AddAPI wires it) is listed in the presence registry while it
// waits, and a router's Deliver on another gateway wakes it through Redis.
func TestLongPollOnAPIProcessWokenThroughRedis(t *testing.T) {
	f := newFleet(t)
	a := f.newNode(nil) // the router's gateway
	apiID := randomID("api-")
	cl, err := New(Config{Conn: stacktest.Redis(), GatewayID: apiID, KeyPrefix: f.prefix, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	w := delivery.NewWaiters(delivery.WaitersConfig{Presence: cl, Logger: quiet})
	if err := cl.Attach(w); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- cl.Run(ctx) }()
	t.Cleanup(func() {
		w.Shutdown()
		cancel()
		<-ran
		_ = cl.Close()
	})

	woken := make(chan struct{})
	go func() {
		wctx, wcancel := context.WithTimeout(context.Background(), time.Minute) // a failure guard only
		defer wcancel()
		_ = w.Wait(wctx, "u-poll", 0, nil)
		close(woken)
	}()
	eventually(t, "the API process listed for u-poll", func() bool {
		gws, err := a.cl.lookup(context.Background(), "u-poll")
		return err == nil && slices.Contains(gws, apiID)
	})
	n := f.appendOne("u-poll")
	if online, err := a.cl.Deliver(context.Background(), "u-poll", n); err != nil || !online {
		t.Fatalf("Deliver: online=%v err=%v", online, err)
	}
	<-woken
	eventually(t, "the API process unlisted", func() bool {
		gws, err := a.cl.lookup(context.Background(), "u-poll")
		return err == nil && !slices.Contains(gws, apiID)
	})
}
