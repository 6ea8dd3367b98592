package delivery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
)

// The stream starts with the retry hint, replays after ?after=, syncs,
// then goes live; ids are the seqs.
func TestSSEReplayAfterThenLive(t *testing.T) {
	e := newEnv(t, nil)
	appendN(t, e.store, "alice", 5)
	s, resp := e.trySSE("alice", "after=2", nil)
	defer resp.Body.Close()
	if s == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	if first, _ := s.next(); first.retry != "3000" {
		t.Fatalf("first block %+v, want retry: 3000", first)
	}
	seqs, synced := s.untilSynced()
	if !slices.Equal(seqs, seqRange(3, 5)) || synced.Seq != 5 || synced.Unread != 5 {
		t.Fatalf("replay %v then %v, want 3..5 then synced(5,5)", seqs, synced)
	}
	e.publish("alice", 2)
	if got := s.seqs(2); !slices.Equal(got, []uint64{6, 7}) {
		t.Fatalf("live %v", got)
	}
	e.publish("bob", 1) // not alice's
	e.publish("alice", 1)
	if got := s.seqs(1); got[0] != 8 {
		t.Fatalf("live %v", got)
	}
}

// Without after the stream replays the unread notifications; with the
// token in an Authorization header it works the same.
func TestSSENoAfterBearerHeader(t *testing.T) {
	e := newEnv(t, nil)
	appendN(t, e.store, "alice", 3)
	if _, err := e.store.MarkRead(context.Background(), "alice", []uint64{1}); err != nil {
		t.Fatal(err)
	}
	s, resp := e.openSSE(e.srv.URL+"/v1/sse", http.Header{"Authorization": {"Bearer " + token(t, "alice")}})
	defer resp.Body.Close()
	if s == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	seqs, synced := s.start().untilSynced()
	if !slices.Equal(seqs, []uint64{2, 3}) || synced.Seq != 3 || synced.Unread != 2 {
		t.Fatalf("replay %v then %v, want 2,3 then synced(3,2)", seqs, synced)
	}
}

// Last-Event-ID, which EventSource sends when it reconnects, wins over the
// after= of the URL it was created with.
func TestSSELastEventIDBeatsAfter(t *testing.T) {
	e := newEnv(t, nil)
	appendN(t, e.store, "alice", 5)
	s := e.sse("alice", "after=1", http.Header{"Last-Event-ID": {"4"}})
	seqs, synced := s.untilSynced()
	if !slices.Equal(seqs, []uint64{5}) || synced.Seq != 5 {
		t.Fatalf("replay %v then %v, want 5 then synced(5)", seqs, synced)
	}
}

// Notifications published while the replay reads the store arrive exactly
// once and in order (the WebSocket's seam, TestReplayLiveSeam).
func TestSSEReplayLiveSeam(t *testing.T) {
	for _, tc := range []struct {
		name      string
		readFirst bool
		drop      uint64
	}{
		{"store read after publish", false, 0},
		{"store read before publish", true, 0},
		{"store read before publish, one lost live", true, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := &gatedInbox{readFirst: tc.readFirst, entered: make(chan struct{}), release: make(chan struct{})}
			e := newEnv(t, func(c *Config) { gate.Inbox = c.Store; c.Store = gate })
			appendN(t, e.store, "alice", 5)
			s := e.sse("alice", "after=2", nil)
			<-gate.entered
			for _, n := range appendN(t, e.store, "alice", 3) {
				if n.Seq == tc.drop {
					continue
				}
				if online, err := e.gw.Deliver(context.Background(), "alice", n); !online || err != nil {
					t.Fatalf("Deliver during replay = %v, %v", online, err)
				}
			}
			close(gate.release)
			seqs, synced := s.untilSynced()
			if !slices.Equal(seqs, seqRange(3, 8)) || synced.Seq != 8 || synced.Unread != 8 {
				t.Fatalf("replay %v then %v, want 3..8 then synced(8,8)", seqs, synced)
			}
			e.publish("alice", 1)
			if got := s.seqs(1); got[0] != 9 {
				t.Fatalf("live after seam: %v", got)
			}
		})
	}
}

// A live notification whose prev reveals a gap is sent after the gap is
// filled from the inbox; duplicates are skipped.
func TestSSEGapFilled(t *testing.T) {
	e := newEnv(t, nil)
	s := e.sse("alice", "", nil)
	s.untilSynced()
	ns := appendN(t, e.store, "alice", 4)
	for _, i := range []int{2, 1, 2, 3, 0} {
		if online, err := e.gw.Deliver(context.Background(), "alice", ns[i]); !online || err != nil {
			t.Fatalf("Deliver = %v, %v", online, err)
		}
	}
	if got := s.seqs(4); !slices.Equal(got, seqRange(1, 4)) {
		t.Fatalf("got %v, want 1..4 once each", got)
	}
	e.publish("alice", 1)
	if got := s.seqs(1); got[0] != 5 {
		t.Fatalf("after the fill: %v", got)
	}
}

func TestSSEHandshakeErrors(t *testing.T) {
	e := newEnv(t, nil)
	expired, err := mintExpired("alice")
	if err != nil {
		t.Fatal(err)
	}
	tok := token(t, "alice")
	for _, tc := range []struct {
		name, method, query string
		header              http.Header
		status              int
	}{
		{"no token", "GET", "", nil, http.StatusUnauthorized},
		{"bad token", "GET", "token=abc.def.ghi", nil, http.StatusUnauthorized},
		{"expired token", "GET", "token=" + expired, nil, http.StatusUnauthorized},
		{"bad after", "GET", "token=" + tok + "&after=-1", nil, http.StatusBadRequest},
		{"bad Last-Event-ID", "GET", "token=" + tok, http.Header{"Last-Event-ID": {"x"}}, http.StatusBadRequest},
		{"foreign origin", "GET", "token=" + tok, http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"POST", "POST", "token=" + tok, nil, http.StatusMethodNotAllowed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(tc.method, e.srv.URL+"/v1/sse?"+tc.query, nil)
			for k, v := range tc.header {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct{ Error string }
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || json.Unmarshal(b, &body) != nil || body.Error == "" {
				t.Fatalf("got %d %s, want %d with a JSON error", resp.StatusCode, b, tc.status)
			}
			if tc.status == http.StatusUnauthorized && resp.Header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
}

// An allowed foreign origin gets the stream with its CORS header.
func TestSSEAllowedOrigin(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.AllowedOrigins = []string{"https://app.example"} })
	s := e.sse("alice", "", http.Header{"Origin": {"https://app.example"}})
	if got := s.resp.Header.Get("Access-Control-Allow-Origin"); got != "https://app.example" {
		t.Fatalf("Access-Control-Allow-Origin %q", got)
	}
	s.untilSynced()
}

// The per-user cap counts WebSocket and SSE connections together.
func TestSSEConnCapSharedWithWebSocket(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxConnsPerUser = 2 })
	readUntilSynced(t, e.dial("alice", ""))
	e.sse("alice", "", nil).untilSynced()
	s, resp := e.trySSE("alice", "", nil)
	if s != nil {
		t.Fatal("third connection (SSE) accepted")
	}
	b, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusTooManyRequests || !strings.Contains(string(b), `"error"`) {
		t.Fatalf("third SSE: %d %s, want 429", resp.StatusCode, b)
	}
	_, wresp, err := e.tryDial("alice", "")
	if wresp != nil {
		defer wresp.Body.Close()
	}
	if err == nil || wresp == nil || wresp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("third connection (WebSocket): %v %v", wresp, err)
	}
	e.sse("bob", "", nil).untilSynced()
	if n := e.gw.ConnCount(); n != 3 {
		t.Fatalf("ConnCount %d, want 3", n)
	}
	if got := gaugeValue(e.gw.m.sse); got < 2 {
		t.Fatalf("herald_sse_connections %v, want at least this test's 2", got)
	}
}

// Streams are admitted through the upgrade bucket like WebSockets.
func TestSSEUpgradeBucket(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.UpgradeRate, c.UpgradeBurst = 0.001, 1 })
	e.sse("alice", "", nil).untilSynced()
	s, resp := e.trySSE("bob", "", nil)
	if s != nil {
		t.Fatal("second stream admitted past the bucket")
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d Retry-After %q, want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

// A stream whose client stops reading is cut with the 4008 close event
// once its queue overflows; the user's WebSocket keeps receiving.
func TestSSESlowClientCut(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxQueueBytes = 64 << 10 })
	fast := e.dial("alice", "")
	readUntilSynced(t, fast)
	u := e.srv.URL + "/v1/sse?token=" + token(t, "alice")
	slow, resp := e.openSSE(u, nil) // not read yet
	defer resp.Body.Close()
	if slow == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	eventually(t, "the stream registered", func() bool { return e.gw.openConns("alice") == 2 })
	before := counterValue(e.gw.m.disconnects.WithLabelValues("too_slow"))

	last := floodUntilCut(t, e, fast)
	e.publish("alice", 1)
	if got := readSeqs(t, fast, 1); got[0] != last+1 {
		t.Fatalf("fast reader after the cut: %v", got)
	}
	// The slow client reads what reached it, in order, then the close.
	slow.start()
	if _, synced := slow.untilSynced(); synced.Seq != 0 {
		t.Fatalf("synced %v", synced)
	}
	var want uint64 = 1
	for {
		f := slow.mustFrame()
		if f.Type == "close" {
			if f.Seq != CloseTooSlow {
				t.Fatalf("close %d, want 4008", f.Seq)
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
	if err := <-slow.errc; !errors.Is(err, io.EOF) {
		t.Fatalf("after the close event: %v, want the end of the response", err)
	}
	eventually(t, "the disconnect metric", func() bool {
		return counterValue(e.gw.m.disconnects.WithLabelValues("too_slow")) == before+1
	})
}

// Shutdown sends the 1012 close event and ends the response.
func TestSSEShutdownCloses1012(t *testing.T) {
	e := newEnv(t, nil)
	a, b := e.sse("alice", "", nil), e.sse("bob", "", nil)
	a.untilSynced()
	b.untilSynced()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 1)
	go func() { errs <- e.gw.Shutdown(ctx) }()
	for _, s := range []*sseStream{a, b} {
		if code := s.closeCode(); code != CloseRestarting {
			t.Fatalf("close %d, want 1012", code)
		}
	}
	if err := <-errs; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if n := e.gw.ConnCount(); n != 0 {
		t.Fatalf("%d connections after Shutdown", n)
	}
	s, resp := e.trySSE("alice", "", nil)
	if s != nil {
		t.Fatal("stream opened after Shutdown")
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after Shutdown: %d, want 503", resp.StatusCode)
	}
}

// Shutdown during the replay still ends the stream with the close event.
func TestSSEShutdownDuringReplay(t *testing.T) {
	gate := &gatedInbox{entered: make(chan struct{}), release: make(chan struct{})}
	e := newEnv(t, func(c *Config) { gate.Inbox = c.Store; c.Store = gate })
	appendN(t, e.store, "alice", 2)
	s := e.sse("alice", "after=0", nil)
	<-gate.entered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errs := make(chan error, 1)
	go func() { errs <- e.gw.Shutdown(ctx) }()
	if code := s.closeCode(); code != CloseRestarting {
		t.Fatalf("close %d, want 1012", code)
	}
	close(gate.release)
	if err := <-errs; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
}

// Heartbeats are comments, at PingInterval.
func TestSSEHeartbeat(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.PingInterval = 20 * time.Millisecond; c.Shards = 1 })
	s := e.sse("alice", "", nil)
	s.untilSynced()
	for pings := 0; pings < 3; {
		ev, ok := s.next()
		if !ok {
			t.Fatal("stream ended")
		}
		if ev.comment == "ping" && ev.event == "" {
			pings++
		} else {
			t.Fatalf("got %+v, want : ping", ev)
		}
	}
}

// A stream ends with the 4001 close event when its token expires.
func TestSSETokenExpiry4001(t *testing.T) {
	v, err := auth.NewVerifier(auth.Config{HMACSecrets: [][]byte{testSecret}, Leeway: -1})
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, func(c *Config) { c.Verifier = v; c.PingInterval = 20 * time.Millisecond; c.Shards = 1 })
	tok, err := auth.Mint(testSecret, "alice", 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s, resp := e.openSSE(e.srv.URL+"/v1/sse?token="+tok, nil)
	defer resp.Body.Close()
	if s == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	s.start().untilSynced()
	if code := s.closeCode(); code != CloseUnauthorized {
		t.Fatalf("close %d, want 4001", code)
	}
}

// A read on the user's WebSocket sends the unread event to their stream.
func TestSSEUnreadAfterRead(t *testing.T) {
	e := newEnv(t, nil)
	appendN(t, e.store, "alice", 3)
	s := e.sse("alice", "after=3", nil)
	if _, synced := s.untilSynced(); synced.Unread != 3 {
		t.Fatalf("synced %v", synced)
	}
	ws := e.dial("alice", "after=3")
	readUntilSynced(t, ws)
	if err := ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"read","seqs":[1,2]}`)); err != nil {
		t.Fatal(err)
	}
	if f := s.mustFrame(); f.Type != "unread" || f.Count != 1 {
		t.Fatalf("got %v, want unread(1)", f)
	}
	e.gw.PublishUnread(context.Background(), "alice", 0)
	if f := s.mustFrame(); f.Type != "unread" || f.Count != 0 {
		t.Fatalf("got %v, want unread(0)", f)
	}
}

// A client that goes away is torn down: the user leaves the hub.
func TestSSEClientGone(t *testing.T) {
	e := newEnv(t, nil)
	s := e.sse("alice", "", nil)
	s.untilSynced()
	if !e.gw.Present("alice") {
		t.Fatal("not present")
	}
	_ = s.resp.Body.Close()
	eventually(t, "the stream torn down", func() bool { return !e.gw.Present("alice") && e.gw.ConnCount() == 0 })
	if online, _ := e.gw.Deliver(context.Background(), "alice", herald.Notification{Seq: 1}); online {
		t.Fatal("online after the client left")
	}
}

func TestAppendSSE(t *testing.T) {
	n := herald.Notification{ID: `a"seq":9`, Seq: 42, Prev: 41, Type: "t", Title: "multi\nline", CreatedAt: time.Unix(0, 0).UTC()}
	f, err := encodeNotification(&n)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		frame []byte
		want  string
	}{
		{encodeSynced(7, 3), "id: 7\nevent: synced\ndata: {\"seq\":7,\"unread\":3}\n\n"},
		{encodeUnread(5), "event: unread\ndata: {\"count\":5}\n\n"},
		{f, "id: 42\nevent: notification\ndata: " + string(f[len(wsNotification):len(f)-1]) + "\n\n"},
	} {
		got, err := appendSSE(nil, tc.frame)
		if err != nil || string(got) != tc.want {
			t.Errorf("appendSSE(%s) = %q, %v; want %q", tc.frame, got, err, tc.want)
		}
	}
	if _, err := appendSSE(nil, []byte(`{"type":"other"}`)); err == nil {
		t.Error("unknown frame rendered")
	}
	if got := string(appendSSEClose(nil, 4008, "too slow")); got != "event: close\ndata: {\"code\":4008,\"reason\":\"too slow\"}\n\n" {
		t.Errorf("close: %q", got)
	}
}

// FuzzSSENotification: every notification renders as one event whose id is
// its seq and whose data is its JSON, on one line.
func FuzzSSENotification(f *testing.F) {
	f.Add("01J", uint64(1), "hello", "")
	f.Add(`"seq":5`, uint64(18446744073709551615), "a\nb", `{"seq":3}`)
	f.Fuzz(func(t *testing.T, id string, seq uint64, title, data string) {
		n := herald.Notification{ID: id, Seq: seq, Title: title}
		if json.Valid([]byte(data)) {
			n.Data = json.RawMessage(data)
		}
		frame, err := encodeNotification(&n)
		if err != nil {
			return // not encodable: never queued
		}
		b, err := appendSSE(nil, frame)
		if err != nil {
			t.Fatalf("appendSSE: %v", err)
		}
		lines := strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n")
		if len(lines) != 3 || lines[0] != fmt.Sprintf("id: %d", seq) || lines[1] != "event: notification" ||
			!strings.HasPrefix(lines[2], "data: ") {
			t.Fatalf("event %q", b)
		}
		var got herald.Notification
		if err := json.Unmarshal([]byte(strings.TrimPrefix(lines[2], "data: ")), &got); err != nil || got.Seq != seq ||
			(utf8.ValidString(id) && got.ID != id) {
			t.Fatalf("data %q: %+v, %v", lines[2], got, err)
		}
	})
}

// FuzzParseSeq: the after / Last-Event-ID parser takes exactly the
// decimal renderings of uint64.
func FuzzParseSeq(f *testing.F) {
	for _, s := range []string{"0", "42", "-1", "+1", " 1", "1_000", "0x10", "18446744073709551616", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := parseSeq(s)
		if err != nil {
			return
		}
		if fmt.Sprint(v) != strings.TrimLeft(s, "0") && (v != 0 || strings.Trim(s, "0") != "") {
			t.Fatalf("parseSeq(%q) = %d", s, v)
		}
	})
}

// The server's read and write timeouts, counted from the request, do not
// cut a stream: the sink sets its own write deadline per event.
func TestSSEOutlivesServerTimeouts(t *testing.T) {
	e := newEnv(t, nil)
	const timeouts = 150 * time.Millisecond
	srv := httptest.NewUnstartedServer(e.gw.SSE())
	srv.Config.ReadTimeout, srv.Config.WriteTimeout = timeouts, timeouts
	srv.Start()
	defer srv.Close()
	s, resp := e.openSSE(srv.URL+"/v1/sse?token="+token(t, "alice"), nil)
	if s == nil {
		t.Fatalf("status %d", resp.StatusCode)
	}
	defer resp.Body.Close()
	s.start().untilSynced()
	time.Sleep(4 * timeouts) // past every server timeout
	e.publish("alice", 1)
	if got := s.seqs(1); got[0] != 1 {
		t.Fatalf("after the server timeouts: %v", got)
	}
}
