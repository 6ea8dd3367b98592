package delivery

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/heraldhq/herald/store"
)

// fakeClock is the upgrade bucket's clock in tests: it moves only when
// told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// upgradeStatus dials as user and returns the HTTP status of the answer
// (101 for an upgrade, whose connection is closed at the test's end), its
// Retry-After and its JSON error.
func (e *env) upgradeStatus(user string) (status int, retryAfter, errMsg string) {
	e.t.Helper()
	c, resp, err := e.tryDial(user, "")
	if err == nil {
		e.t.Cleanup(func() { _ = c.Close() })
		return resp.StatusCode, "", ""
	}
	if resp == nil {
		e.t.Fatalf("dial %s: %v", user, err)
		return 0, "", ""
	}
	defer func() { _ = resp.Body.Close() }()
	b, _ := io.ReadAll(resp.Body)
	var body struct {
		Error string `json:"error"`
	}
	if err := json.Unmarshal(b, &body); err != nil || body.Error == "" {
		e.t.Fatalf("dial %s: %d with body %q, want the JSON error", user, resp.StatusCode, b)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After"), body.Error
}

// A burst beyond the upgrade bucket is refused with 503, a Retry-After in
// [1, UpgradeRetryMax] seconds and the JSON error; upgrades succeed again
// once the (injected) clock has refilled the bucket, and only as many as
// it refilled.
func TestUpgradeBucketRefusesTheExcess(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	e := newEnv(t, func(c *Config) {
		c.UpgradeRate, c.UpgradeBurst, c.UpgradeRetryMax = 10, 3, 7*time.Second
		c.Registerer = prometheus.NewRegistry() // counters of this test only
	})
	e.gw.adm.now = clock.Now
	user := 0
	next := func() string { user++; return fmt.Sprintf("storm-%d", user) }

	for i := range 3 {
		if st, _, _ := e.upgradeStatus(next()); st != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade %d of the burst: %d", i, st)
		}
	}
	for range 5 {
		st, ra, msg := e.upgradeStatus(next())
		if st != http.StatusServiceUnavailable {
			t.Fatalf("upgrade past the burst: %d, want 503", st)
		}
		secs, err := strconv.Atoi(ra)
		if err != nil || secs < 1 || secs > 7 {
			t.Fatalf("Retry-After %q, want whole seconds in [1, 7] (%s)", ra, msg)
		}
	}
	if got := counterValue(e.gw.m.refused.WithLabelValues(refusedRate)); got != 5 {
		t.Errorf("upgrades_refused_total{reason=rate} = %v, want 5", got)
	}

	clock.Advance(100 * time.Millisecond) // one token at 10/s
	if st, _, _ := e.upgradeStatus(next()); st != http.StatusSwitchingProtocols {
		t.Fatalf("after one token's refill: %d", st)
	}
	if st, _, _ := e.upgradeStatus(next()); st != http.StatusServiceUnavailable {
		t.Fatalf("second upgrade after one token's refill: %d, want 503", st)
	}

	clock.Advance(time.Hour) // refills to the burst, not beyond
	for i := range 3 {
		if st, _, _ := e.upgradeStatus(next()); st != http.StatusSwitchingProtocols {
			t.Fatalf("upgrade %d after a full refill: %d", i, st)
		}
	}
	if st, _, _ := e.upgradeStatus(next()); st != http.StatusServiceUnavailable {
		t.Fatalf("upgrade past the refilled burst: %d, want 503", st)
	}
}

// Retry-After is drawn from [lo, lo+spread] capped at UpgradeRetryMax: lo
// is the time until the bucket's next token (at least 1 s), spread the time
// the bucket needs for the clients refused in the last second or two.
func TestUpgradeRetryAfterJitter(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1_000_000, 0)}
	cfg := Config{UpgradeRate: 0.25, UpgradeBurst: 1, UpgradeRetryMax: 10 * time.Second}
	a := newAdmission(&cfg)
	a.now = clock.Now
	var top bool // draw the range's top, else its bottom
	a.rnd = func(n int) int {
		if top {
			return n - 1
		}
		return 0
	}
	if ok, _, _ := a.admit(); !ok {
		t.Fatal("first upgrade refused")
	}
	// The next token is 4 s away; each refusal adds 4 s (at 0.25/s) of
	// spread, up to the 10 s cap.
	for i, want := range []struct {
		top bool
		ra  int
	}{{true, 4 + 4}, {true, 10}, {false, 4}} {
		top = want.top
		if ok, ra, _ := a.admit(); ok || ra != want.ra {
			t.Errorf("refusal %d: admitted %v, Retry-After %d; want refused, %d", i+1, ok, ra, want.ra)
		}
	}
	// Two seconds on the refusals are forgotten: one refusal, 4 s of
	// spread above the 1 s still to go.
	clock.Advance(3 * time.Second)
	top = true
	if ok, ra, _ := a.admit(); ok || ra != 5 {
		t.Errorf("1 s before the token: admitted %v, Retry-After %d; want refused, 5", ok, ra)
	}
	top = false
	if ok, ra, _ := a.admit(); ok || ra != 1 {
		t.Errorf("1 s before the token: admitted %v, Retry-After %d; want refused, 1", ok, ra)
	}
	clock.Advance(time.Second)
	if ok, _, _ := a.admit(); !ok {
		t.Error("refused once the token is back")
	}
	// No limit (New turns a negative rate into +Inf): no bucket at all.
	open := newAdmission(&Config{UpgradeRate: math.Inf(1)})
	for range 100 {
		if ok, _, _ := open.admit(); !ok {
			t.Fatal("refused without a limit")
		}
	}
}

// slotInbox blocks LastSeq (the first store read of a replay) until gate
// is closed, and counts each user's LastSeq calls.
type slotInbox struct {
	store.Inbox
	gate chan struct{}

	mu    sync.Mutex
	calls map[string]int
}

func (s *slotInbox) LastSeq(ctx context.Context, user string) (uint64, error) {
	s.mu.Lock()
	if s.calls == nil {
		s.calls = map[string]int{}
	}
	s.calls[user]++
	s.mu.Unlock()
	select {
	case <-s.gate:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	return s.Inbox.LastSeq(ctx, user)
}

func (s *slotInbox) callsOf(user string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[user]
}

func gaugeValue(g prometheus.Gauge) float64 {
	var m dto.Metric
	if err := g.Write(&m); err != nil {
		panic(err)
	}
	return m.GetGauge().GetValue()
}

// With one replay slot, a second connection keeps its socket but does not
// read the store while the first replay holds the slot; it replays once
// the slot is free.
func TestReplaySlotsBoundConcurrentReplays(t *testing.T) {
	in := &slotInbox{gate: make(chan struct{})}
	e := newEnv(t, func(c *Config) {
		in.Inbox = c.Store
		c.Store, c.MaxReplays, c.ReplayWait = in, 1, time.Hour
		c.PositionInterval = -1 // only replays read the store
		c.Registerer = prometheus.NewRegistry()
	})
	e.publish("bob", 2)
	alice := e.dial("alice", "")
	eventually(t, "alice's replay to read the store", func() bool { return in.callsOf("alice") == 1 })
	bob := e.dial("bob", "after=0") // upgraded: the socket is open
	eventually(t, "bob to wait for a slot", func() bool { return gaugeValue(e.gw.m.replaysWaiting) == 1 })
	if n := in.callsOf("bob"); n != 0 {
		t.Fatalf("bob's replay read the store %d times while waiting for a slot", n)
	}
	close(in.gate)
	if _, f := readUntilSynced(t, alice); f.Seq != 0 {
		t.Errorf("alice synced at %d", f.Seq)
	}
	if seqs, f := readUntilSynced(t, bob); len(seqs) != 2 || f.Seq != 2 {
		t.Errorf("bob replayed %v, synced at %d; want [1 2], 2", seqs, f.Seq)
	}
	if got := gaugeValue(e.gw.m.replaysWaiting); got != 0 {
		t.Errorf("replays_waiting = %v after both replays", got)
	}
}

// A connection that waits ReplayWait without a slot is closed with 1013,
// without having read the store; one whose client leaves while waiting
// stops waiting at once.
func TestReplayWaitEndsWith1013(t *testing.T) {
	in := &slotInbox{gate: make(chan struct{})}
	e := newEnv(t, func(c *Config) {
		in.Inbox = c.Store
		c.Store, c.MaxReplays, c.ReplayWait = in, 1, 20*time.Millisecond
		c.PositionInterval = -1
		c.Registerer = prometheus.NewRegistry()
	})
	defer close(in.gate)
	_ = e.dial("alice", "")
	eventually(t, "alice's replay to hold the slot", func() bool { return in.callsOf("alice") == 1 })
	bob := e.dial("bob", "")
	if code := closeCode(t, bob); code != CloseTryAgainLater {
		t.Fatalf("close code %d, want 1013", code)
	}
	if n := in.callsOf("bob"); n != 0 {
		t.Errorf("bob's replay read the store %d times", n)
	}
	eventually(t, "the replay_wait disconnect to be counted", func() bool {
		return counterValue(e.gw.m.disconnects.WithLabelValues("replay_wait")) == 1
	})
}

// A client that goes away while waiting for a replay slot releases its
// wait (and goroutine) at once rather than after ReplayWait.
func TestReplayWaitEndsWhenTheClientLeaves(t *testing.T) {
	in := &slotInbox{gate: make(chan struct{})}
	e := newEnv(t, func(c *Config) {
		in.Inbox = c.Store
		c.Store, c.MaxReplays, c.ReplayWait = in, 1, time.Hour
		c.PositionInterval = -1
		c.Registerer = prometheus.NewRegistry()
	})
	defer close(in.gate)
	_ = e.dial("alice", "")
	eventually(t, "alice's replay to hold the slot", func() bool { return in.callsOf("alice") == 1 })
	bob := e.dial("bob", "")
	eventually(t, "bob to wait for a slot", func() bool { return gaugeValue(e.gw.m.replaysWaiting) == 1 })
	_ = bob.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	_ = bob.Close()
	eventually(t, "bob's wait to end", func() bool { return gaugeValue(e.gw.m.replaysWaiting) == 0 })
	eventually(t, "bob's connection to go", func() bool { return e.gw.openConns("bob") == 0 })
	if n := in.callsOf("bob"); n != 0 {
		t.Errorf("bob's replay read the store %d times", n)
	}
}

// While MaxReplayQueue connections wait for a replay slot, further
// upgrades are refused before the upgrade (503, Retry-After), counted as
// replay_backlog; once the replays move on, upgrades are admitted again.
func TestReplayBacklogRefusesUpgrades(t *testing.T) {
	in := &slotInbox{gate: make(chan struct{})}
	e := newEnv(t, func(c *Config) {
		in.Inbox = c.Store
		c.Store, c.MaxReplays, c.MaxReplayQueue, c.ReplayWait = in, 1, 1, time.Hour
		c.PositionInterval = -1
		c.Registerer = prometheus.NewRegistry()
	})
	alice := e.dial("alice", "")
	eventually(t, "alice's replay to hold the slot", func() bool { return in.callsOf("alice") == 1 })
	bob := e.dial("bob", "")
	eventually(t, "bob to wait for a slot", func() bool { return gaugeValue(e.gw.m.replaysWaiting) == 1 })
	st, ra, _ := e.upgradeStatus("carol")
	if secs, err := strconv.Atoi(ra); st != http.StatusServiceUnavailable || err != nil || secs < 1 {
		t.Fatalf("upgrade with a full replay queue: %d, Retry-After %q; want 503 with whole seconds", st, ra)
	}
	if got := counterValue(e.gw.m.refused.WithLabelValues(refusedBacklog)); got != 1 {
		t.Errorf("upgrades_refused_total{reason=replay_backlog} = %v, want 1", got)
	}
	close(in.gate)
	readUntilSynced(t, alice)
	readUntilSynced(t, bob)
	if st, _, _ := e.upgradeStatus("carol"); st != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade once the queue drained: %d", st)
	}
}
