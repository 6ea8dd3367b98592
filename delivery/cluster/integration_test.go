//go:build integration

package cluster

import (
	"bufio"
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/stacktest"
)

// The router hands a notification to gateway A's Cluster; the user's
// socket is on gateway B.
func TestDeliverReachesOtherGateway(t *testing.T) {
	f := newFleet(t)
	a, b := f.newNode(nil), f.newNode(nil)
	ws := b.dial("u-far")
	f.waitListed(a, "u-far", b, true)

	ctx := context.Background()
	before := counter(a.cl.m.forwardedNotifications)
	var want []uint64
	for range 30 {
		n := f.appendOne("u-far")
		want = append(want, n.Seq)
		online, err := a.cl.Deliver(ctx, "u-far", n)
		if err != nil || !online {
			t.Fatalf("Deliver seq %d: online=%v err=%v", n.Seq, online, err)
		}
	}
	var got []uint64
	for len(got) < len(want) {
		fr := read(t, ws)
		if fr.Type != "notification" {
			t.Fatalf("got %+v", fr)
		}
		got = append(got, fr.Notification.Seq)
	}
	if !slices.Equal(got, want) {
		t.Fatalf("received %v, want %v in order", got, want)
	}
	if d := counter(a.cl.m.forwardedNotifications) - before; d != 30 {
		t.Fatalf("forwarded %v, want 30", d)
	}

	// A user on A itself is delivered locally: nothing is forwarded.
	here := a.dial("u-here")
	f.waitListed(a, "u-here", a, true)
	before = counter(a.cl.m.forwardedNotifications)
	n := f.appendOne("u-here")
	if online, err := a.cl.Deliver(ctx, "u-here", n); err != nil || !online {
		t.Fatalf("local user: %v %v", online, err)
	}
	if fr := read(t, here); fr.Type != "notification" || fr.Notification.Seq != n.Seq {
		t.Fatalf("local user got %+v", fr)
	}
	if d := counter(a.cl.m.forwardedNotifications) - before; d != 0 {
		t.Fatalf("a local delivery was forwarded %v times", d)
	}

	// Nobody anywhere: offline, so the router pushes.
	if online, err := a.cl.Deliver(ctx, "u-nowhere", herald.Notification{Seq: 1, EventID: "e"}); err != nil || online {
		t.Fatalf("absent user: %v %v", online, err)
	}
}

// A read on one gateway updates the unread count on the user's sockets on
// every gateway; so does an API process's publish-only Cluster.
func TestUnreadAcrossGateways(t *testing.T) {
	f := newFleet(t)
	a, b := f.newNode(nil), f.newNode(nil)
	wa, wb := a.dial("u-two"), b.dial("u-two")
	f.waitListed(a, "u-two", b, true)
	f.waitListed(b, "u-two", a, true)

	for range 2 {
		n := f.appendOne("u-two")
		if online, err := b.cl.Deliver(context.Background(), "u-two", n); err != nil || !online {
			t.Fatalf("Deliver: %v %v", online, err)
		}
	}
	for _, ws := range []*websocket.Conn{wa, wb} {
		for seq := uint64(1); seq <= 2; seq++ {
			if fr := read(t, ws); fr.Type != "notification" || fr.Notification.Seq != seq {
				t.Fatalf("got %+v, want notification %d", fr, seq)
			}
		}
	}

	if err := wa.WriteMessage(websocket.TextMessage, []byte(`{"type":"read","seqs":[1]}`)); err != nil {
		t.Fatal(err)
	}
	for _, ws := range []*websocket.Conn{wa, wb} {
		if fr := read(t, ws); fr.Type != "unread" || fr.Count != 1 {
			t.Fatalf("after a read on A: %+v", fr)
		}
	}

	api, err := New(Config{Conn: stacktest.Redis(), GatewayID: randomID("api-"), KeyPrefix: f.prefix, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := api.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	api.PublishUnread(context.Background(), "u-two", 0)
	for _, ws := range []*websocket.Conn{wa, wb} {
		if fr := read(t, ws); fr.Type != "unread" || fr.Count != 0 {
			t.Fatalf("after the API's publish: %+v", fr)
		}
	}
}

// A gateway that stops heartbeating but whose channel still has a
// subscriber (hung, with its connections open) stays listed until
// PresenceTTL, then Deliver reports the user offline and the key is gone —
// expired, since nobody removed it.
func TestCrashedGatewayExpires(t *testing.T) {
	f := newFleet(t)
	a := f.newNode(nil)
	b := f.newNode(func(c *Config) { c.PresenceTTL = time.Second; c.Heartbeat = 200 * time.Millisecond })
	b.dial("u-crash")
	f.waitListed(a, "u-crash", b, true)

	zombie := f.rc.Subscribe(context.Background(), b.cl.Channel())
	defer func() { _ = zombie.Close() }()
	if _, err := zombie.Receive(context.Background()); err != nil { // the subscribe confirmation
		t.Fatal(err)
	}
	b.crash()

	ctx := context.Background()
	eventually(t, "the crashed gateway's user to be offline", func() bool {
		online, err := a.cl.Deliver(ctx, "u-crash", herald.Notification{Seq: 1, EventID: "e"})
		if err != nil {
			t.Fatal(err)
		}
		return !online
	})
	eventually(t, "the presence key to expire", func() bool {
		n, err := f.rc.Exists(ctx, b.cl.presenceKey("u-crash")).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 0
	})
	if b.gw.ConnCount() != 1 {
		t.Fatal("the test meant the socket to stay open on B")
	}
}

// A gateway that lost its subscription (crashed process: Redis closed its
// connection) counts as offline at once, while its presence entry is still
// listed: PUBLISH reports no receiver.
func TestUnsubscribedGatewayCountsOffline(t *testing.T) {
	f := newFleet(t)
	a := f.newNode(nil)
	b := f.newNode(nil) // PresenceTTL 30 s: the entry outlives the test
	b.dial("u-gone")
	f.waitListed(a, "u-gone", b, true)
	b.crash()

	ctx := context.Background()
	before := counter(a.cl.m.stale)
	eventually(t, "the unsubscribed gateway's user to be offline", func() bool {
		online, err := a.cl.Deliver(ctx, "u-gone", herald.Notification{Seq: 1, EventID: "e"})
		if err != nil {
			t.Fatal(err)
		}
		return !online
	})
	if counter(a.cl.m.stale) == before {
		t.Fatal("the stale entry was not counted")
	}
	gws, err := a.cl.lookup(ctx, "u-gone")
	if err != nil || !slices.Contains(gws, b.id) {
		t.Fatalf("B should still be listed: %v %v", gws, err)
	}
}

// The entry goes when the user's last connection on the gateway closes,
// not before — removed, not expired (the TTL is long).
func TestUserOfflineOnLastDisconnect(t *testing.T) {
	f := newFleet(t)
	b := f.newNode(func(c *Config) { c.PresenceTTL = time.Minute; c.Heartbeat = 20 * time.Second })
	c1, c2 := b.dial("u-last"), b.dial("u-last")
	f.waitListed(b, "u-last", b, true)

	if err := c1.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the first socket to go", func() bool { return b.gw.ConnCount() == 1 })
	syncPresence(t, b)
	gws, err := b.cl.lookup(context.Background(), "u-last")
	if err != nil || !slices.Equal(gws, []string{b.id}) {
		t.Fatalf("one socket left: listed %v (%v)", gws, err)
	}

	if err := c2.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the last socket to go", func() bool { return b.gw.ConnCount() == 0 })
	syncPresence(t, b)
	n, err := f.rc.Exists(context.Background(), b.cl.presenceKey("u-last")).Result()
	if err != nil || n != 0 {
		t.Fatalf("presence key still there after the last disconnect (%d, %v)", n, err)
	}
}

// Close removes the gateway's entries at once, even for sockets still
// open, and ignores presence changes after it.
func TestCloseLeaves(t *testing.T) {
	f := newFleet(t)
	a := f.newNode(nil)
	b := f.newNode(nil)
	ws := b.dial("u-leave")
	f.waitListed(a, "u-leave", b, true)
	if err := b.cl.Close(); err != nil {
		t.Fatal(err)
	}
	gws, err := a.cl.lookup(context.Background(), "u-leave")
	if err != nil || len(gws) != 0 {
		t.Fatalf("listed after Close: %v %v", gws, err)
	}
	if online, err := a.cl.Deliver(context.Background(), "u-leave", herald.Notification{Seq: 1, EventID: "e"}); online || err != nil {
		t.Fatalf("Deliver after B closed: %v %v", online, err)
	}
	if err := ws.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the socket to go", func() bool { return b.gw.ConnCount() == 0 })
	b.cl.UserOnline("u-leave") // ignored after Close
	if n, _ := f.rc.Exists(context.Background(), b.cl.presenceKey("u-leave")).Result(); n != 0 {
		t.Fatal("presence written after Close")
	}
}

// When the subscription's connection is killed, go-redis re-subscribes and
// the gateway re-announces its users at once (Redis may have restarted
// empty) — well before the next heartbeat.
func TestResubscribeReannounces(t *testing.T) {
	f := newFleet(t)
	name := randomID("herald-test-")
	rc := redisClient(t, name)
	b := f.newNode(func(c *Config) {
		c.Redis, c.URL = rc, ""
		c.PresenceTTL, c.Heartbeat = 10*time.Minute, 5*time.Minute
	})
	ws := b.dial("u-resub")
	f.waitListed(b, "u-resub", b, true)

	ctx := context.Background()
	if err := f.rc.Del(ctx, b.cl.presenceKey("u-resub")).Err(); err != nil { // Redis "lost" it
		t.Fatal(err)
	}
	id := pubsubClientID(t, f.rc, name)
	if err := f.rc.ClientKillByFilter(ctx, "ID", id).Err(); err != nil {
		t.Fatal(err)
	}
	f.waitListed(b, "u-resub", b, true)

	// And routing to B works again.
	a := f.newNode(nil)
	n := f.appendOne("u-resub")
	eventually(t, "routing to B after its re-subscription", func() bool {
		online, err := a.cl.Deliver(ctx, "u-resub", n)
		return err == nil && online
	})
	if fr := read(t, ws); fr.Type != "notification" || fr.Notification.Seq != n.Seq {
		t.Fatalf("got %+v", fr)
	}
}

// pubsubClientID finds the id of the subscribed connection named name.
func pubsubClientID(t *testing.T, rc *redis.Client, name string) string {
	t.Helper()
	var id string
	eventually(t, "the subscription's connection", func() bool {
		list, err := rc.ClientList(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(strings.NewReader(list))
		for sc.Scan() {
			fields := map[string]string{}
			for _, kv := range strings.Fields(sc.Text()) {
				k, v, _ := strings.Cut(kv, "=")
				fields[k] = v
			}
			if subs, _ := strconv.Atoi(fields["sub"]); fields["name"] == name && subs > 0 {
				id = fields["id"]
				return true
			}
		}
		return false
	})
	return id
}

// A forward lost while the subscription was broken (here: stored, never
// forwarded) reaches the socket once the subscription is back: the
// re-announce asks the gateway to check every local user. The gateway has
// no periodic round, so nothing else could bring it.
func TestLostForwardFilledAfterResubscribe(t *testing.T) {
	f := newFleet(t)
	name := randomID("herald-test-")
	rc := redisClient(t, name)
	b := f.newNode(func(c *Config) { c.Redis, c.URL = rc, "" })
	ws := b.dial("u-lost")
	f.waitListed(b, "u-lost", b, true)
	n := f.appendOne("u-lost") // its forward was lost
	id := pubsubClientID(t, f.rc, name)
	if err := f.rc.ClientKillByFilter(context.Background(), "ID", id).Err(); err != nil {
		t.Fatal(err)
	}
	if fr := read(t, ws); fr.Type != "notification" || fr.Notification.Seq != n.Seq {
		t.Fatalf("got %+v, want the notification at seq %d", fr, n.Seq)
	}
}

// checkingLocal records the position checks the cluster asks for.
type checkingLocal struct {
	*fakeLocal
	mu    sync.Mutex
	asked map[string]int
}

func (l *checkingLocal) CheckPositions(users []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, u := range users {
		l.asked[u]++
	}
}

func (l *checkingLocal) askedFor(u string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.asked[u]
}

// The presence loop asks for a check of a user whose arrival it wrote, and
// of every user after a re-announce.
func TestPositionChecksAskedOnArrivalAndResync(t *testing.T) {
	l := &checkingLocal{fakeLocal: &fakeLocal{users: map[string]bool{}}, asked: map[string]int{}}
	cl, err := New(Config{Conn: stacktest.Redis(), GatewayID: randomID("gw-"), KeyPrefix: randomID("t") + ":", Local: l, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- cl.Run(ctx) }()
	defer func() {
		cancel()
		<-ran
		_ = cl.Close()
	}()
	l.fakeLocal.mu.Lock()
	l.users["u-a"], l.users["u-b"] = true, true
	l.fakeLocal.mu.Unlock()
	cl.UserOnline("u-a")
	cl.UserOnline("u-b")
	eventually(t, "checks of the arrivals", func() bool { return l.askedFor("u-a") == 1 && l.askedFor("u-b") == 1 })
	cl.requestResync()
	eventually(t, "checks after the re-announce", func() bool { return l.askedFor("u-a") == 2 && l.askedFor("u-b") == 2 })
}
