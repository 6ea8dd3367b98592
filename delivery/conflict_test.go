package delivery

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// reusingInbox is an inbox that lost notifications and reused their seqs:
// List returns the replacement set for a seq instead of what the inner
// inbox holds.
type reusingInbox struct {
	store.Inbox
	mu   sync.Mutex
	over map[uint64]herald.Notification
}

func (r *reusingInbox) reuse(n herald.Notification) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.over == nil {
		r.over = map[uint64]herald.Notification{}
	}
	r.over[n.Seq] = n
}

func (r *reusingInbox) List(ctx context.Context, user string, after uint64, limit int, unreadOnly bool) ([]herald.Notification, error) {
	ns, err := r.Inbox.List(ctx, user, after, limit, unreadOnly)
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range ns {
		if n, ok := r.over[ns[i].Seq]; ok {
			ns[i] = n
		}
	}
	return ns, err
}

// reused is n as the inbox holds it after its seq was reused.
func reused(n herald.Notification) herald.Notification {
	n.ID, n.EventID, n.Title = herald.NewID(time.Now()), "evt-reused", "reused"
	return n
}

// readNotification reads one frame, which must be a notification.
func readNotification(t *testing.T, c *websocket.Conn) *herald.Notification {
	t.Helper()
	f := read(t, c)
	if f.Type != "notification" {
		t.Fatalf("got %v, want a notification", f)
	}
	return f.Notification
}

// A live notification for a seq the connection already sent with another
// id is a conflict: the gateway asks the inbox, sends its notification at
// that seq and continues from there. A stale one the inbox disowns is
// skipped.
func TestLiveSeqConflictResyncs(t *testing.T) {
	ri := &reusingInbox{}
	e := newEnv(t, func(c *Config) { ri.Inbox = c.Store; c.Store = ri })
	old := appendN(t, e.store, "alice", 3)
	c := e.dial("alice", "")
	if seqs, s := readUntilSynced(t, c); !slices.Equal(seqs, seqRange(1, 3)) || s.Seq != 3 {
		t.Fatalf("replay %v, %v", seqs, s)
	}
	before := counterValue(e.gw.m.conflicts)

	b3 := reused(old[2])
	ri.reuse(b3)
	if _, err := e.gw.Deliver(context.Background(), "alice", b3); err != nil {
		t.Fatal(err)
	}
	if n := readNotification(t, c); n.Seq != 3 || n.ID != b3.ID {
		t.Fatalf("after the conflict got seq %d id %s, want seq 3 id %s (the reused seq)", n.Seq, n.ID, b3.ID)
	}
	// The first seq 3 again (e.g. a router replay): the inbox says it is
	// not the notification at 3 any more, so it is not sent.
	if _, err := e.gw.Deliver(context.Background(), "alice", old[2]); err != nil {
		t.Fatal(err)
	}
	next := appendN(t, e.store, "alice", 1)[0]
	if _, err := e.gw.Deliver(context.Background(), "alice", next); err != nil {
		t.Fatal(err)
	}
	if n := readNotification(t, c); n.Seq != 4 || n.ID != next.ID {
		t.Fatalf("got seq %d id %s, want seq 4 %s", n.Seq, n.ID, next.ID)
	}
	if got := counterValue(e.gw.m.conflicts) - before; got != 1 {
		t.Fatalf("%v conflicts counted, want 1", got)
	}
	// A plain duplicate (same id) is still skipped.
	if _, err := e.gw.Deliver(context.Background(), "alice", next); err != nil {
		t.Fatal(err)
	}
	e.publish("alice", 1)
	if n := readNotification(t, c); n.Seq != 5 {
		t.Fatalf("got seq %d, want 5", n.Seq)
	}
}

// The same at the replay/live seam: a live notification buffered during the
// replay that conflicts with a replayed one is resolved by the inbox.
func TestSeamSeqConflictResyncs(t *testing.T) {
	ri := &reusingInbox{}
	gate := &gatedInbox{readFirst: true, entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, func(c *Config) { ri.Inbox = c.Store; gate.Inbox = ri; c.Store = gate })
	old := appendN(t, e.store, "alice", 3)
	c := e.dial("alice", "after=0")
	<-gate.entered // the replay has read 1..3
	b3 := reused(old[2])
	ri.reuse(b3)
	if _, err := e.gw.Deliver(context.Background(), "alice", b3); err != nil {
		t.Fatal(err)
	}
	close(gate.release)
	var got []string
	for _, want := range []herald.Notification{old[0], old[1], old[2], b3} {
		n := readNotification(t, c)
		got = append(got, n.ID)
		if n.Seq != want.Seq || n.ID != want.ID {
			t.Fatalf("frames %v: got seq %d id %s, want seq %d id %s", got, n.Seq, n.ID, want.Seq, want.ID)
		}
	}
	if f := read(t, c); f.Type != "synced" || f.Seq != 3 {
		t.Fatalf("got %v, want synced(3)", f)
	}
	e.publish("alice", 1)
	if n := readNotification(t, c); n.Seq != 4 {
		t.Fatalf("got seq %d, want 4", n.Seq)
	}
}
