package delivery

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"
)

// recordingHook records presence calls in order.
type recordingHook struct {
	mu     sync.Mutex
	events []string
}

func (h *recordingHook) UserOnline(u string)  { h.add("+" + u) }
func (h *recordingHook) UserOffline(u string) { h.add("-" + u) }

func (h *recordingHook) add(e string) {
	h.mu.Lock()
	h.events = append(h.events, e)
	h.mu.Unlock()
}

func (h *recordingHook) get() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.events)
}

func localUsers(g *Gateway) []string {
	var us []string
	g.LocalUsers(func(u string) { us = append(us, u) })
	slices.Sort(us)
	return us
}

func TestPresenceHookFirstAndLastConnection(t *testing.T) {
	h := &recordingHook{}
	e := newEnv(t, func(c *Config) { c.Presence = h; c.Shards = 2 })

	a1 := e.dial("pa", "")
	readUntilSynced(t, a1) // the hook runs before the replay
	if got := h.get(); !slices.Equal(got, []string{"+pa"}) {
		t.Fatalf("after first connection: %v", got)
	}
	a2 := e.dial("pa", "")
	readUntilSynced(t, a2)
	b := e.dial("pb", "")
	readUntilSynced(t, b)
	if got := h.get(); !slices.Equal(got, []string{"+pa", "+pb"}) {
		t.Fatalf("a second connection of pa must not fire: %v", got)
	}
	if !e.gw.Present("pa") || !e.gw.Present("pb") || e.gw.Present("nobody") {
		t.Fatal("Present disagrees with the connections")
	}
	if got := localUsers(e.gw); !slices.Equal(got, []string{"pa", "pb"}) {
		t.Fatalf("LocalUsers: %v", got)
	}

	// Closing one of pa's two connections: pa stays present. The teardown
	// calls the hook before the connection count drops.
	if err := a1.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a1 torn down", func() bool { return e.gw.ConnCount() == 2 })
	if got := h.get(); !slices.Equal(got, []string{"+pa", "+pb"}) {
		t.Fatalf("pa still has a connection: %v", got)
	}
	if !e.gw.Present("pa") {
		t.Fatal("pa is no longer present")
	}
	if err := a2.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a2 torn down", func() bool { return e.gw.ConnCount() == 1 })
	if got := h.get(); !slices.Equal(got, []string{"+pa", "+pb", "-pa"}) {
		t.Fatalf("after pa's last connection: %v", got)
	}
	if e.gw.Present("pa") {
		t.Fatal("pa is still present")
	}
	if got := localUsers(e.gw); !slices.Equal(got, []string{"pb"}) {
		t.Fatalf("LocalUsers: %v", got)
	}

	// Shutdown tells the hook about everyone still connected.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := h.get(); !slices.Equal(got, []string{"+pa", "+pb", "-pa", "-pb"}) {
		t.Fatalf("after Shutdown: %v", got)
	}
	if got := localUsers(e.gw); len(got) != 0 {
		t.Fatalf("LocalUsers after Shutdown: %v", got)
	}
}

// A refused handshake (too many connections) registers nothing and fires
// nothing.
func TestPresenceHookRefusedConnection(t *testing.T) {
	h := &recordingHook{}
	e := newEnv(t, func(c *Config) { c.Presence = h; c.MaxConnsPerUser = 1 })
	c := e.dial("pr", "")
	readUntilSynced(t, c)
	_, resp, err := e.tryDial("pr", "")
	if resp != nil {
		defer resp.Body.Close()
	}
	if err == nil || resp == nil || resp.StatusCode != 429 {
		t.Fatalf("second connection: %v %v", resp, err)
	}
	if got := h.get(); !slices.Equal(got, []string{"+pr"}) {
		t.Fatalf("events: %v", got)
	}
}

func TestLocalUsersMayBlock(t *testing.T) {
	e := newEnv(t, nil)
	for _, u := range []string{"l1", "l2", "l3"} {
		readUntilSynced(t, e.dial(u, ""))
	}
	// fn calling back into the gateway (which takes shard locks) must not
	// deadlock: no lock is held while it runs.
	var got []string
	e.gw.LocalUsers(func(u string) {
		if e.gw.Present(u) {
			got = append(got, u)
		}
	})
	slices.Sort(got)
	if !slices.Equal(got, []string{"l1", "l2", "l3"}) {
		t.Fatalf("LocalUsers: %v", got)
	}
}
