package pipeline

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// longSession is a session timeout far past the test's own guard (60s):
// a member that gets a crashed member's partitions got them by taking
// over its instance id, never because its session expired.
const longSession = 5 * time.Minute

func (e *env) staticRouter(group, instance string) *Router {
	e.tb.Helper()
	rt, err := NewRouter(RouterConfig{
		Brokers: e.addrs, Group: group, InstanceID: instance, Deliverer: newRecorder(true), Logger: quietLog,
		ClientOptions: []kgo.Opt{kgo.FetchMaxWait(200 * time.Millisecond), kgo.SessionTimeout(longSession)},
	})
	if err != nil {
		e.tb.Fatal(err)
	}
	return rt
}

// waitFor polls cond until it holds or the test's guard ends.
func (e *env) waitFor(what string, cond func() bool) {
	e.tb.Helper()
	for !cond() {
		select {
		case <-e.ctx.Done():
			e.tb.Fatalf("never: %s", what)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// TestStaticMemberTakesItsPartitionsBack: two gateways' routers share
// herald.deliveries; B crashes (its client closes without leaving, as a
// killed process's would) and a new process with B's instance id takes
// B's partitions back while B's session is still live, and A never gives
// up a partition.
//
// kfake treats a static member's first join (whose metadata carries no
// owned partitions) as changed metadata and rebalances, which Kafka does
// not (it skips the rebalance when the selected protocol is unchanged):
// so the test asserts what the other member keeps, not that it saw no
// new session.
func TestStaticMemberTakesItsPartitionsBack(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const group = "static-gw"
	a, b := e.staticRouter(group, "gw-a"), e.staticRouter(group, "gw-b")
	start(t, e.ctx, a.Run, a.Close)
	rb := start(t, e.ctx, b.Run, b.Close)
	split := func() bool {
		pa, _, _ := a.group.assignment()
		pb, _, _ := b.group.assignment()
		return a.Ready() == nil && b.Ready() == nil && len(pa) > 0 && len(pb) > 0 && len(pa)+len(pb) == 12
	}
	e.waitFor("A and B split the 12 partitions", split)
	ownedA, _, takenA := a.group.assignment()
	ownedB, _, _ := b.group.assignment()
	t.Logf("A owns %v, B owns %v", ownedA, ownedB)

	// B dies: no LeaveGroup, its session (5 min) stays live.
	b.closeOnce.Do(b.cl.Close)
	if err := rb.wait(t, e.ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("crashed B's Run = %v", err)
	}
	// B did not leave: the group still counts it (B2 below replaces it,
	// rather than joining next to a departed member).
	described, err := e.adm.DescribeGroups(e.ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var instances []string
	for _, m := range described[group].Members {
		if m.InstanceID != nil {
			instances = append(instances, *m.InstanceID)
		}
	}
	if slices.Sort(instances); !slices.Equal(instances, []string{"gw-a", "gw-b"}) {
		t.Fatalf("members after B's crash: %v, want gw-a and gw-b", instances)
	}

	b2 := e.staticRouter(group, "gw-b")
	if err := b2.Ready(); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("B2 Ready before Run = %v", err)
	}
	start(t, e.ctx, b2.Run, b2.Close)
	e.waitFor("B2 holds B's partitions", func() bool {
		owned, _, _ := b2.group.assignment()
		return b2.Ready() == nil && slices.Equal(owned, ownedB)
	})
	if owned, _, taken := a.group.assignment(); !slices.Equal(owned, ownedA) || taken != takenA {
		t.Fatalf("A's partitions changed across B's restart: %v (%d taken), was %v (%d taken)", owned, taken, ownedA, takenA)
	}
	if err := a.Ready(); err != nil {
		t.Fatalf("A not ready: %v", err)
	}
}

// TestReadyFollowsTheGroup: not ready before Run, while joining, and
// after Close; ready once assigned, also with nothing to own (more
// members than partitions: a group on a one-partition topic).
func TestReadyFollowsTheGroup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.adm.CreateTopic(e.ctx, 1, -1, nil, "one-part"); err != nil {
		t.Fatal(err)
	}
	names := e.names
	names.Deliveries = "one-part"
	newRouter := func(instance string) *Router {
		rt, err := NewRouter(RouterConfig{
			Brokers: e.addrs, Group: "ready-grp", InstanceID: instance, Topics: names, Deliverer: newRecorder(true), Logger: quietLog,
			ClientOptions: []kgo.Opt{kgo.FetchMaxWait(200 * time.Millisecond)},
		})
		if err != nil {
			t.Fatal(err)
		}
		return rt
	}
	a := newRouter("one-a")
	if err := a.Ready(); err == nil {
		t.Fatal("ready before Run")
	}
	start(t, e.ctx, a.Run, a.Close)
	e.waitFor("A assigned", func() bool { return a.Ready() == nil })
	if owned, _, _ := a.group.assignment(); len(owned) != 1 {
		t.Fatalf("A owns %v, want the one partition", owned)
	}

	b := newRouter("one-b")
	rb := start(t, e.ctx, b.Run, b.Close)
	e.waitFor("B joined", func() bool {
		_, sessions, _ := b.group.assignment()
		return sessions > 0
	})
	if err := b.Ready(); err != nil {
		t.Fatalf("B, joined with nothing to own, not ready: %v", err)
	}
	if owned, _, _ := b.group.assignment(); len(owned) != 0 {
		t.Fatalf("B owns %v, want nothing (A keeps the one partition)", owned)
	}
	b.Close()
	if err := rb.wait(t, e.ctx); err != nil && !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := b.Ready(); err == nil || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("B Ready after Close = %v", err)
	}
}

// TestReadyBeforeAssignment: a Router whose group cannot complete a join
// (its session timeout is below the broker's minimum, so every JoinGroup
// is refused) runs but never reports ready, and says why.
func TestReadyBeforeAssignment(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	rt, err := NewRouter(RouterConfig{
		Brokers: e.addrs, Group: "never-joins", InstanceID: "nj", Deliverer: newRecorder(true), Logger: quietLog,
		ClientOptions: []kgo.Opt{kgo.FetchMaxWait(200 * time.Millisecond), kgo.SessionTimeout(time.Second), kgo.HeartbeatInterval(300 * time.Millisecond)},
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, e.ctx, rt.Run, rt.Close)
	e.waitFor("the refused join reported", func() bool {
		err := rt.Ready()
		return err != nil && strings.Contains(err.Error(), "rejoining group never-joins")
	})
	if _, sessions, _ := rt.group.assignment(); sessions != 0 {
		t.Fatalf("%d sessions began", sessions)
	}
}

func TestInstanceIDValidated(t *testing.T) {
	t.Parallel()
	_, err := NewRouter(RouterConfig{Brokers: []string{"127.0.0.1:1"}, Deliverer: newRecorder(true), InstanceID: "has space"})
	if !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("NewRouter with a bad InstanceID: %v", err)
	}
}
