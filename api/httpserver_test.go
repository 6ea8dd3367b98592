package api

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/memory"
)

// served runs h behind NewHTTPServer and NewListener, as every role does.
func served(t *testing.T, h http.Handler, cfg HTTPConfig) (addr string, l *Listener) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Registerer == nil {
		cfg.Registerer = prometheus.NewRegistry()
	}
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	l = NewListener(ln, cfg)
	srv := NewHTTPServer(h, cfg)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String(), l
}

// waitFor polls cond until it holds; the deadline only bounds the wait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // a bound, not an assertion
	return c
}

func apiServer(t *testing.T, st store.Store) *Server {
	t.Helper()
	if st == nil {
		st = memory.New()
	}
	s, err := New(Config{Store: st, Events: &countingSink{}, Users: tokens{}, Keys: keys{}, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Defect 2: a client that sends headers and Content-Length: 100000, then
// withholds the body, is cut by the read timeout.
func TestSlowBodyIsCut(t *testing.T) {
	addr, _ := served(t, apiServer(t, nil), HTTPConfig{ReadTimeout: 200 * time.Millisecond})
	for _, c := range []struct{ path, auth string }{
		{"/v1/events", "key-1"}, // reads the body: 408
		{"/v1/devices", ""},     // refused before reading it: the 401 still arrives
	} {
		conn := dial(t, addr)
		req := "POST " + c.path + " HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n"
		if c.auth != "" {
			req += "Authorization: Bearer " + c.auth + "\r\n"
		}
		if _, err := io.WriteString(conn, req+"\r\n{"); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer before the bound: %v", c.path, err)
		}
		resp.Body.Close()
		if c.auth != "" && resp.StatusCode != http.StatusRequestTimeout || c.auth == "" && resp.StatusCode != 401 {
			t.Fatalf("%s: %d", c.path, resp.StatusCode)
		}
		// And the connection is closed.
		if _, err := conn.Read(make([]byte, 1)); err == nil {
			t.Fatalf("%s: connection still open after the read timeout", c.path)
		}
	}
}

// Defect 2: an idle keep-alive connection is closed after the idle timeout.
func TestIdleKeepAliveClosed(t *testing.T) {
	addr, l := served(t, apiServer(t, nil), HTTPConfig{IdleTimeout: 200 * time.Millisecond})
	conn := dial(t, addr)
	br := bufio.NewReader(conn)
	if _, err := io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 || resp.Close {
		t.Fatalf("healthz: %d close=%v", resp.StatusCode, resp.Close)
	}
	_, err = br.ReadByte() // the server closes the idle connection
	var ne net.Error
	if err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("idle connection not closed by the server: %v", err)
	}
	waitFor(t, "the listener to count it closed", func() bool { return l.Open() == 0 })
}

// Defect 2: with the cap at 50, 200 held connections: 50 open, 150
// refused with a JSON 503; the server answers /healthz once they drop
// (cut by the header timeout, or closed by their clients).
func TestConnectionCap(t *testing.T) {
	reg := prometheus.NewRegistry()
	addr, l := served(t, apiServer(t, nil), HTTPConfig{MaxConns: 50, ReadTimeout: 500 * time.Millisecond, Registerer: reg})
	held := make([]net.Conn, 200)
	for i := range held {
		held[i] = dial(t, addr)
	}
	waitFor(t, "50 open and 150 refused", func() bool { return l.Open() == 50 && l.Refused() == 150 })
	// A refused connection is told why.
	refusedSeen := 0
	for _, c := range held {
		_ = c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			continue
		}
		var body errorBody
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != 503 || resp.Header.Get("Retry-After") != "1" || body.Error == "" {
			t.Fatalf("refusal: %d %v %+v", resp.StatusCode, resp.Header, body)
		}
		refusedSeen++
	}
	if refusedSeen == 0 {
		t.Fatal("no refused connection got the 503")
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if m.GetGauge() != nil {
				found[mf.GetName()] = m.GetGauge().GetValue()
			}
			if m.GetCounter() != nil {
				found[mf.GetName()] = m.GetCounter().GetValue()
			}
		}
	}
	if found["herald_http_connections_refused_total"] < 150 {
		t.Fatalf("metrics: %v", found)
	}
	// The held connections sent no request: the header timeout cuts them.
	waitFor(t, "held connections to be cut", func() bool { return l.Open() == 0 })
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz after the held connections dropped: %v %v", resp, err)
	}
	resp.Body.Close()
}

// bigInbox serves pages of large notifications whatever the store holds
// (more than the socket buffers take), as a full page of 64 KiB events.
type bigInbox struct{ store.Store }

func (bigInbox) List(_ context.Context, uid string, after uint64, limit int, _ bool) ([]herald.Notification, error) {
	ns := make([]herald.Notification, limit)
	body := strings.Repeat("x", 60<<10)
	for i := range ns {
		ns[i] = herald.Notification{ID: "n", UserID: uid, Seq: after + uint64(i) + 1, Type: "t", Body: body, CreatedAt: time.Now()}
	}
	return ns, nil
}

// Defect 2: a client that never reads GET /v1/notifications?limit=500
// does not pin the page: the write timeout ends the handler.
func TestStalledReaderFreed(t *testing.T) {
	s := apiServer(t, bigInbox{memory.New()})
	ended := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.ServeHTTP(w, r)
		if strings.HasPrefix(r.URL.Path, "/v1/notifications") {
			ended <- struct{}{}
		}
	})
	addr, _ := served(t, h, HTTPConfig{WriteTimeout: 300 * time.Millisecond})
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		return rc.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
	}}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, "GET /v1/notifications?limit=500 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-u1\r\n\r\n"); err != nil {
		t.Fatal(err)
	}
	select { // never read: the handler must still end
	case <-ended:
	case <-time.After(20 * time.Second): // a bound, not an assertion
		t.Fatal("the handler of a stalled reader never ended")
	}
}

// Defect 2: the server timeouts do not cut WebSockets, which set their
// own deadlines once upgraded.
func TestWebSocketOutlivesServerTimeouts(t *testing.T) {
	st := memory.New()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	gw, err := delivery.New(delivery.Config{Store: st, Verifier: tokens{}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(Config{Store: st, Users: tokens{}, WebSocket: gw, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	const timeouts = 150 * time.Millisecond
	addr, _ := served(t, s, HTTPConfig{ReadTimeout: timeouts, WriteTimeout: timeouts, IdleTimeout: timeouts})
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = gw.Shutdown(ctx)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	ws, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws://"+addr+"/v1/ws?token=tok-u1", nil)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	defer func() { _ = ws.Close() }()
	_ = ws.SetReadDeadline(time.Now().Add(20 * time.Second))
	var f map[string]any
	if err := ws.ReadJSON(&f); err != nil || f["type"] != "synced" {
		t.Fatalf("first frame %v %v", f, err)
	}
	time.Sleep(4 * timeouts) // past every server timeout
	if err := ws.WriteJSON(map[string]any{"type": "read", "all": true}); err != nil {
		t.Fatal(err)
	}
	if err := ws.ReadJSON(&f); err != nil || f["type"] != "unread" {
		t.Fatalf("after the server timeouts: %v %v", f, err)
	}
}

// The attack replay: 4,000 connections that send headers announcing a
// body and then withhold it. Under the cap they are all accepted and held
// at most the read timeout; meanwhile the server keeps answering /healthz,
// and the listener's own accounting shows every one released.
func TestHeldConnections4000(t *testing.T) {
	const n = 4000
	// The read timeout must outlast dialing all n under -race on a loaded
	// machine (it took over 2 s there), or the first connections are cut
	// before the last is open.
	addr, l := served(t, apiServer(t, nil), HTTPConfig{MaxConns: n + 100, ReadTimeout: 8 * time.Second, Registerer: prometheus.NewRegistry()})
	held := make([]net.Conn, n)
	for i := range held {
		held[i] = dial(t, addr)
		if _, err := fmt.Fprintf(held[i], "POST /v1/devices HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tok-u1\r\nContent-Length: 100000\r\n\r\n{"); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "all held connections open", func() bool { return l.Open() >= n })
	resp, err := http.Get("http://" + addr + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz while %d connections are held: %v %v", n, resp, err)
	}
	resp.Body.Close()
	waitFor(t, "held connections cut by the read timeout", func() bool { return l.Open() == 0 })
	if l.Refused() != 0 {
		t.Fatalf("%d refused under the cap", l.Refused())
	}
}
