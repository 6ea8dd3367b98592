package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/memory"
)

var testSecret = []byte("delivery-test-secret-0123456789abcdef")

// env is a gateway behind an httptest server with a memory store.
type env struct {
	t     testing.TB
	gw    *Gateway
	store *memory.Store
	srv   *httptest.Server
	wsURL string
}

// newEnv starts a gateway; tweak may adjust the config (its Store may be
// wrapped: the memory store is passed in cfg.Store).
func newEnv(t testing.TB, tweak func(*Config)) *env {
	t.Helper()
	st := memory.New()
	v, err := auth.NewVerifier(auth.Config{HMACSecrets: [][]byte{testSecret}})
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		Store:    st,
		Verifier: v,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if os.Getenv("DELIVERY_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.ReadMode = ReadMode(os.Getenv(readModeEnv))
	if tweak != nil {
		tweak(&cfg)
	}
	gw, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/v1/ws", gw)
	mux.Handle("/v1/sse", gw.SSE())
	srv := httptest.NewServer(mux)
	e := &env{t: t, gw: gw, store: st, srv: srv, wsURL: "ws" + strings.TrimPrefix(srv.URL, "http") + "/v1/ws"}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := gw.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		srv.Close()
	})
	return e
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func token(t testing.TB, user string) string {
	t.Helper()
	tok, err := auth.Mint(testSecret, user, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// dial connects as user with an extra query (e.g. "after=3").
func (e *env) dial(user, query string) *websocket.Conn {
	e.t.Helper()
	c, resp, err := e.tryDial(user, query)
	if resp != nil {
		defer resp.Body.Close()
	}
	if err != nil {
		body := ""
		if resp != nil {
			b, _ := io.ReadAll(resp.Body)
			body = fmt.Sprintf(" (%d %s)", resp.StatusCode, b)
		}
		e.t.Fatalf("dial %s?%s: %v%s", user, query, err, body)
	}
	e.t.Cleanup(func() { _ = c.Close() })
	return c
}

func (e *env) tryDial(user, query string) (*websocket.Conn, *http.Response, error) {
	u := e.wsURL + "?token=" + token(e.t, user)
	if query != "" {
		u += "&" + query
	}
	return websocket.DefaultDialer.Dial(u, nil)
}

// frame is any server → client frame.
type frame struct {
	Type         string               `json:"type"`
	Notification *herald.Notification `json:"notification"`
	Broadcast    *herald.Broadcast    `json:"broadcast"`
	Seq          uint64               `json:"seq"`
	Unread       int64                `json:"unread"`
	Count        int64                `json:"count"`
}

func (f frame) String() string {
	switch f.Type {
	case "notification":
		return fmt.Sprintf("n%d", f.Notification.Seq)
	case "synced":
		return fmt.Sprintf("synced(%d,%d)", f.Seq, f.Unread)
	case "unread":
		return fmt.Sprintf("unread(%d)", f.Count)
	case "broadcast":
		return "broadcast(" + f.Broadcast.EventID + ")"
	}
	return f.Type
}

// read reads one frame with a failure-guard deadline.
func read(t testing.TB, c *websocket.Conn) frame {
	t.Helper()
	f, err := tryRead(c)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return f
}

func tryRead(c *websocket.Conn) (frame, error) {
	_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
	mt, b, err := c.ReadMessage()
	if err != nil {
		return frame{}, err
	}
	if mt != websocket.TextMessage {
		return frame{}, fmt.Errorf("message type %d", mt)
	}
	var f frame
	if err := json.Unmarshal(b, &f); err != nil {
		return frame{}, fmt.Errorf("decode %s: %w", b, err)
	}
	return f, nil
}

// readSeqs reads n notification frames and returns their seqs.
func readSeqs(t testing.TB, c *websocket.Conn, n int) []uint64 {
	t.Helper()
	var out []uint64
	for len(out) < n {
		f := read(t, c)
		if f.Type != "notification" {
			t.Fatalf("got %v while waiting for notifications (have %v)", f, out)
		}
		out = append(out, f.Notification.Seq)
	}
	return out
}

// readUntilSynced reads the replay and returns its seqs and the synced frame.
func readUntilSynced(t testing.TB, c *websocket.Conn) ([]uint64, frame) {
	t.Helper()
	var seqs []uint64
	for {
		f := read(t, c)
		switch f.Type {
		case "notification":
			seqs = append(seqs, f.Notification.Seq)
		case "synced":
			return seqs, f
		default:
			t.Fatalf("unexpected %v during replay", f)
		}
	}
}

// closeCode reads until the connection fails and returns the close code.
func closeCode(t testing.TB, c *websocket.Conn) int {
	t.Helper()
	for {
		_, err := tryRead(c)
		if err == nil {
			continue
		}
		var ce *websocket.CloseError
		if errors.As(err, &ce) {
			return ce.Code
		}
		t.Fatalf("connection ended without a close frame: %v", err)
	}
}

// appendN stores n notifications for user and returns them as stored.
// Each call fences a scope of its own, so calls never fence each other
// (these tests are about delivery, not about which writer owns a user).
func appendN(t testing.TB, st store.Inbox, user string, n int) []herald.Notification {
	t.Helper()
	w, err := st.Fence(context.Background(), "test/"+herald.NewID(time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	ns := make([]herald.Notification, n)
	for i := range ns {
		evt := herald.NewID(time.Now())
		ns[i] = herald.Notification{
			ID: herald.NewID(time.Now()), EventID: "evt-" + evt, Type: "mention", Priority: herald.PriorityNormal,
			Title: "hello", CreatedAt: time.Now().UTC(), UserID: user,
		}
	}
	res, err := w.Append(context.Background(), ns)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]herald.Notification, n)
	for i, r := range res {
		out[i] = r.Notification
	}
	return out
}

// publish stores n notifications and delivers them, like the router.
func (e *env) publish(user string, n int) []herald.Notification {
	e.t.Helper()
	ns := appendN(e.t, e.store, user, n)
	for _, x := range ns {
		if _, err := e.gw.Deliver(context.Background(), user, x); err != nil {
			e.t.Fatal(err)
		}
	}
	return ns
}

// eventually polls cond until it holds or the failure guard expires.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// openConns counts user's connections that are not closing.
func (g *Gateway) openConns(user string) int {
	n := 0
	for _, c := range g.hub.appendConns(user, nil) {
		if !c.dead.Load() {
			n++
		}
	}
	return n
}

func seqRange(from, to uint64) []uint64 {
	var out []uint64
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func mintExpired(user string) (string, error) {
	return jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.RegisteredClaims{
		Subject:   user,
		ExpiresAt: jwt.NewNumericDate(time.Now().Add(-time.Hour)),
	}).SignedString(testSecret)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// floodUntilCut delivers 16 KiB notifications to alice, who has two
// connections, in lockstep with the fast one (a WebSocket read after each),
// until the other, which reads nothing, is cut for falling behind; it
// returns the last seq delivered.
func floodUntilCut(t *testing.T, e *env, fast *websocket.Conn) uint64 {
	t.Helper()
	body := strings.Repeat("x", 16<<10)
	var last uint64
	for e.gw.openConns("alice") == 2 {
		if last > 20000 {
			t.Fatal("the slow connection was never cut")
		}
		n := appendN(t, e.store, "alice", 1)[0]
		n.Body = body
		if _, err := e.gw.Deliver(context.Background(), "alice", n); err != nil {
			t.Fatal(err)
		}
		last = n.Seq
		if got := readSeqs(t, fast, 1); got[0] != last {
			t.Fatalf("fast reader got %d, want %d", got[0], last)
		}
	}
	return last
}
