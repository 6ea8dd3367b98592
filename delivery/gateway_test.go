package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/store"
)

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{}); !errors.Is(err, ErrNoStore) {
		t.Fatalf("no store: %v", err)
	}
	e := newEnv(t, nil)
	if _, err := New(Config{Store: e.store}); !errors.Is(err, ErrNoVerifier) {
		t.Fatalf("no verifier: %v", err)
	}
	c := e.gw.cfg
	if c.ReplayLimit != 100 || c.MaxMessageBytes != 4<<10 || c.MaxQueueBytes != 1<<20 ||
		c.PingInterval != 25*time.Second || c.Shards != 64 || c.PingLoops != 4 {
		t.Fatalf("defaults not applied: %+v", c)
	}
}

func TestFanoutToUsersConnectionsOnly(t *testing.T) {
	e := newEnv(t, nil)
	a1, a2, b := e.dial("alice", ""), e.dial("alice", ""), e.dial("bob", "")
	for _, c := range []*websocket.Conn{a1, a2, b} {
		if seqs, synced := readUntilSynced(t, c); len(seqs) != 0 || synced.Seq != 0 || synced.Unread != 0 {
			t.Fatalf("fresh user: replay %v, %v", seqs, synced)
		}
	}
	if !e.gw.HasLocal("alice") || e.gw.HasLocal("carol") || e.gw.ConnCount() != 3 {
		t.Fatalf("HasLocal/ConnCount wrong: %v %v %d", e.gw.HasLocal("alice"), e.gw.HasLocal("carol"), e.gw.ConnCount())
	}
	if online, err := e.gw.Deliver(context.Background(), "carol", herald.Notification{Seq: 1}); online || err != nil {
		t.Fatalf("Deliver to offline user = %v, %v", online, err)
	}
	sent := e.publish("alice", 3)
	for _, c := range []*websocket.Conn{a1, a2} {
		f := read(t, c)
		if f.Type != "notification" || f.Notification.ID != sent[0].ID || f.Notification.Title != "hello" || f.Notification.Prev != 0 {
			t.Fatalf("first frame %+v, want %+v", f.Notification, sent[0])
		}
		if got := readSeqs(t, c, 2); !slices.Equal(got, []uint64{2, 3}) {
			t.Fatalf("alice got %v", got)
		}
	}
	e.publish("bob", 1)
	if f := read(t, b); f.Type != "notification" || f.Notification.Seq != 1 || f.Notification.EventID == sent[0].EventID {
		t.Fatalf("bob's first frame is %+v: he saw alice's notification", f.Notification)
	}
}

func TestResumeAfterReplaysMissingThenLive(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ReplayPageSize = 3 }) // several pages
	appendN(t, e.store, "alice", 10)
	c := e.dial("alice", "after=4")
	seqs, synced := readUntilSynced(t, c)
	if !slices.Equal(seqs, seqRange(5, 10)) || synced.Seq != 10 || synced.Unread != 10 {
		t.Fatalf("replay %v then %v", seqs, synced)
	}
	e.publish("alice", 2)
	if got := readSeqs(t, c, 2); !slices.Equal(got, []uint64{11, 12}) {
		t.Fatalf("live %v", got)
	}
	// after=0 replays everything; after beyond the head restarts at the head.
	if seqs, synced := readUntilSynced(t, e.dial("alice", "after=0")); !slices.Equal(seqs, seqRange(1, 12)) || synced.Seq != 12 {
		t.Fatalf("after=0: %v %v", seqs, synced)
	}
	c = e.dial("alice", "after=99")
	if seqs, synced := readUntilSynced(t, c); len(seqs) != 0 || synced.Seq != 12 {
		t.Fatalf("after=99: %v %v", seqs, synced)
	}
	e.publish("alice", 1)
	if got := readSeqs(t, c, 1); got[0] != 13 {
		t.Fatalf("live after reset: %v", got)
	}
}

func TestNoAfterReplaysUnreadOnly(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.ReplayLimit = 2 })
	appendN(t, e.store, "alice", 5)
	if _, err := e.store.MarkRead(context.Background(), "alice", []uint64{2, 4}); err != nil {
		t.Fatal(err)
	}
	c := e.dial("alice", "")
	seqs, synced := readUntilSynced(t, c)
	// Unread 1,3,5, oldest first, at most ReplayLimit; live resumes at the head.
	if !slices.Equal(seqs, []uint64{1, 3}) || synced.Seq != 5 || synced.Unread != 3 {
		t.Fatalf("replay %v then %v", seqs, synced)
	}
	e.publish("alice", 1)
	if got := readSeqs(t, c, 1); got[0] != 6 {
		t.Fatalf("live %v", got)
	}
}

// gatedInbox blocks the first List of a replay until the test has
// published more, either before or after the underlying read.
type gatedInbox struct {
	store.Inbox
	readFirst bool // read the store, then block
	once      sync.Once
	entered   chan struct{}
	release   chan struct{}
}

func (g *gatedInbox) List(ctx context.Context, user string, after uint64, limit int, unreadOnly bool) ([]herald.Notification, error) {
	first := false
	g.once.Do(func() { first = true })
	wait := func() error {
		close(g.entered)
		select {
		case <-g.release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if first && !g.readFirst {
		if err := wait(); err != nil {
			return nil, err
		}
	}
	ns, err := g.Inbox.List(ctx, user, after, limit, unreadOnly)
	if first && g.readFirst {
		if err := wait(); err != nil {
			return nil, err
		}
	}
	return ns, err
}

// Notifications published while the replay reads the store arrive exactly
// once and in order, whether the store read sees them or not, and even if
// one of them never reaches the gateway live.
func TestReplayLiveSeam(t *testing.T) {
	for _, tc := range []struct {
		name      string
		readFirst bool
		drop      uint64 // a live notification lost on the way (0: none)
	}{
		{"store read after publish", false, 0},
		{"store read before publish", true, 0},
		{"store read before publish, one lost live", true, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := &gatedInbox{readFirst: tc.readFirst, entered: make(chan struct{}), release: make(chan struct{})}
			e := newEnv(t, func(c *Config) { gate.Inbox = c.Store; c.Store = gate })
			appendN(t, e.store, "alice", 5)
			c := e.dial("alice", "after=2")
			<-gate.entered // the connection is registered and replaying
			for _, n := range appendN(t, e.store, "alice", 3) {
				if n.Seq == tc.drop {
					continue
				}
				if online, err := e.gw.Deliver(context.Background(), "alice", n); !online || err != nil {
					t.Fatalf("Deliver during replay = %v, %v", online, err)
				}
			}
			close(gate.release)
			seqs, synced := readUntilSynced(t, c)
			if !slices.Equal(seqs, seqRange(3, 8)) || synced.Seq != 8 || synced.Unread != 8 {
				t.Fatalf("replay %v then %v, want 3..8 then synced(8,8)", seqs, synced)
			}
			e.publish("alice", 1)
			if got := readSeqs(t, c, 1); got[0] != 9 {
				t.Fatalf("live after seam: %v", got)
			}
		})
	}
}

func TestLiveGapFilledFromStore(t *testing.T) {
	e := newEnv(t, nil)
	c := e.dial("alice", "")
	readUntilSynced(t, c)
	ns := appendN(t, e.store, "alice", 4)
	// 1 and 2 were lost between gateways; 3 reveals the gap (prev 2 > 0).
	for _, i := range []int{2, 1, 2, 3, 0} {
		if online, err := e.gw.Deliver(context.Background(), "alice", ns[i]); !online || err != nil {
			t.Fatalf("Deliver = %v, %v", online, err)
		}
	}
	if got := readSeqs(t, c, 4); !slices.Equal(got, seqRange(1, 4)) {
		t.Fatalf("got %v, want 1..4 once each", got)
	}
	e.publish("alice", 1)
	if got := readSeqs(t, c, 1); got[0] != 5 {
		t.Fatalf("after the fill: %v (a duplicate slipped through?)", got)
	}
	// A gap the inbox cannot fill (6..9 not stored) does not hold delivery up.
	for _, n := range []herald.Notification{{Seq: 10, Prev: 9}, {Seq: 11, Prev: 10}} {
		if _, err := e.gw.Deliver(context.Background(), "alice", n); err != nil {
			t.Fatal(err)
		}
	}
	if got := readSeqs(t, c, 2); !slices.Equal(got, []uint64{10, 11}) {
		t.Fatalf("after an unfillable gap: %v", got)
	}
}

type unreadLog struct {
	mu    sync.Mutex
	calls []string
}

func (u *unreadLog) PublishUnread(_ context.Context, user string, n int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.calls = append(u.calls, fmt.Sprintf("%s=%d", user, n))
}

func (u *unreadLog) get() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return slices.Clone(u.calls)
}

// Config.Unread replaces local fan-out (e.g. by a cross-gateway one).
func TestUnreadHook(t *testing.T) {
	hook := &unreadLog{}
	e := newEnv(t, func(c *Config) { c.Unread = hook })
	appendN(t, e.store, "alice", 2)
	c := e.dial("alice", "")
	readUntilSynced(t, c)
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"read","seqs":[2]}`)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the hook", func() bool { return len(hook.get()) == 1 })
	if got := hook.get(); got[0] != "alice=1" {
		t.Fatalf("hook got %v", got)
	}
	// The hook's fan-out reaches this gateway through PublishUnread.
	e.gw.PublishUnread(context.Background(), "alice", 1)
	if f := read(t, c); f.Type != "unread" || f.Count != 1 {
		t.Fatalf("got %v", f)
	}
}

func TestReadFrameUpdatesEveryConnection(t *testing.T) {
	e := newEnv(t, nil)
	appendN(t, e.store, "alice", 3)
	a1, a2 := e.dial("alice", ""), e.dial("alice", "")
	readUntilSynced(t, a1)
	readUntilSynced(t, a2)
	if err := a1.WriteMessage(websocket.TextMessage, []byte(`{"type":"read","seqs":[1,2,2,42]}`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{a1, a2} {
		if f := read(t, c); f.Type != "unread" || f.Count != 1 {
			t.Fatalf("got %v, want unread(1)", f)
		}
	}
	if n, _ := e.store.UnreadCount(context.Background(), "alice"); n != 1 {
		t.Fatalf("store unread = %d", n)
	}
	if err := a2.WriteMessage(websocket.TextMessage, []byte(`{"type":"read","all":true}`)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*websocket.Conn{a1, a2} {
		if f := read(t, c); f.Type != "unread" || f.Count != 0 {
			t.Fatalf("got %v, want unread(0)", f)
		}
	}
	if ns, _ := e.store.List(context.Background(), "alice", 0, 0, true); len(ns) != 0 {
		t.Fatalf("still unread: %v", ns)
	}
}

// A client that stops reading is cut with 4008 once its queue overflows;
// the user's other connection keeps receiving everything.
func TestSlowReaderCut(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxQueueBytes = 64 << 10 })
	fast, slow := e.dial("alice", ""), e.dial("alice", "")
	readUntilSynced(t, fast)
	readUntilSynced(t, slow)
	before := counterValue(e.gw.m.disconnects.WithLabelValues("too_slow"))

	last := floodUntilCut(t, e, fast)
	e.publish("alice", 1)
	if got := readSeqs(t, fast, 1); got[0] != last+1 {
		t.Fatalf("fast reader after the cut: %v", got)
	}
	// The slow client reads what reached it, in order, then the 4008.
	var want uint64 = 1
	for {
		f, err := tryRead(slow)
		if err != nil {
			var ce *websocket.CloseError
			if !errors.As(err, &ce) || ce.Code != CloseTooSlow {
				t.Fatalf("slow reader ended with %v, want close 4008", err)
			}
			break
		}
		if f.Type != "notification" || f.Notification.Seq != want {
			t.Fatalf("slow reader got %v, want n%d", f, want)
		}
		want++
	}
	if want > last {
		t.Fatalf("slow reader received all %d notifications: never cut", last)
	}
	eventually(t, "the disconnect metric", func() bool {
		return counterValue(e.gw.m.disconnects.WithLabelValues("too_slow")) == before+1
	})
}

func TestHandshakeErrors(t *testing.T) {
	e := newEnv(t, nil)
	expired, err := mintExpired("alice")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, query string
		header      http.Header
		status      int
	}{
		{"no token", "", nil, http.StatusUnauthorized},
		{"bad token", "token=abc.def.ghi", nil, http.StatusUnauthorized},
		{"expired token", "token=" + expired, nil, http.StatusUnauthorized},
		{"bad after", "token=" + token(t, "alice") + "&after=-1", nil, http.StatusBadRequest},
		{"foreign origin", "token=" + token(t, "alice"), http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"not a websocket", "token=" + token(t, "alice"), nil, http.StatusBadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			u := e.wsURL + "?" + tc.query
			var resp *http.Response
			if tc.name == "not a websocket" {
				resp, err = http.Get(e.srv.URL + "/v1/ws?" + tc.query)
				if err != nil {
					t.Fatal(err)
				}
			} else {
				var c *websocket.Conn
				c, resp, err = websocket.DefaultDialer.Dial(u, tc.header)
				if err == nil {
					_ = c.Close()
					t.Fatal("upgrade succeeded")
				}
			}
			defer resp.Body.Close()
			var body struct{ Error string }
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || json.Unmarshal(b, &body) != nil || body.Error == "" {
				t.Fatalf("got %d %s, want %d with a JSON error", resp.StatusCode, b, tc.status)
			}
		})
	}
}

// A connection ends with 4001 when its token expires.
func TestTokenExpiryCloses4001(t *testing.T) {
	secret := testSecret
	v, err := auth.NewVerifier(auth.Config{HMACSecrets: [][]byte{secret}, Leeway: -1})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) {
		c.Verifier = v
		c.PingInterval = 20 * time.Millisecond
		c.Shards = 1
	})
	tok, err := auth.Mint(secret, "alice", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, resp, err := websocket.DefaultDialer.Dial(e.wsURL+"?token="+tok, nil)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Close() }()
	readUntilSynced(t, c)
	if code := closeCode(t, c); code != CloseUnauthorized {
		t.Fatalf("close %d, want 4001", code)
	}
	// A verifier without expiry information never ends connections.
	g := &Gateway{cfg: Config{Verifier: plainVerifier{v}}}
	if user, exp, err := g.verify(token(t, "alice")); err != nil || user != "alice" || exp != 0 {
		t.Fatalf("plain verifier: %q, %d, %v", user, exp, err)
	}
}

type plainVerifier struct{ v *auth.Verifier }

func (p plainVerifier) Verify(tok string) (string, error) { return p.v.Verify(tok) }

func TestMaxConnsPerUser(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConnsPerUser = 2 })
	readUntilSynced(t, e.dial("alice", ""))
	readUntilSynced(t, e.dial("alice", ""))
	_, resp, err := e.tryDial("alice", "")
	if resp != nil {
		defer resp.Body.Close()
	}
	if err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection: %v %v", resp, err)
	}
	readUntilSynced(t, e.dial("bob", "")) // other users are not affected
}

func TestOriginPolicy(t *testing.T) {
	for _, tc := range []struct {
		allowed []string
		origin  string
		ok      bool
	}{
		{nil, "", true},
		{nil, "http://HOST", true}, // HOST is replaced by the server's host
		{nil, "https://evil.example", false},
		{[]string{"*"}, "https://evil.example", true},
		{[]string{"https://app.example"}, "https://app.example", true},
		{[]string{"https://app.example/"}, "https://APP.example", true},
		{[]string{"https://app.example"}, "http://app.example", false},
		{[]string{"app.example"}, "http://app.example", true},
		{[]string{"app.example"}, "null", false},
		{[]string{"app.example:8443"}, "https://app.example:8443", true},
		{[]string{"app.example"}, "https://app.example:8443", false},
	} {
		g := &Gateway{origins: origin.MustParse(tc.allowed...)}
		r, _ := http.NewRequest("GET", "http://gw.example:8080/v1/ws", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", strings.Replace(tc.origin, "HOST", "gw.example:8080", 1))
		}
		if got := g.originAllowed(r); got != tc.ok {
			t.Errorf("allowed=%v origin=%q: %v, want %v", tc.allowed, tc.origin, got, tc.ok)
		}
	}
}

func TestOversizedFrameCloses1009(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxMessageBytes = 1024 })
	c := e.dial("alice", "")
	readUntilSynced(t, c)
	big := `{"type":"read","seqs":[` + strings.Repeat("1,", 1000) + `1]}`
	if err := c.WriteMessage(websocket.TextMessage, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, c); code != websocket.CloseMessageTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}
	eventually(t, "the connection to go", func() bool { return e.gw.ConnCount() == 0 })
}

func TestBadClientFramesClose(t *testing.T) {
	e := newEnv(t, nil)
	for _, tc := range []struct {
		name string
		typ  int
		msg  string
		code int
	}{
		{"not json", websocket.TextMessage, "hello", CloseInvalidPayload},
		{"unknown type", websocket.TextMessage, `{"type":"subscribe"}`, CloseUnsupportedData},
		{"read without seqs", websocket.TextMessage, `{"type":"read"}`, CloseInvalidPayload},
		{"negative seq", websocket.TextMessage, `{"type":"read","seqs":[-1]}`, CloseInvalidPayload},
		{"binary", websocket.BinaryMessage, `{"type":"read","all":true}`, CloseUnsupportedData},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := e.dial("alice", "")
			readUntilSynced(t, c)
			if err := c.WriteMessage(tc.typ, []byte(tc.msg)); err != nil {
				t.Fatal(err)
			}
			if code := closeCode(t, c); code != tc.code {
				t.Fatalf("close code %d, want %d", code, tc.code)
			}
		})
	}
}

func TestShutdownCloses1012(t *testing.T) {
	e := newEnv(t, nil)
	a, b := e.dial("alice", ""), e.dial("bob", "")
	readUntilSynced(t, a)
	readUntilSynced(t, b)
	errs := make(chan error, 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for range 2 {
		go func() { errs <- e.gw.Shutdown(ctx) }() // concurrent calls are fine
	}
	for _, c := range []*websocket.Conn{a, b} {
		if code := closeCode(t, c); code != websocket.CloseServiceRestart {
			t.Fatalf("close code %d, want 1012", code)
		}
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	}
	if err := e.gw.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	if n := e.gw.ConnCount(); n != 0 {
		t.Fatalf("%d connections after Shutdown", n)
	}
	_, resp, err := e.tryDial("alice", "")
	if resp != nil {
		defer resp.Body.Close()
	}
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("dial after Shutdown: %v %v", resp, err)
	}
	if online, _ := e.gw.Deliver(context.Background(), "alice", herald.Notification{Seq: 1}); online {
		t.Fatal("online after Shutdown")
	}
}

// A connection that answers pings survives many ping intervals; one that
// goes silent is closed.
func TestPingsAndSilentConnections(t *testing.T) {
	e := newEnv(t, func(c *Config) {
		c.PingInterval = 50 * time.Millisecond
		c.PongWait = 500 * time.Millisecond
		c.Shards = 4
	})
	before := counterValue(e.gw.m.disconnects.WithLabelValues("timeout"))
	alive := e.dial("alice", "")
	readUntilSynced(t, alive)
	pings := make(chan struct{}, 100)
	alive.SetPingHandler(func(data string) error {
		select {
		case pings <- struct{}{}:
		default:
		}
		return alive.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
	})
	go func() {
		for {
			if _, _, err := alive.ReadMessage(); err != nil {
				return
			}
		}
	}()
	// carol ignores the server's pings but pings the server herself.
	pinger := e.dial("carol", "")
	readUntilSynced(t, pinger)
	pinger.SetPingHandler(func(string) error { return nil })
	go func() {
		for {
			if _, _, err := pinger.ReadMessage(); err != nil {
				return
			}
		}
	}()
	var pinged atomic.Int64
	stopPinging := make(chan struct{})
	defer close(stopPinging)
	go func() {
		for {
			select {
			case <-stopPinging:
				return
			case <-time.After(50 * time.Millisecond):
			}
			if pinger.WriteControl(websocket.PingMessage, nil, time.Now().Add(time.Second)) != nil {
				return
			}
			pinged.Add(1)
		}
	}()
	silent := e.dial("bob", "")
	readUntilSynced(t, silent) // then never read again: no pongs
	eventually(t, "the silent connection to be closed", func() bool { return !e.gw.HasLocal("bob") })
	// Many ping intervals later the answering one is still there.
	for range 10 {
		<-pings
	}
	if !e.gw.HasLocal("alice") {
		t.Fatal("a connection answering pings was closed")
	}
	// Several read deadlines' worth (550 ms) of client pings later:
	eventually(t, "carol's pings", func() bool { return pinged.Load() >= 25 })
	if !e.gw.HasLocal("carol") {
		t.Fatal("a connection sending pings was closed")
	}
	eventually(t, "the timeout metric", func() bool {
		return counterValue(e.gw.m.disconnects.WithLabelValues("timeout")) >= before+1
	})
}

// failingInbox fails every call once failing is set.
type failingInbox struct {
	store.Inbox
	failing atomic.Bool
}

var errDown = errors.New("inbox down")

func (f *failingInbox) List(ctx context.Context, user string, after uint64, limit int, unreadOnly bool) ([]herald.Notification, error) {
	if f.failing.Load() {
		return nil, errDown
	}
	return f.Inbox.List(ctx, user, after, limit, unreadOnly)
}

func (f *failingInbox) MarkRead(ctx context.Context, user string, seqs []uint64) (int64, error) {
	if f.failing.Load() {
		return 0, errDown
	}
	return f.Inbox.MarkRead(ctx, user, seqs)
}

func TestStoreErrorsClose1011(t *testing.T) {
	fi := &failingInbox{}
	e := newEnv(t, func(c *Config) { fi.Inbox = c.Store; c.Store = fi })
	c := e.dial("alice", "")
	readUntilSynced(t, c)
	fi.failing.Store(true)
	if err := c.WriteMessage(websocket.TextMessage, []byte(`{"type":"read","seqs":[1]}`)); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, c); code != websocket.CloseInternalServerErr {
		t.Fatalf("read with the inbox down: close %d, want 1011", code)
	}
	// The replay cannot read the inbox: 1011, the client retries later.
	c = e.dial("alice", "after=0")
	if code := closeCode(t, c); code != websocket.CloseInternalServerErr {
		t.Fatalf("replay with the inbox down: close %d, want 1011", code)
	}
	// A gap fill that cannot read the inbox: 1011 too.
	fi.failing.Store(false)
	c = e.dial("alice", "")
	readUntilSynced(t, c)
	fi.failing.Store(true)
	if _, err := e.gw.Deliver(context.Background(), "alice", herald.Notification{Seq: 3, Prev: 2}); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, c); code != websocket.CloseInternalServerErr {
		t.Fatalf("gap fill with the inbox down: close %d, want 1011", code)
	}
}

// Shutdown does not wait for a replay stuck on the store.
func TestShutdownDuringReplay(t *testing.T) {
	gate := &gatedInbox{entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, func(c *Config) { gate.Inbox = c.Store; c.Store = gate })
	c := e.dial("alice", "after=0")
	<-gate.entered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.gw.Shutdown(ctx) }()
	if code := closeCode(t, c); code != websocket.CloseServiceRestart {
		t.Fatalf("close %d, want 1012", code)
	}
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}
