package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

func TestSourceSpreadsOverAddresses(t *testing.T) {
	o := &options{perSource: 1000, sourceBase: netip.MustParseAddr("127.1.0.0")}
	for _, c := range []struct {
		i    int
		want string
	}{{0, "127.1.0.1"}, {999, "127.1.0.1"}, {1000, "127.1.0.2"}, {255_000, "127.1.1.0"}, {99_999, "127.1.0.100"}} {
		a, ok := o.source(c.i).(*net.TCPAddr)
		if !ok || a.IP.String() != c.want {
			t.Errorf("source(%d) = %v, want %s", c.i, o.source(c.i), c.want)
		}
	}
	if (&options{perSource: 1000}).source(5) != nil {
		t.Error("no -source-base: want the kernel's choice (nil)")
	}
}

// report must fail a run with a missing, doubled or dropped connection,
// and pass only a clean one.
func TestReportCountsEveryFailure(t *testing.T) {
	mk := func(lat int64, copies int32, dropped bool) *conn {
		c := &conn{}
		c.latency.Store(lat)
		c.copies.Store(copies)
		c.dropped.Store(dropped)
		return c
	}
	out := filepath.Join(t.TempDir(), "lat.txt")
	o := &options{event: "e", count: 3, out: out}
	if !report(o, []*conn{mk(3000, 1, false), mk(1000, 1, false), mk(2000, 1, false)}) {
		t.Fatal("a clean run reported as failed")
	}
	raw, err := os.ReadFile(out)
	if err != nil || strings.Fields(string(raw))[0] != "1000" || len(strings.Fields(string(raw))) != 3 {
		t.Fatalf("latencies file %q, %v: want 3 lines, sorted", raw, err)
	}
	for name, conns := range map[string][]*conn{
		"missing":   {mk(1000, 1, false), mk(0, 0, false), mk(2000, 1, false)},
		"duplicate": {mk(1000, 2, false), mk(1000, 1, false), mk(2000, 1, false)},
		"dropped":   {mk(1000, 1, true), mk(1000, 1, false), mk(2000, 1, false)},
		"not held":  {mk(1000, 1, false), nil, mk(2000, 1, false)},
	} {
		if report(&options{event: "e", count: 3}, conns) {
			t.Errorf("%s: reported clean", name)
		}
	}
}

func TestWSURLAsksForLiveBroadcastsOnlyInLiveMode(t *testing.T) {
	for _, c := range []struct {
		mode, base, want string
	}{
		{"inbox", "ws://127.0.0.1:19303", "ws://127.0.0.1:19303/v1/ws?token=a.b-c_d&after=0"},
		{"", "ws://127.0.0.1:19303/", "ws://127.0.0.1:19303/v1/ws?token=a.b-c_d&after=0"},
		{"live", "ws://127.0.0.1:19303/", "ws://127.0.0.1:19303/v1/ws?token=a.b-c_d&after=0&broadcasts=live"},
	} {
		if got := (&options{broadcasts: c.mode}).wsURL(c.base, "a.b-c_d"); got != c.want {
			t.Errorf("-broadcasts %q: wsURL(%q) = %q, want %q", c.mode, c.base, got, c.want)
		}
	}
}

// Frames as the gateway renders them (delivery/frames.go, broadcast.go).
const (
	notificationFrame = `{"type":"notification","notification":{"id":"n1","seq":7,"event_id":"e","type":"broadcast","priority":"normal","title":"t","created_at":"2025-01-02T03:04:05.000006Z"}}`
	broadcastFrame    = `{"type":"broadcast","broadcast":{"event_id":"e","topic":"cap","type":"broadcast","priority":"normal","title":"t","created_at":"2025-01-02T03:04:05.000006Z"}}`
)

func TestClassify(t *testing.T) {
	for _, c := range []struct {
		frame string
		want  kind
	}{
		{notificationFrame, kindNotification},
		{broadcastFrame, kindBroadcast},
		{`{"type":"synced","seq":0,"unread":0}`, kindSynced},
		{`{"type":"unread","count":3}`, kindOther},
		{`{"type":"broadcasts","broadcast":{}}`, kindOther},
		{`{"type":"notifications"}`, kindOther},
		// Not rendered with "type" first: decoded instead.
		{`{"broadcast":{"event_id":"e"},"type":"broadcast"}`, kindBroadcast},
		{` {"type":"notification","notification":{}}`, kindNotification},
		{`{"seq":1,"type":"synced"}`, kindSynced},
		{`not json`, kindOther},
		{``, kindOther},
	} {
		if got := classify([]byte(c.frame)); got != c.want {
			t.Errorf("classify(%s) = %d, want %d", c.frame, got, c.want)
		}
	}
}

func TestEventOf(t *testing.T) {
	created := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	for _, f := range []string{notificationFrame, broadcastFrame} {
		it, ok := eventOf([]byte(f), classify([]byte(f)))
		if !ok || it.EventID != "e" || !it.CreatedAt.Equal(created) {
			t.Errorf("eventOf(%s) = %+v, %v", f, it, ok)
		}
	}
	// The object of the other kind is not taken for this one's.
	if _, ok := eventOf([]byte(`{"type":"broadcast","notification":{"event_id":"e"}}`), kindBroadcast); ok {
		t.Error("a broadcast frame without its broadcast object decoded")
	}
	if _, ok := eventOf([]byte(`{"type":"synced","seq":1}`), kindSynced); ok {
		t.Error("a synced frame decoded as an event")
	}
}

// note keeps the two kinds apart: a broadcast frame neither completes a
// connection nor counts as its notification, and a second copy of either
// is counted as a copy of that kind only.
func TestNoteCountsEachKindApart(t *testing.T) {
	o := &options{event: "e", broadcasts: "live"}
	c := &conn{}
	created := time.Date(2025, 1, 2, 3, 4, 5, 6000, time.UTC)
	if o.note(c, []byte(broadcastFrame), created.Add(20*time.Millisecond)) {
		t.Error("a broadcast frame completed the connection")
	}
	if o.note(c, []byte(strings.Replace(notificationFrame, `"e"`, `"other"`, 1)), created.Add(time.Second)) {
		t.Error("another event's notification completed the connection")
	}
	if o.note(c, []byte(`{"type":"unread","count":1}`), created.Add(time.Second)) {
		t.Error("an unread frame completed the connection")
	}
	if !o.note(c, []byte(notificationFrame), created.Add(3*time.Second)) {
		t.Error("the notification did not complete the connection")
	}
	if o.note(c, []byte(broadcastFrame), created.Add(4*time.Second)) || o.note(c, []byte(notificationFrame), created.Add(5*time.Second)) {
		t.Error("a second copy completed the connection again")
	}
	if c.liveLatency.Load() != 20_000 || c.liveCopies.Load() != 2 {
		t.Errorf("broadcast frame: latency %d µs, %d copies; want 20000, 2", c.liveLatency.Load(), c.liveCopies.Load())
	}
	if c.latency.Load() != 3_000_000 || c.copies.Load() != 2 {
		t.Errorf("notification: latency %d µs, %d copies; want 3000000, 2", c.latency.Load(), c.copies.Load())
	}
	if (&options{}).note(&conn{}, []byte(notificationFrame), created) {
		t.Error("no -event: a notification completed the connection")
	}
}

func TestSummaryPercentiles(t *testing.T) {
	var conns []*conn
	for i := 100; i >= 1; i-- { // notifications 1..100 ms, broadcast frames 1..50 ms
		c := &conn{}
		c.latency.Store(int64(i) * 1000)
		c.copies.Store(1)
		if i <= 50 {
			c.liveLatency.Store(int64(i) * 1000)
			c.liveCopies.Store(1)
		}
		conns = append(conns, c)
	}
	conns[0].liveCopies.Store(2) // a broadcast frame twice on one connection
	conns = append(conns, nil)
	r := tally(&options{event: "e", count: 101, broadcasts: "live"}, conns)
	if got := [3]float64{r.inbox.pct(0.5), r.inbox.pct(0.99), r.inbox.pct(1)}; got != [3]float64{51, 100, 100} {
		t.Errorf("notification p50/p99/max = %v ms, want [51 100 100]", got)
	}
	if got := [3]float64{r.live.pct(0.5), r.live.pct(0.99), r.live.pct(1)}; got != [3]float64{26, 50, 50} {
		t.Errorf("broadcast p50/p99/max = %v ms, want [26 50 50]", got)
	}
	if r.held != 100 || r.missing != 1 || r.liveMissing != 51 || r.inbox.duplicate != 0 || r.live.duplicate != 1 {
		t.Errorf("held %d, missing %d/%d, duplicate %d/%d; want 100, 1/51, 0/1",
			r.held, r.missing, r.liveMissing, r.inbox.duplicate, r.live.duplicate)
	}
	if (summary{}).pct(0.5) != 0 {
		t.Error("no latencies: want 0")
	}
}

// field takes a RESULT field the way scripts/bench/conns.sh does (its
// sed: the last " name=" of the line).
func field(name, line string) string {
	m := regexp.MustCompile(`.* ` + name + `=([^ ]*)`).FindStringSubmatch(line)
	if m == nil {
		return ""
	}
	return m[1]
}

// The RESULT line keeps the old fields first and in order, and appends
// the broadcast frame's, which conns.sh's parser tells apart.
func TestResultLineAppendsLiveFields(t *testing.T) {
	mk := func(lat int64, copies int32, live int64, liveCopies int32) *conn {
		c := &conn{}
		c.latency.Store(lat)
		c.copies.Store(copies)
		c.liveLatency.Store(live)
		c.liveCopies.Store(liveCopies)
		return c
	}
	r := tally(&options{from: 30000, event: "e", count: 3, broadcasts: "live"},
		[]*conn{mk(3000, 1, 100, 1), mk(1000, 2, 0, 0), mk(2000, 1, 300, 1)})
	line := r.line()
	old := "RESULT from=30000 count=3 held=3 received=3 missing=0 duplicate=1 dropped=0 p50_ms=2.0 p99_ms=3.0 max_ms=3.0 "
	if !strings.HasPrefix(line, old) {
		t.Fatalf("RESULT line %q: want the old fields first, %q", line, old)
	}
	for name, want := range map[string]string{
		"received": "3", "missing": "0", "duplicate": "1", "dropped": "0", "held": "3", "p99_ms": "3.0",
		"broadcasts": "live", "live_received": "2", "live_missing": "1", "live_duplicate": "0",
		"live_p50_ms": "0.3", "live_p99_ms": "0.3", "live_max_ms": "0.3",
	} {
		if got := field(name, line); got != want {
			t.Errorf("%s = %q in %q, want %q", name, got, line, want)
		}
	}
	if !strings.Contains(tally(&options{event: "e", count: 1}, []*conn{mk(1000, 1, 0, 0)}).line(), " broadcasts=inbox live_received=0 live_missing=0 ") {
		t.Error("inbox mode: want broadcasts=inbox and zero live counts")
	}
}

// In live mode a missing broadcast frame is no failure (best effort), a
// doubled one is; in inbox mode any broadcast frame is.
func TestReportLive(t *testing.T) {
	mk := func(live int64, liveCopies int32) *conn {
		c := &conn{}
		c.latency.Store(5000)
		c.copies.Store(1)
		c.liveLatency.Store(live)
		c.liveCopies.Store(liveCopies)
		return c
	}
	dir := t.TempDir()
	o := &options{event: "e", count: 3, broadcasts: "live", out: filepath.Join(dir, "lat.txt"), outLive: filepath.Join(dir, "live.txt")}
	if !report(o, []*conn{mk(300, 1), mk(0, 0), mk(100, 1)}) {
		t.Fatal("a run missing one broadcast frame reported as failed")
	}
	raw, err := os.ReadFile(o.outLive)
	if err != nil || strings.Join(strings.Fields(string(raw)), ",") != "100,300" {
		t.Fatalf("-out-live file %q, %v: want 100 and 300, sorted", raw, err)
	}
	raw, err = os.ReadFile(o.out)
	if err != nil || len(strings.Fields(string(raw))) != 3 {
		t.Fatalf("-out file %q, %v: want 3 lines", raw, err)
	}
	if report(&options{event: "e", count: 3, broadcasts: "live"}, []*conn{mk(300, 2), mk(200, 1), mk(100, 1)}) {
		t.Error("a doubled broadcast frame reported clean")
	}
	if report(&options{event: "e", count: 2, broadcasts: "inbox"}, []*conn{mk(300, 1), mk(0, 0)}) {
		t.Error("inbox mode: a broadcast frame reported clean")
	}
	if !report(&options{event: "e", count: 2, broadcasts: "inbox"}, []*conn{mk(0, 0), mk(0, 0)}) {
		t.Error("inbox mode: a clean run reported as failed")
	}
}

// hold against a fake gateway: the connections ask for live broadcasts,
// the run ends once each has the notification, both kinds are counted,
// and a connection without the broadcast frame does not fail the run.
func TestHoldLiveAgainstFakeGateway(t *testing.T) {
	created := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	var asked, seen atomic.Int32
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		live := r.URL.Query().Get("broadcasts") == "live"
		if live {
			asked.Add(1)
		}
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = ws.Close() }()
		send := func(f string) { _ = ws.WriteMessage(websocket.TextMessage, []byte(f)) }
		send(`{"type":"synced","seq":0,"unread":0}`)
		time.Sleep(100 * time.Millisecond) // after READY, as the event is produced then
		if live && seen.Add(1) > 1 {       // the first one misses it: best effort
			send(strings.Replace(broadcastFrame, "2025-01-02T03:04:05.000006Z", created, 1))
		}
		send(`{"type":"unread","count":1}`)
		send(strings.Replace(notificationFrame, "2025-01-02T03:04:05.000006Z", created, 1))
		_, _, _ = ws.ReadMessage() // until the client closes
	}))
	defer srv.Close()
	dir := t.TempDir()
	o := &options{
		gateways: []string{"ws" + strings.TrimPrefix(srv.URL, "http")}, secret: strings.Repeat("s", 32), run: "t", event: "e",
		broadcasts: "live", out: filepath.Join(dir, "lat.txt"), outLive: filepath.Join(dir, "live.txt"),
		count: 4, perSource: 1000, dialRate: 1000, parallel: 4, timeout: 20 * time.Second, settle: 50 * time.Millisecond,
		readBuf: 1024, writeBuf: 512, dialTimeout: 5 * time.Second, tokenLifetime: time.Hour, reportEveryDialed: 5000,
	}
	ok, err := hold(o)
	if err != nil || !ok {
		t.Fatalf("hold = %v, %v; want a clean run", ok, err)
	}
	if asked.Load() != 4 {
		t.Errorf("%d of 4 connections asked for broadcasts=live", asked.Load())
	}
	for file, want := range map[string]int{o.out: 4, o.outLive: 3} {
		raw, err := os.ReadFile(file)
		if err != nil || len(strings.Fields(string(raw))) != want {
			t.Errorf("%s: %q, %v; want %d latencies", file, raw, err, want)
		}
		for _, l := range strings.Fields(string(raw)) {
			if us, _ := strconv.Atoi(l); us < 900_000 || us > 15_000_000 {
				t.Errorf("%s: latency %s µs, want about 1 s", file, l)
			}
		}
	}
}

// hold against a fake gateway that drops one connection before the
// event: the run ends as soon as the others have it (not at its timeout,
// which is beyond the test's), and fails with that connection counted
// dropped and missing.
func TestHoldEndsWhenADroppedConnectionCannotGetTheEvent(t *testing.T) {
	created := time.Now().Add(-time.Second).UTC().Format(time.RFC3339Nano)
	var n atomic.Int32
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer func() { _ = ws.Close() }()
		_ = ws.WriteMessage(websocket.TextMessage, []byte(`{"type":"synced","seq":0,"unread":0}`))
		time.Sleep(100 * time.Millisecond) // after READY
		if n.Add(1) == 1 {
			_ = ws.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(4008, "too slow"))
			return
		}
		_ = ws.WriteMessage(websocket.TextMessage, []byte(strings.Replace(notificationFrame, "2025-01-02T03:04:05.000006Z", created, 1)))
		_, _, _ = ws.ReadMessage() // until the client closes
	}))
	defer srv.Close()
	dir := t.TempDir()
	o := &options{
		gateways: []string{"ws" + strings.TrimPrefix(srv.URL, "http")}, secret: strings.Repeat("s", 32), run: "t", event: "e",
		broadcasts: "inbox", out: filepath.Join(dir, "lat.txt"), outLive: filepath.Join(dir, "live.txt"),
		count: 3, perSource: 1000, dialRate: 1000, parallel: 3, timeout: time.Hour, settle: 50 * time.Millisecond,
		readBuf: 1024, writeBuf: 512, dialTimeout: 5 * time.Second, tokenLifetime: time.Hour, reportEveryDialed: 5000,
	}
	done := make(chan struct{})
	var ok bool
	var err error
	go func() {
		defer close(done)
		ok, err = hold(o)
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("hold still waits for the event on a dropped connection")
	}
	if err != nil || ok {
		t.Fatalf("hold = %v, %v; want a failed run (one dropped)", ok, err)
	}
	raw, err := os.ReadFile(o.out)
	if err != nil || len(strings.Fields(string(raw))) != 2 {
		t.Errorf("%s: %q, %v; want 2 latencies", o.out, raw, err)
	}
}

// BenchmarkNote is the read loop's cost per frame, by kind: frames that
// are neither notification nor broadcast are not decoded.
func BenchmarkNote(b *testing.B) {
	o := &options{event: "e", broadcasts: "live"}
	now := time.Now()
	for name, f := range map[string]string{
		"notification": notificationFrame, "broadcast": broadcastFrame,
		"unread": `{"type":"unread","count":3}`,
	} {
		b.Run(name, func(b *testing.B) {
			raw := []byte(f)
			c := &conn{}
			for b.Loop() {
				o.note(c, raw, now)
			}
		})
	}
}
