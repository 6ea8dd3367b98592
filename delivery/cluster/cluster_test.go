package cluster

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/api"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/pipeline"
)

// The Cluster is what the router and the API are given.
var (
	_ pipeline.Deliverer  = (*Cluster)(nil)
	_ api.UnreadPublisher = (*Cluster)(nil)
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestNewValidates(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no gateway id", Config{URL: "redis://127.0.0.1:6379/0"}},
		{"bad gateway id", Config{URL: "redis://127.0.0.1:6379/0", GatewayID: "gw 1"}},
		{"long gateway id", Config{URL: "redis://127.0.0.1:6379/0", GatewayID: string(make([]byte, 129))}},
		{"no redis", Config{GatewayID: "gw-1"}},
		{"bad url", Config{GatewayID: "gw-1", URL: "http://x"}},
		{"heartbeat not below ttl", Config{GatewayID: "gw-1", URL: "redis://127.0.0.1:6379/0", PresenceTTL: time.Second, Heartbeat: time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("got %v, want ErrInvalidConfig", err)
			}
		})
	}
}

func TestDefaultsAndChannels(t *testing.T) {
	c, err := New(Config{URL: "redis://127.0.0.1:6379/0", GatewayID: "gw-1"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if c.cfg.PresenceTTL != 30*time.Second || c.cfg.Heartbeat != 10*time.Second || c.cfg.KeyPrefix != "herald:" ||
		c.cfg.Timeout != time.Second || c.cfg.MaxPending != 65536 || c.cfg.BatchSize != 500 {
		t.Fatalf("defaults: %+v", c.cfg)
	}
	if c.Channel() != "gw:gw-1" || c.presenceKey("u-1") != "herald:presence:u-1" {
		t.Fatalf("default names: %q %q", c.Channel(), c.presenceKey("u-1"))
	}
	c2, err := New(Config{URL: "redis://127.0.0.1:6379/0", GatewayID: "gw-1", KeyPrefix: "t1:", PresenceTTL: 3 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := c2.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if c2.Channel() != "t1:gw:gw-1" || c2.presenceKey("u-1") != "t1:presence:u-1" || c2.cfg.Heartbeat != time.Second {
		t.Fatalf("prefixed: %q %q %v", c2.Channel(), c2.presenceKey("u-1"), c2.cfg.Heartbeat)
	}
}

// fakeLocal is a gateway stand-in for the tests that need no WebSocket.
type fakeLocal struct {
	mu        sync.Mutex
	users     map[string]bool
	delivered []uint64
	unread    []int64
}

func (f *fakeLocal) Deliver(_ context.Context, u string, n herald.Notification) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.users[u] {
		return false, nil
	}
	f.delivered = append(f.delivered, n.Seq)
	return true, nil
}

func (f *fakeLocal) PublishUnread(_ context.Context, u string, c int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.users[u] {
		f.unread = append(f.unread, c)
	}
}

func (f *fakeLocal) Present(u string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.users[u]
}

func (f *fakeLocal) LocalUsers(fn func(string)) {
	f.mu.Lock()
	var us []string
	for u := range f.users {
		us = append(us, u)
	}
	f.mu.Unlock()
	for _, u := range us {
		fn(u)
	}
}

// deadRedisURL points at a loopback port nothing listens on.
func deadRedisURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return "redis://" + addr + "/0?max_retries=1"
}

// With Redis down, Deliver still reaches local users, reports the others
// offline without an error (the router must not stall), and Run and Close
// neither hang nor fail loudly.
func TestRedisDownDegradesToLocal(t *testing.T) {
	local := &fakeLocal{users: map[string]bool{"here": true}}
	c, err := New(Config{URL: deadRedisURL(t), GatewayID: "gw-down", Local: local, Logger: quiet,
		PresenceTTL: 2 * time.Second, Heartbeat: 100 * time.Millisecond, Timeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- c.Run(ctx) }()

	before, skippedBefore := counter(c.m.redisErrors.WithLabelValues("route")), counter(c.m.routeSkipped)
	online, err := c.Deliver(ctx, "here", herald.Notification{Seq: 1, EventID: "e1"})
	if err != nil || !online {
		t.Fatalf("local user: online=%v err=%v", online, err)
	}
	online, err = c.Deliver(ctx, "elsewhere", herald.Notification{Seq: 1, EventID: "e2"})
	if err != nil || online {
		t.Fatalf("remote user with Redis down: online=%v err=%v", online, err)
	}
	c.PublishUnread(ctx, "here", 4)
	// The first failure pauses routing: the next calls skip Redis (unless
	// the machine is so slow that the cooldown passed in between).
	failed, skipped := counter(c.m.redisErrors.WithLabelValues("route"))-before, counter(c.m.routeSkipped)-skippedBefore
	if failed < 1 || failed+skipped != 3 {
		t.Fatalf("route failures %v, skipped %v", failed, skipped)
	}
	local.mu.Lock()
	if len(local.delivered) != 1 || local.delivered[0] != 1 || len(local.unread) != 1 || local.unread[0] != 4 {
		t.Fatalf("local got %v / %v", local.delivered, local.unread)
	}
	local.mu.Unlock()
	if err := c.Ping(ctx); err == nil {
		t.Fatal("Ping succeeded against a dead Redis")
	}
	c.UserOnline("here") // queued; the presence loop fails and keeps it
	if err := c.Close(); err == nil {
		t.Fatal("Close could not remove presence entries, yet reported no error")
	}
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := c.Run(ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
	if err2 := c.Close(); err2 == nil {
		t.Fatal("second Close must return the first result")
	}
	// After Close only the local gateway is reached, without touching Redis.
	before = counter(c.m.redisErrors.WithLabelValues("route"))
	if online, err := c.Deliver(ctx, "here", herald.Notification{Seq: 2, EventID: "e3"}); !online || err != nil {
		t.Fatalf("after Close: %v %v", online, err)
	}
	if counter(c.m.redisErrors.WithLabelValues("route")) != before {
		t.Fatal("Deliver after Close went to Redis")
	}
}

func TestRunNeedsLocalAndRunsOnce(t *testing.T) {
	c, err := New(Config{URL: deadRedisURL(t), GatewayID: "gw-x", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // Redis is down: the best-effort leave may fail
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := c.Run(ctx); !errors.Is(err, ErrNoLocal) {
		t.Fatalf("Run without a gateway: %v", err)
	}
	if err := c.Attach(nil); !errors.Is(err, ErrNoLocal) {
		t.Fatalf("Attach(nil): %v", err)
	}
	if err := c.Attach(&fakeLocal{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Attach(&fakeLocal{}); !errors.Is(err, ErrAttached) {
		t.Fatalf("second Attach: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := c.Run(context.Background()); !errors.Is(err, ErrRunning) {
		t.Fatalf("second Run: %v", err)
	}
}

// The presence queue is bounded: past MaxPending, changes are dropped and a
// full re-announce is requested instead.
func TestPresenceQueueBounded(t *testing.T) {
	c, err := New(Config{URL: deadRedisURL(t), GatewayID: "gw-b", Logger: quiet, MaxPending: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }() // Redis is down: the best-effort leave fails
	before := counter(c.m.presenceDropped)
	for _, u := range []string{"a", "b", "a", "c", "d", "e"} {
		c.UserOnline(u)
	}
	c.pmu.Lock()
	n := len(c.dirty)
	c.pmu.Unlock()
	if n != 3 || counter(c.m.presenceDropped)-before != 2 {
		t.Fatalf("pending %d, dropped %v", n, counter(c.m.presenceDropped)-before)
	}
	select {
	case <-c.resync:
	default:
		t.Fatal("no re-announce requested after a drop")
	}
}

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// Collectors go to Config.Registerer; two Clusters of one process share them.
func TestMetricsOnTheConfiguredRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(Config{URL: deadRedisURL(t), GatewayID: "gw-a", Registerer: reg, Local: &fakeLocal{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(Config{URL: deadRedisURL(t), GatewayID: "gw-b", Registerer: reg, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if a.m.redisErrors != b.m.redisErrors {
		t.Fatal("two clusters on one registry registered two sets of series")
	}
	a.m.presenceDropped.Inc()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, f := range families {
		found = found || f.GetName() == "herald_cluster_presence_dropped_total"
	}
	if !found {
		t.Fatal("herald_cluster_presence_dropped_total is not on the configured registry")
	}
	_ = a.Close() // Redis is down: the best-effort leave may fail
	if err := a.Run(context.Background()); !errors.Is(err, ErrClosed) || !errors.Is(err, lifecycle.ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
	_ = b.Close()
}
