//go:build integration

package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/internal/stacktest"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/memory"
)

var testSecret = []byte("cluster-test-secret-0123456789abcdef")

// redisClient connects to the test Redis with the stack's URL, password and
// TLS (internal/stacktest), failing the test if it is not reachable (these
// tests never skip).
func redisClient(t testing.TB, name string) *redis.Client {
	t.Helper()
	opt := stacktest.RedisOptions()
	opt.ClientName = name
	rc := redis.NewClient(opt)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := rc.Ping(ctx).Err(); err != nil {
		_ = rc.Close()
		t.Fatalf("redis is unreachable (start it with scripts/stack/stack.sh up): %v; settings: %s", err, stacktest.Describe())
	}
	t.Cleanup(func() { _ = rc.Close() })
	return rc
}

func randomID(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// fleet is one test's gateways: a shared inbox (like Cassandra) and a
// random key prefix, so tests never see each other's keys.
type fleet struct {
	t      testing.TB
	prefix string
	store  *memory.Store
	w      store.Writer  // the one writer of the fleet's inbox, as the enricher's
	rc     *redis.Client // for inspecting Redis
}

func newFleet(t testing.TB) *fleet {
	f := &fleet{t: t, prefix: randomID("t") + ":", store: memory.New(), rc: redisClient(t, "")}
	w, err := f.store.Fence(context.Background(), "test")
	if err != nil {
		t.Fatal(err)
	}
	f.w = w
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var keys []string
		iter := f.rc.Scan(ctx, 0, f.prefix+"*", 100).Iterator()
		for iter.Next(ctx) {
			keys = append(keys, iter.Val())
		}
		if len(keys) > 0 {
			f.rc.Del(ctx, keys...)
		}
	})
	return f
}

// node is a gateway and its Cluster behind an httptest server.
type node struct {
	f     *fleet
	id    string
	gw    *delivery.Gateway
	cl    *Cluster
	srv   *httptest.Server
	wsURL string
	stop  context.CancelFunc // ends Run
	ran   chan error
}

// newNode starts a gateway wired as in production; tweak adjusts the
// cluster config (Redis is set by Conn unless tweak sets a client).
func (f *fleet) newNode(tweak func(*Config)) *node {
	t := f.t
	t.Helper()
	n := &node{f: f, id: randomID("gw-"), ran: make(chan error, 1)}
	// The stack's URL, password and TLS: the Cluster makes (and closes) its
	// own client, as in production.
	cfg := Config{Conn: stacktest.Redis(), GatewayID: n.id, KeyPrefix: f.prefix, Logger: quiet}
	if tweak != nil {
		tweak(&cfg)
	}
	cl, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v, err := auth.NewVerifier(auth.Config{HMACSecrets: [][]byte{testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	// No periodic position round: a lost forward is filled only by the
	// checks the cluster asks for (delivery/position.go), which the tests
	// are to show.
	gw, err := delivery.New(delivery.Config{Store: f.store, Verifier: v, Presence: cl, Unread: cl, Memberships: f.store, Preferences: f.store,
		PositionInterval: -1, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	if err := cl.Attach(gw); err != nil {
		t.Fatal(err)
	}
	n.gw, n.cl = gw, cl
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", gw)
	n.srv = httptest.NewServer(mux)
	n.wsURL = "ws" + strings.TrimPrefix(n.srv.URL, "http") + "/v1/ws"
	ctx, cancel := context.WithCancel(context.Background())
	n.stop = cancel
	go func() { n.ran <- cl.Run(ctx) }()
	t.Cleanup(func() {
		n.crash()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		if err := gw.Shutdown(sctx); err != nil {
			t.Errorf("gateway Shutdown: %v", err)
		}
		n.srv.Close()
		if err := cl.Close(); err != nil {
			t.Errorf("cluster Close: %v", err)
		}
	})
	return n
}

// crash ends Run without Close: heartbeats and the subscription stop, the
// presence entries stay until they expire. Idempotent.
func (n *node) crash() {
	n.stop()
	if err, ok := <-n.ran; ok {
		if err != nil {
			n.f.t.Errorf("Run: %v", err)
		}
		close(n.ran)
	}
}

// dial connects user to this gateway and reads through the synced frame.
func (n *node) dial(user string) *websocket.Conn {
	n.f.t.Helper()
	return n.dialQuery(user, "")
}

// dialQuery is dial with more of the query (e.g. broadcasts=live).
func (n *node) dialQuery(user, query string) *websocket.Conn {
	t := n.f.t
	t.Helper()
	tok, err := auth.Mint(testSecret, user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	u := n.wsURL + "?token=" + tok
	if query != "" {
		u += "&" + query
	}
	c, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if resp != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s on %s: %v", user, n.id, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	for {
		if fr := read(t, c); fr.Type == "synced" {
			return c
		}
	}
}

// waitListed waits until the presence registry lists (or no longer lists)
// node n for user.
func (f *fleet) waitListed(via *node, user string, n *node, listed bool) {
	f.t.Helper()
	eventually(f.t, fmt.Sprintf("%s listed=%v for %s", n.id, listed, user), func() bool {
		gws, err := via.cl.lookup(context.Background(), user)
		if err != nil {
			f.t.Fatal(err)
		}
		has := false
		for _, g := range gws {
			has = has || g == n.id
		}
		return has == listed
	})
}

// appendOne stores one notification for user, as the enricher would.
func (f *fleet) appendOne(user string) herald.Notification {
	f.t.Helper()
	res, err := f.w.Append(context.Background(), []herald.Notification{{
		ID: herald.NewID(time.Now()), EventID: randomID("evt-"), Type: "mention", Priority: herald.PriorityNormal,
		Title: "hi", CreatedAt: time.Now().UTC(), UserID: user,
	}})
	if err != nil {
		f.t.Fatal(err)
	}
	return res[0].Notification
}

type frame struct {
	Type         string               `json:"type"`
	Notification *herald.Notification `json:"notification"`
	Broadcast    *herald.Broadcast    `json:"broadcast"`
	Seq          uint64               `json:"seq"`
	Count        int64                `json:"count"`
}

func read(t testing.TB, c *websocket.Conn) frame {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, b, err := c.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return f
}

// eventually polls cond until it holds or the failure guard expires.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func syncPresence(t testing.TB, n *node) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := n.cl.syncPresence(ctx); err != nil {
		t.Fatal(err)
	}
}

// lookup lists the gateways holding userID whose entry has not expired
// (the read half of Deliver's routing).
func (c *Cluster) lookup(ctx context.Context, userID string) ([]string, error) {
	return c.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key: c.presenceKey(userID), ByScore: true,
		Start: fmt.Sprint(time.Now().UnixMilli()), Stop: "+inf",
	}).Result()
}

// syncPresence has the presence loop write the pending changes now and
// waits for it. It needs Run.
func (c *Cluster) syncPresence(ctx context.Context) error {
	ack := make(chan struct{})
	select {
	case c.syncReq <- ack:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ack:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
