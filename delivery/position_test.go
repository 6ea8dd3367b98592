package delivery

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	herald "github.com/heraldhq/herald"
)

// forwarder is what routes notifications to a gateway: the gateway itself,
// or delivery/cluster's Cluster forwarding through Redis.
type forwarder interface {
	Deliver(ctx context.Context, userID string, n herald.Notification) (bool, error)
}

// lossyForwarder loses the forward of the seqs in drop, as Redis pub/sub
// may: the notification is in the inbox but never reaches the gateway.
type lossyForwarder struct {
	forwarder
	mu   sync.Mutex
	drop map[uint64]bool
	lost []uint64
}

func (f *lossyForwarder) Deliver(ctx context.Context, userID string, n herald.Notification) (bool, error) {
	f.mu.Lock()
	if f.drop[n.Seq] {
		f.lost = append(f.lost, n.Seq)
		f.mu.Unlock()
		return true, nil // the sender believes it was delivered
	}
	f.mu.Unlock()
	return f.forwarder.Deliver(ctx, userID, n)
}

// A notification whose forward is lost, with nothing after it, reaches the
// client through the position check alone, in order and once; a late
// duplicate of it is skipped.
func TestPositionCheckFillsALostForward(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PositionInterval = 20 * time.Millisecond })
	fwd := &lossyForwarder{forwarder: e.gw, drop: map[uint64]bool{2: true, 3: true}}
	c := e.dial("alice", "")
	readUntilSynced(t, c)

	ns := appendN(t, e.store, "alice", 3)
	for _, n := range ns {
		if _, err := fwd.Deliver(context.Background(), "alice", n); err != nil {
			t.Fatal(err)
		}
	}
	if !slices.Equal(fwd.lost, []uint64{2, 3}) {
		t.Fatalf("lost %v, want [2 3]", fwd.lost)
	}
	// No further notification: only the position check can bring 2 and 3.
	if got := readSeqs(t, c, 3); !slices.Equal(got, []uint64{1, 2, 3}) {
		t.Fatalf("client got %v, want [1 2 3]", got)
	}
	if counterValue(e.gw.m.positionBehind) < 1 {
		t.Error("position_behind_total not counted")
	}
	// The lost forward arriving late is a duplicate; the next one follows.
	if _, err := e.gw.Deliver(context.Background(), "alice", ns[2]); err != nil {
		t.Fatal(err)
	}
	e.publish("alice", 1)
	if got := readSeqs(t, c, 1); got[0] != 4 {
		t.Fatalf("after the late duplicate the client got %v, want [4]", got)
	}
}

// Every connection of the user is brought up to date, also when only one
// of them was quiet; a connection that is up to date gets nothing more.
func TestPositionCheckAllConnectionsOfTheUser(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PositionInterval = 20 * time.Millisecond })
	a, b := e.dial("bob", ""), e.dial("bob", "")
	readUntilSynced(t, a)
	readUntilSynced(t, b)
	appendN(t, e.store, "bob", 2) // both forwards lost
	for _, c := range []*websocket.Conn{a, b} {
		if got := readSeqs(t, c, 2); !slices.Equal(got, []uint64{1, 2}) {
			t.Fatalf("got %v, want [1 2]", got)
		}
	}
	e.publish("bob", 1)
	for _, c := range []*websocket.Conn{a, b} {
		if got := readSeqs(t, c, 1); got[0] != 3 {
			t.Fatalf("got %v, want [3]", got)
		}
	}
}
