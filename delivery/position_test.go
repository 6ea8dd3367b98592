package delivery

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
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

// A check the cluster asks for (CheckPositions) brings a connection up to
// date without the periodic round; users with no connection here are
// skipped.
func TestCheckPositionsAsked(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PositionInterval = -1 })
	c := e.dial("alice", "")
	readUntilSynced(t, c)
	appendN(t, e.store, "alice", 2) // both forwards lost
	e.gw.CheckPositions([]string{"nobody", "alice"})
	if got := readSeqs(t, c, 2); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("client got %v, want [1 2]", got)
	}
	e.publish("alice", 1)
	if got := readSeqs(t, c, 1); got[0] != 3 {
		t.Fatalf("then got %v, want [3]", got)
	}
}

// seamInbox blocks UnreadCount (read at the replay's seam, after the
// replay's reads) until gate is closed.
type seamInbox struct {
	store.Inbox
	gate    chan struct{}
	waiting atomic.Int32
}

func (s *seamInbox) UnreadCount(ctx context.Context, user string) (int64, error) {
	s.waiting.Add(1)
	select {
	case <-s.gate:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return s.Inbox.UnreadCount(ctx, user)
}

// A notification stored after a connection's replay read the inbox, and
// never forwarded to it (its presence was not written yet), reaches it
// through the check asked for while it is still replaying: the offer waits
// for the seam.
func TestCheckPositionsWhileReplaying(t *testing.T) {
	in := &seamInbox{gate: make(chan struct{})}
	e := newEnv(t, func(c *Config) {
		in.Inbox = c.Store
		c.Store, c.PositionInterval = in, -1
		c.Registerer = prometheus.NewRegistry() // counters of its own
	})
	c := e.dial("carol", "")
	eventually(t, "the replay to reach its seam", func() bool { return in.waiting.Load() == 1 })
	appendN(t, e.store, "carol", 1) // stored after the replay's reads, not forwarded
	e.gw.CheckPositions([]string{"carol"})
	eventually(t, "the check to find carol behind", func() bool { return counterValue(e.gw.m.positionBehind) == 1 })
	close(in.gate)
	seqs, synced := readUntilSynced(t, c)
	if !slices.Equal(seqs, []uint64{1}) || synced.Seq != 1 {
		t.Fatalf("replay %v, synced at %d; want [1], 1", seqs, synced.Seq)
	}
}
