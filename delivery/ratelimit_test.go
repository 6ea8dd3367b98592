package delivery

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/heraldhq/herald/store"
)

// countingInbox counts read marks; when gate is set, each MarkRead waits
// for a value on it (or its context) before going through.
type countingInbox struct {
	store.Inbox
	gate chan struct{}

	mu    sync.Mutex
	calls [][]uint64 // seqs of each MarkRead; nil for MarkAllRead
}

func (s *countingInbox) MarkRead(ctx context.Context, user string, seqs []uint64) (int64, error) {
	s.record(slices.Clone(seqs))
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return s.Inbox.MarkRead(ctx, user, seqs)
}

func (s *countingInbox) MarkAllRead(ctx context.Context, user string) (int64, error) {
	s.record(nil)
	return s.Inbox.MarkAllRead(ctx, user)
}

func (s *countingInbox) record(seqs []uint64) {
	s.mu.Lock()
	s.calls = append(s.calls, seqs)
	s.mu.Unlock()
}

func (s *countingInbox) get() [][]uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

func readFrame(seq int) []byte {
	return []byte(`{"type":"read","seqs":[` + strconv.Itoa(seq) + `]}`)
}

// A flood of read frames on one socket costs at most the bucket's worth of
// store calls and ends with 4029.
func TestReadFloodIsRateLimited(t *testing.T) {
	const burst = 10
	ci := &countingInbox{}
	e := newEnv(t, func(c *Config) {
		ci.Inbox = c.Store
		c.Store = ci
		c.FrameRate, c.FrameBurst = 1e-9, burst // no refill within the test
	})
	appendN(t, e.store, "alice", 3)
	c := e.dial("alice", "")
	readUntilSynced(t, c)
	before := counterValue(e.gw.m.disconnects.WithLabelValues("rate_limited"))
	var werr error
	for i := range 20000 {
		if werr = c.WriteMessage(websocket.TextMessage, readFrame(i%3+1)); werr != nil {
			break // the server closed after the bucket ran dry
		}
	}
	if code := closeCode(t, c); code != CloseRateLimited {
		t.Fatalf("flood closed with %d (write error %v), want %d", code, werr, CloseRateLimited)
	}
	eventually(t, "the disconnect", func() bool {
		return counterValue(e.gw.m.disconnects.WithLabelValues("rate_limited")) == before+1
	})
	if n := len(ci.get()); n == 0 || n > burst {
		t.Fatalf("%d store calls for the flood, want 1..%d", n, burst)
	}
}

// The bucket is the user's, shared by their sockets on the gateway; other
// users are not charged.
func TestFrameBucketIsPerUser(t *testing.T) {
	ci := &countingInbox{}
	e := newEnv(t, func(c *Config) {
		ci.Inbox = c.Store
		c.Store = ci
		c.FrameRate, c.FrameBurst = 1e-9, 4
	})
	a1, a2, b := e.dial("alice", ""), e.dial("alice", ""), e.dial("bob", "")
	for _, c := range []*websocket.Conn{a1, a2, b} {
		readUntilSynced(t, c)
	}
	// Alice: two frames on each socket use up her bucket (each answered by
	// an unread frame on both of her sockets).
	for _, c := range []*websocket.Conn{a1, a2} {
		for i := range 2 {
			if err := c.WriteMessage(websocket.TextMessage, readFrame(i+1)); err != nil {
				t.Fatal(err)
			}
			for _, r := range []*websocket.Conn{a1, a2} {
				if f := read(t, r); f.Type != "unread" {
					t.Fatalf("got %v, want unread", f)
				}
			}
		}
	}
	// Bob's bucket is his own.
	for i := range 4 {
		if err := b.WriteMessage(websocket.TextMessage, readFrame(i+1)); err != nil {
			t.Fatal(err)
		}
		if f := read(t, b); f.Type != "unread" {
			t.Fatalf("bob got %v, want unread", f)
		}
	}
	// Alice's fifth frame, on either socket, is one too many.
	if err := a2.WriteMessage(websocket.TextMessage, readFrame(1)); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, a2); code != CloseRateLimited {
		t.Fatalf("close %d, want %d", code, CloseRateLimited)
	}
	if e.gw.openConns("alice") != 1 || e.gw.openConns("bob") != 1 {
		t.Fatalf("open: alice %d, bob %d; want 1 each", e.gw.openConns("alice"), e.gw.openConns("bob"))
	}
}

// A well-behaved client under the default limit (20 frames/s, bursts of
// 40) is unaffected: a burst of 40 reads and pings goes through.
func TestDefaultFrameLimitLetsClientsWork(t *testing.T) {
	e := newEnv(t, nil)
	appendN(t, e.store, "alice", 50)
	c := e.dial("alice", "")
	readUntilSynced(t, c)
	pongs := make(chan struct{}, 10)
	c.SetPongHandler(func(string) error { pongs <- struct{}{}; return nil })
	for i := range 5 {
		if err := c.WriteControl(websocket.PingMessage, nil, time.Now().Add(5*time.Second)); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMessage(websocket.TextMessage, readFrame(i+1)); err != nil {
			t.Fatal(err)
		}
		read(t, c) // its unread frame (and the pong, through the handler)
	}
	for i := 5; i < 35; i++ {
		if err := c.WriteMessage(websocket.TextMessage, readFrame(i+1)); err != nil {
			t.Fatal(err)
		}
		if f := read(t, c); f.Type != "unread" {
			t.Fatalf("got %v, want unread", f)
		}
	}
	if len(pongs) != 5 {
		t.Fatalf("%d pongs, want 5", len(pongs))
	}
	if n, _ := e.store.UnreadCount(context.Background(), "alice"); n != 15 {
		t.Fatalf("unread %d, want 15", n)
	}
	if e.gw.openConns("alice") != 1 {
		t.Fatal("the connection was closed")
	}
}

// Read frames that arrive while a read mark is in flight are merged into
// one store call.
func TestReadsCoalesceWhileOneIsInFlight(t *testing.T) {
	ci := &countingInbox{gate: make(chan struct{})}
	e := newEnv(t, func(c *Config) { ci.Inbox = c.Store; c.Store = ci })
	appendN(t, e.store, "alice", 10)
	c := e.dial("alice", "")
	readUntilSynced(t, c)
	send := func(frames ...string) {
		t.Helper()
		for _, f := range frames {
			if err := c.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
				t.Fatal(err)
			}
		}
	}
	send(`{"type":"read","seqs":[1]}`) // in flight, held at the gate
	eventually(t, "the first store call", func() bool { return len(ci.get()) == 1 })
	send(`{"type":"read","seqs":[4,2]}`, `{"type":"read","seqs":[3,2]}`, `{"type":"read","seqs":[9]}`)
	sc := e.gw.hub.appendConns("alice", nil)[0]
	eventually(t, "the frames to be merged", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return len(sc.readSeqs) == 5
	})
	ci.gate <- struct{}{}
	ci.gate <- struct{}{}
	if f := read(t, c); f.Type != "unread" || f.Count != 9 {
		t.Fatalf("got %v, want unread(9)", f)
	}
	if f := read(t, c); f.Type != "unread" || f.Count != 5 {
		t.Fatalf("got %v, want unread(5)", f)
	}
	want := [][]uint64{{1}, {2, 3, 4, 9}}
	if got := ci.get(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("store calls %v, want %v", got, want)
	}
	// "all" absorbs the seqs merged with it.
	send(`{"type":"read","seqs":[5]}`)
	eventually(t, "the third store call", func() bool { return len(ci.get()) == 3 })
	send(`{"type":"read","seqs":[6]}`, `{"type":"read","seqs":[7]}`, `{"type":"read","all":true}`)
	eventually(t, "all to be merged", func() bool {
		sc.mu.Lock()
		defer sc.mu.Unlock()
		return sc.readAll
	})
	ci.gate <- struct{}{}
	if f := read(t, c); f.Type != "unread" || f.Count != 4 {
		t.Fatalf("got %v, want unread(4)", f)
	}
	if f := read(t, c); f.Type != "unread" || f.Count != 0 {
		t.Fatalf("got %v, want unread(0)", f)
	}
	want = append(want, []uint64{5}, nil)
	if got := ci.get(); !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("store calls %v, want %v", got, want)
	}
}
