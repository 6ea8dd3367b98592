package delivery

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/memory"
)

// withMemberships tracks memberships from the env's memory store.
func withMemberships(c *Config) { c.Memberships = c.Store.(*memory.Store) }

func (e *env) subscribe(user string, topics ...string) {
	e.t.Helper()
	for _, tp := range topics {
		if _, err := e.store.Subscribe(context.Background(), user, tp, time.Time{}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func onlineMembers(t testing.TB, g *Gateway, topic string) []string {
	t.Helper()
	us, err := g.OnlineMembers(context.Background(), topic)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(us)
	return us
}

func localTopics(g *Gateway, user string) ([]string, bool) {
	ts, ok := g.LocalTopics(user)
	slices.Sort(ts)
	return ts, ok
}

func waitMembers(t testing.TB, g *Gateway, topic string, want ...string) {
	t.Helper()
	eventually(t, "members of "+topic+" = "+joinUsers(want), func() bool {
		return slices.Equal(onlineMembers(t, g, topic), want)
	})
}

func joinUsers(us []string) string {
	s := "["
	for i, u := range us {
		if i > 0 {
			s += " "
		}
		s += u
	}
	return s + "]"
}

func TestMembershipsLoadedOnConnectAndIndexed(t *testing.T) {
	e := newEnv(t, func(c *Config) { withMemberships(c); c.Shards = 4 })
	e.subscribe("ma", "t1", "t2")
	e.subscribe("mb", "t1")
	e.subscribe("mc", "t3") // never connects
	readUntilSynced(t, e.dial("ma", ""))
	readUntilSynced(t, e.dial("mb", ""))

	waitMembers(t, e.gw, "t1", "ma", "mb")
	waitMembers(t, e.gw, "t2", "ma")
	if got := onlineMembers(t, e.gw, "t3"); len(got) != 0 {
		t.Fatalf("t3 has no connected member: %v", got)
	}
	if ts, ok := localTopics(e.gw, "ma"); !ok || !slices.Equal(ts, []string{"t1", "t2"}) {
		t.Fatalf("LocalTopics(ma) = %v, %v", ts, ok)
	}
	if _, ok := e.gw.LocalTopics("mc"); ok {
		t.Fatal("LocalTopics of a user not connected here")
	}
}

func TestMembershipsDroppedWithLastConnection(t *testing.T) {
	h := &topicsHook{}
	e := newEnv(t, func(c *Config) { withMemberships(c); c.Presence = h })
	e.subscribe("md", "t1")
	a1 := e.dial("md", "")
	readUntilSynced(t, a1)
	a2 := e.dial("md", "")
	readUntilSynced(t, a2)
	waitMembers(t, e.gw, "t1", "md")
	eventually(t, "TopicsChanged(md) after the load", func() bool { return h.count("md") == 1 })

	if err := a1.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a1 torn down", func() bool { return e.gw.ConnCount() == 1 })
	if got := onlineMembers(t, e.gw, "t1"); !slices.Equal(got, []string{"md"}) {
		t.Fatalf("md still has a connection: %v", got)
	}
	if err := a2.Close(); err != nil {
		t.Fatal(err)
	}
	eventually(t, "a2 torn down", func() bool { return e.gw.ConnCount() == 0 })
	if got := onlineMembers(t, e.gw, "t1"); len(got) != 0 {
		t.Fatalf("after md's last connection: %v", got)
	}
	if _, ok := e.gw.LocalTopics("md"); ok {
		t.Fatal("md's topics outlived their connections")
	}
	if n := h.count("md"); n != 2 {
		t.Fatalf("TopicsChanged(md) called %d times, want 2 (load, drop)", n)
	}
	// The index holds no empty sets.
	for i := range e.gw.hub.shards {
		s := &e.gw.hub.shards[i]
		s.mu.Lock()
		n, m := len(s.byTopic), len(s.mems)
		s.mu.Unlock()
		if n != 0 || m != 0 {
			t.Fatalf("shard %d keeps %d topics, %d entries", i, n, m)
		}
	}
}

func TestMembershipChanged(t *testing.T) {
	h := &topicsHook{}
	e := newEnv(t, func(c *Config) { withMemberships(c); c.Presence = h })
	e.subscribe("me", "t1")
	readUntilSynced(t, e.dial("me", ""))
	waitMembers(t, e.gw, "t1", "me")
	ctx := context.Background()

	e.gw.MembershipChanged(ctx, "me", "t2", true)
	e.gw.MembershipChanged(ctx, "me", "t1", false)
	if got := onlineMembers(t, e.gw, "t2"); !slices.Equal(got, []string{"me"}) {
		t.Fatalf("t2 after subscribe: %v", got)
	}
	if got := onlineMembers(t, e.gw, "t1"); len(got) != 0 {
		t.Fatalf("t1 after unsubscribe: %v", got)
	}
	if ts, _ := localTopics(e.gw, "me"); !slices.Equal(ts, []string{"t2"}) {
		t.Fatalf("LocalTopics(me) = %v", ts)
	}
	e.gw.MembershipChanged(ctx, "me", "t2", true) // no change: no call
	if n := h.count("me"); n != 3 {
		t.Fatalf("TopicsChanged(me) called %d times, want 3", n)
	}
	// A user not connected here: nothing happens.
	e.gw.MembershipChanged(ctx, "nobody", "t2", true)
	if got := onlineMembers(t, e.gw, "t2"); !slices.Equal(got, []string{"me"}) {
		t.Fatalf("t2: %v", got)
	}
}

// A change arriving while the load runs is applied after it, whatever the
// load read.
func TestMembershipChangedDuringLoad(t *testing.T) {
	gate := &gatedTopics{release: make(chan struct{}), started: make(chan struct{}, 1)}
	e := newEnv(t, func(c *Config) {
		gate.Memberships = c.Store.(*memory.Store)
		c.Memberships = gate
	})
	e.subscribe("mf", "t1", "t2")
	readUntilSynced(t, e.dial("mf", "")) // the load does not delay the connection
	<-gate.started
	if got := onlineMembers(t, e.gw, "t1"); len(got) != 0 {
		t.Fatalf("listed before the load: %v", got)
	}
	e.gw.MembershipChanged(context.Background(), "mf", "t3", true)
	e.gw.MembershipChanged(context.Background(), "mf", "t2", false)
	close(gate.release)
	eventually(t, "load done", func() bool { _, ok := e.gw.LocalTopics("mf"); return ok })
	if ts, _ := localTopics(e.gw, "mf"); !slices.Equal(ts, []string{"t1", "t3"}) {
		t.Fatalf("LocalTopics(mf) = %v", ts)
	}
}

// A failing load leaves the user unlisted and the connection working,
// and is tried again while the user stays connected.
func TestMembershipLoadFailure(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *Config) { c.Memberships = failingTopics{}; c.Registerer = reg })
	c := e.dial("mg", "")
	readUntilSynced(t, c)
	eventually(t, "load failures retried", func() bool {
		return counterValue(e.gw.m.membershipLoads.WithLabelValues("error")) >= 2
	})
	if _, ok := e.gw.LocalTopics("mg"); ok {
		t.Fatal("topics known after a failed load")
	}
	e.gw.MembershipChanged(context.Background(), "mg", "t1", true)
	if got := onlineMembers(t, e.gw, "t1"); len(got) != 0 {
		t.Fatalf("a user whose load failed is listed: %v", got)
	}
	e.publish("mg", 1)
	if f := read(t, c); f.Type != "notification" {
		t.Fatalf("the connection does not work: %+v", f)
	}
}

// A load that fails twice succeeds on its third attempt, with the changes
// made meanwhile applied; a user who left is not retried.
func TestMembershipLoadRetried(t *testing.T) {
	reg := prometheus.NewRegistry()
	flaky := &flakyTopics{fails: 2}
	e := newEnv(t, func(c *Config) {
		flaky.Memberships = c.Store.(*memory.Store)
		c.Memberships = flaky
		c.Registerer = reg
	})
	e.subscribe("mr", "t1")
	readUntilSynced(t, e.dial("mr", ""))
	e.gw.MembershipChanged(context.Background(), "mr", "t2", true)
	waitMembers(t, e.gw, "t1", "mr")
	waitMembers(t, e.gw, "t2", "mr")
	if got := counterValue(e.gw.m.membershipLoads.WithLabelValues("error")); got != 2 {
		t.Fatalf("errors counted %v, want 2", got)
	}

	flaky.set(1 << 30) // from now on every load fails
	c := e.dial("ms", "")
	readUntilSynced(t, c)
	eventually(t, "the first attempt failed", func() bool { return flaky.calls("ms") >= 1 })
	_ = c.Close()
	eventually(t, "ms gone", func() bool { return e.gw.ConnCount() == 1 })
	n := flaky.calls("ms")
	time.Sleep(3 * loadRetry.Min) // room for retries that must not come
	if got := flaky.calls("ms"); got > n+1 {
		t.Fatalf("loads of a user who left: %d, then %d", n, got)
	}
}

// A connection storm larger than the loaders can keep up with waits for
// its loads and loses none.
func TestMembershipLoadsNotDropped(t *testing.T) {
	gate := &gatedTopics{release: make(chan struct{}), started: make(chan struct{}, 1)}
	e := newEnv(t, func(c *Config) {
		gate.Memberships = c.Store.(*memory.Store)
		c.Memberships = gate
		c.MembershipLoaders = 1
	})
	const n = 40
	var want []string
	for i := range n {
		u := fmt.Sprintf("storm-%02d", i)
		e.subscribe(u, "big")
		readUntilSynced(t, e.dial(u, ""))
		want = append(want, u)
	}
	<-gate.started
	if q := e.gw.loads.len(); q < n-1 {
		t.Fatalf("%d loads waiting behind the held one, want %d", q, n-1)
	}
	close(gate.release)
	waitMembers(t, e.gw, "big", want...)
}

func TestMembershipsNotTracked(t *testing.T) {
	e := newEnv(t, nil)
	e.subscribe("mh", "t1")
	readUntilSynced(t, e.dial("mh", ""))
	e.gw.MembershipChanged(context.Background(), "mh", "t2", true)
	us, err := e.gw.OnlineMembers(context.Background(), "t1")
	if us != nil || err != nil {
		t.Fatalf("OnlineMembers without Memberships = %v, %v", us, err)
	}
	if _, ok := e.gw.LocalTopics("mh"); ok {
		t.Fatal("LocalTopics without Memberships")
	}
}

// topicsHook is a PresenceHook and MembershipHook counting TopicsChanged.
type topicsHook struct {
	mu sync.Mutex
	n  map[string]int
}

func (h *topicsHook) UserOnline(string)  {}
func (h *topicsHook) UserOffline(string) {}
func (h *topicsHook) TopicsChanged(u string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.n == nil {
		h.n = map[string]int{}
	}
	h.n[u]++
}

func (h *topicsHook) count(u string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.n[u]
}

var _ MembershipHook = (*topicsHook)(nil)

// gatedTopics holds each load until release is closed.
type gatedTopics struct {
	Memberships
	started chan struct{}
	release chan struct{}
}

func (g *gatedTopics) Topics(ctx context.Context, user string) ([]store.Subscription, error) {
	select {
	case g.started <- struct{}{}:
	default:
	}
	select {
	case <-g.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return g.Memberships.Topics(ctx, user)
}

type failingTopics struct{}

// flakyTopics fails the first fails loads of every user, then passes them
// to Memberships; it counts the calls per user.
type flakyTopics struct {
	Memberships
	mu    sync.Mutex
	fails int
	n     map[string]int
}

func (f *flakyTopics) set(fails int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fails = fails
}

func (f *flakyTopics) calls(user string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.n[user]
}

func (f *flakyTopics) Topics(ctx context.Context, user string) ([]store.Subscription, error) {
	f.mu.Lock()
	if f.n == nil {
		f.n = map[string]int{}
	}
	f.n[user]++
	fail := f.n[user] <= f.fails
	f.mu.Unlock()
	if fail {
		return nil, errors.New("store busy")
	}
	return f.Memberships.Topics(ctx, user)
}

func (failingTopics) Topics(context.Context, string) ([]store.Subscription, error) {
	return nil, errors.New("store down")
}

// catchUpLog records the users a gateway asked to catch up.
type catchUpLog struct {
	mu    sync.Mutex
	users []string
}

func (c *catchUpLog) Request(_ context.Context, user string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.users = append(c.users, user)
	return nil
}

func (c *catchUpLog) asked() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.users)
}

// TestMembershipsCatchUpOnConnect: a user with topics is caught up once
// their topics are loaded, on their first connection only; one without
// topics is not.
func TestMembershipsCatchUpOnConnect(t *testing.T) {
	cu := &catchUpLog{}
	e := newEnv(t, func(c *Config) { withMemberships(c); c.CatchUp = cu })
	e.subscribe("ca", "t1")
	readUntilSynced(t, e.dial("ca", ""))
	readUntilSynced(t, e.dial("cb", "")) // no topics
	waitMembers(t, e.gw, "t1", "ca")
	eventually(t, "ca caught up", func() bool { return slices.Equal(cu.asked(), []string{"ca"}) })
	readUntilSynced(t, e.dial("ca", "")) // a second connection: no new load
	waitMembers(t, e.gw, "t1", "ca")
	if got := cu.asked(); !slices.Equal(got, []string{"ca"}) {
		t.Fatalf("asked %v, want ca once", got)
	}
}
