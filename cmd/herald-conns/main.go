// Command herald-conns holds many WebSocket connections to Herald's
// gateways for a capacity test (make bench-conns, docs/BENCHMARKS.md,
// "Connections on one machine"): one user each, users <run>-<i> for i in
// [-from, -from+-count), connection i to gateway i mod len(-gateways),
// bound to a source address of its own block of 127.0.0.0/8 (-per-source
// connections per address, so that no address runs out of ephemeral
// ports).
//
// It dials at most -dial-rate connections per second, -dial-parallel at a
// time, each with after=0 so that the gateway answers with "synced" (and
// with broadcasts=live under -broadcasts live), and prints "READY <n>"
// once every connection is synced. Then it waits for the notification
// whose event_id is -event on every connection: the latency of each is its
// arrival minus the notification's created_at, one line of microseconds
// per connection in -out. Under -broadcasts live it also notes the
// "broadcast" frame with that event_id on each connection
// (docs/ARCHITECTURE.md, "Live broadcasts"), its latency against the
// broadcast's created_at in -out-live. It stops when every connection has
// the notification (and -settle passed without a second copy), or at
// -timeout, and prints a machine-readable "RESULT" line: connections
// held, received, missing, duplicate, dropped (closed by the gateway) and
// its own p50/p99/max of the notification, then broadcasts=<mode> and the
// same for the broadcast frame as live_received, live_missing,
// live_duplicate, live_p50_ms, live_p99_ms, live_max_ms. It exits with
// status 1 when a connection failed to open, was dropped, or missed or
// doubled the notification, or got the broadcast frame twice (or at all
// under -broadcasts inbox, where the gateway must not send it). A missing
// broadcast frame is counted but is no failure: the frame is best effort.
//
// A process may hold 20,000 open files here: run several, each with its
// own -from and -count below that.
//
//	herald-conns -gateways ws://127.0.0.1:19201,ws://127.0.0.1:19202 \
//	    -jwt-secret … -run conns-1 -from 0 -count 15000 -event big-1 -out lat-0.txt \
//	    -broadcasts live -out-live live-0.txt
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/heraldhq/herald/auth"
)

type options struct {
	gateways           []string
	secret, run, event string
	out, outLive       string
	broadcasts         string // "inbox" or "live"
	from, count        int
	perSource          int
	sourceBase         netip.Addr
	dialRate, parallel int
	timeout, settle    time.Duration
	readBuf, writeBuf  int
	dialTimeout        time.Duration
	tokenLifetime      time.Duration
	reportEveryDialed  int
	stdoutMu           sync.Mutex
}

func main() {
	o := &options{}
	gateways := flag.String("gateways", "ws://127.0.0.1:8080", "gateway base URLs, comma separated")
	flag.StringVar(&o.secret, "jwt-secret", os.Getenv("HERALD_JWT_SECRET"), "HS256 secret to mint user tokens")
	flag.StringVar(&o.run, "run", "conns", "user id prefix: users are <run>-<i>")
	flag.StringVar(&o.event, "event", "", "event id to wait for on every connection (empty: hold the connections until -timeout)")
	flag.StringVar(&o.out, "out", "", "file for the latencies, one per connection that received the event, in µs")
	flag.StringVar(&o.broadcasts, "broadcasts", "inbox", "live: open the connections with broadcasts=live and note the event's broadcast frame too; inbox: the notification only")
	flag.StringVar(&o.outLive, "out-live", "", "file for the broadcast frame's latencies (-broadcasts live), one per connection that received it, in µs")
	flag.IntVar(&o.from, "from", 0, "first user index")
	flag.IntVar(&o.count, "count", 1000, "connections (users)")
	flag.IntVar(&o.perSource, "per-source", 1000, "connections per source address")
	base := flag.String("source-base", "127.1.0.0", "source addresses are this plus 1 + i/per-source (empty: the kernel picks)")
	flag.IntVar(&o.dialRate, "dial-rate", 400, "connections opened per second at most")
	flag.IntVar(&o.parallel, "dial-parallel", 32, "handshakes in flight at most")
	flag.DurationVar(&o.dialTimeout, "dial-timeout", 30*time.Second, "one handshake and its synced frame")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up after, in all")
	flag.DurationVar(&o.settle, "settle", time.Second, "after the last expected arrival, keep listening this long for duplicates")
	flag.IntVar(&o.readBuf, "read-buffer", 1024, "client read buffer per connection, bytes")
	flag.IntVar(&o.writeBuf, "write-buffer", 512, "client write buffer per connection, bytes")
	flag.Parse()
	o.gateways = strings.Split(*gateways, ",")
	o.tokenLifetime = o.timeout + time.Hour
	o.reportEveryDialed = 5000
	if *base != "" {
		a, err := netip.ParseAddr(*base)
		if err != nil || !a.Is4() || !a.IsLoopback() {
			fmt.Fprintf(os.Stderr, "herald-conns: -source-base %q: want an IPv4 loopback address\n", *base)
			os.Exit(2)
		}
		o.sourceBase = a
	}
	if o.broadcasts != "inbox" && o.broadcasts != "live" {
		fmt.Fprintf(os.Stderr, "herald-conns: -broadcasts %q: want live or inbox\n", o.broadcasts)
		os.Exit(2)
	}
	if o.count < 1 || o.perSource < 1 || o.dialRate < 1 || o.parallel < 1 {
		fmt.Fprintln(os.Stderr, "herald-conns: -count, -per-source, -dial-rate and -dial-parallel must be positive")
		os.Exit(2)
	}
	ok, err := hold(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "herald-conns:", err)
		os.Exit(1)
	}
	if !ok {
		os.Exit(1)
	}
}

// conn is one client: when it got the event's notification and its
// broadcast frame (zero: not yet), and how it ended.
type conn struct {
	ws          *websocket.Conn
	user        string
	latency     atomic.Int64 // the notification, µs; 0: not received
	copies      atomic.Int32
	liveLatency atomic.Int64 // the broadcast frame, µs; 0: not received
	liveCopies  atomic.Int32
	dropped     atomic.Bool
}

// kind is what a gateway frame is, as far as herald-conns cares.
type kind int

const (
	kindOther kind = iota
	kindSynced
	kindNotification
	kindBroadcast
)

// The gateway renders every frame with "type" first (delivery/frames.go),
// so a prefix tells the kind without decoding the frame.
var (
	typePrefix = []byte(`{"type":"`)
	typeKinds  = []struct {
		name []byte // the type with its closing quote
		kind kind
	}{
		{[]byte(`notification"`), kindNotification},
		{[]byte(`broadcast"`), kindBroadcast},
		{[]byte(`synced"`), kindSynced},
	}
)

// classify tells raw's kind cheaply: by its prefix when it starts with
// {"type":", by decoding its type otherwise (a frame rendered another way).
func classify(raw []byte) kind {
	if rest, ok := bytes.CutPrefix(raw, typePrefix); ok {
		for _, t := range typeKinds {
			if bytes.HasPrefix(rest, t.name) {
				return t.kind
			}
		}
		return kindOther
	}
	var f struct {
		Type string `json:"type"`
	}
	if json.Unmarshal(raw, &f) != nil {
		return kindOther
	}
	switch f.Type {
	case "notification":
		return kindNotification
	case "broadcast":
		return kindBroadcast
	case "synced":
		return kindSynced
	}
	return kindOther
}

// item is the part of a notification or broadcast herald-conns reads.
type item struct {
	EventID   string    `json:"event_id"`
	CreatedAt time.Time `json:"created_at"`
}

// eventOf decodes the event id and created_at of a notification or
// broadcast frame (k from classify); ok is false for another kind or a
// frame that does not decode.
func eventOf(raw []byte, k kind) (it item, ok bool) {
	var f struct {
		Notification *item `json:"notification"`
		Broadcast    *item `json:"broadcast"`
	}
	if k != kindNotification && k != kindBroadcast || json.Unmarshal(raw, &f) != nil {
		return item{}, false
	}
	p := f.Notification
	if k == kindBroadcast {
		p = f.Broadcast
	}
	if p == nil {
		return item{}, false
	}
	return *p, true
}

// wsURL is the address connection i dials on gateway base.
func (o *options) wsURL(base, token string) string {
	u := strings.TrimRight(base, "/") + "/v1/ws?token=" + url.QueryEscape(token) + "&after=0"
	if o.broadcasts == "live" {
		u += "&broadcasts=live"
	}
	return u
}

// source is the local address of connection i (global index), or nil.
func (o *options) source(i int) net.Addr {
	if !o.sourceBase.IsValid() {
		return nil
	}
	a := o.sourceBase.As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n += 1 + uint32(i/o.perSource) //nolint:gosec // i is bounded by the flags
	ip := netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	return &net.TCPAddr{IP: ip.AsSlice()}
}

func hold(o *options) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), o.timeout)
	defer cancel()
	conns := make([]*conn, o.count)
	var readers sync.WaitGroup
	defer func() {
		for _, c := range conns {
			if c != nil && c.ws != nil {
				_ = c.ws.Close() // ends its reader; the measurement is done
			}
		}
		readers.Wait()
	}()
	arrived := make(chan struct{}, o.count)
	pool := &sync.Pool{}
	began := time.Now()
	tick := time.NewTicker(time.Second / time.Duration(o.dialRate))
	defer tick.Stop()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(o.parallel)
	var dialed atomic.Int64
	for i := range o.count {
		select {
		case <-tick.C:
		case <-gctx.Done():
		}
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			c, err := o.dial(gctx, o.from+i, pool)
			if err != nil {
				return err
			}
			conns[i] = c
			readers.Go(func() { o.read(c, arrived) })
			if n := dialed.Add(1); n%int64(o.reportEveryDialed) == 0 {
				o.say("dialed %d of %d in %v", n, o.count, time.Since(began).Round(time.Millisecond))
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return false, err
	}
	if ctx.Err() != nil {
		return false, fmt.Errorf("%d of %d connections open at the timeout", dialed.Load(), o.count)
	}
	o.say("READY %d (%v)", o.count, time.Since(began).Round(time.Millisecond))
	if o.event == "" {
		<-ctx.Done()
		return report(o, conns), nil
	}

	got := 0
	for got < o.count {
		select {
		case <-arrived:
			got++
		case <-ctx.Done():
			return report(o, conns), nil
		}
	}
	select { // a second copy would come soon after the first
	case <-time.After(o.settle):
	case <-ctx.Done():
	}
	return report(o, conns), nil
}

// dial opens connection i and waits for its synced frame.
func (o *options) dial(ctx context.Context, i int, pool *sync.Pool) (*conn, error) {
	user := fmt.Sprintf("%s-%d", o.run, i)
	tok, err := auth.Mint([]byte(o.secret), user, o.tokenLifetime)
	if err != nil {
		return nil, err
	}
	nd := &net.Dialer{LocalAddr: o.source(i), Timeout: o.dialTimeout}
	d := websocket.Dialer{
		NetDialContext:   nd.DialContext,
		HandshakeTimeout: o.dialTimeout,
		ReadBufferSize:   o.readBuf,
		WriteBufferSize:  o.writeBuf,
		WriteBufferPool:  pool,
	}
	base := strings.TrimRight(o.gateways[i%len(o.gateways)], "/")
	ws, resp, err := d.DialContext(ctx, o.wsURL(base, tok), nil)
	if resp != nil {
		_ = resp.Body.Close()
	}
	if err != nil {
		status := ""
		if resp != nil {
			status = " (" + resp.Status + ")"
		}
		return nil, fmt.Errorf("connection %d (%s) to %s from %v: %w%s", i, user, base, o.source(i), err, status)
	}
	_ = ws.SetReadDeadline(time.Now().Add(o.dialTimeout))
	for {
		_, raw, err := ws.ReadMessage()
		if err != nil {
			_ = ws.Close()
			return nil, fmt.Errorf("connection %d (%s): no synced frame: %w", i, user, err)
		}
		if classify(raw) == kindSynced {
			break
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	return &conn{ws: ws, user: user}, nil
}

// read runs until the connection closes: it answers pings (gorilla does)
// and notes the event's arrivals. It sends on arrived once per
// connection: at the event's first notification, or when the gateway
// drops the connection before it. Only notification and broadcast frames
// are decoded, and only their event id and created_at.
func (o *options) read(c *conn, arrived chan<- struct{}) {
	for {
		_, raw, err := c.ws.ReadMessage()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.dropped.Store(true)
				if o.event != "" && c.copies.Load() == 0 {
					// It will not get the event now: stop waiting for it
					// (it counts as dropped and missing).
					arrived <- struct{}{}
				}
			}
			return
		}
		now := time.Now()
		if o.note(c, raw, now) {
			arrived <- struct{}{} // buffered for every connection
		}
	}
}

// note records frame raw, arrived at now, on c, and tells whether it was
// the event's first notification there.
func (o *options) note(c *conn, raw []byte, now time.Time) bool {
	if o.event == "" {
		return false
	}
	k := classify(raw)
	if k != kindNotification && k != kindBroadcast {
		return false
	}
	it, ok := eventOf(raw, k)
	if !ok || it.EventID != o.event {
		return false
	}
	lat := max(1, now.Sub(it.CreatedAt).Microseconds())
	if k == kindBroadcast {
		if c.liveCopies.Add(1) == 1 {
			c.liveLatency.Store(lat)
		}
		return false
	}
	if c.copies.Add(1) == 1 {
		c.latency.Store(lat)
		return true
	}
	return false
}

func (o *options) say(format string, args ...any) {
	o.stdoutMu.Lock()
	defer o.stdoutMu.Unlock()
	fmt.Printf(format+"\n", args...)
}

// summary is one kind of arrival over the connections: the latencies of
// the first copies, sorted (µs), and the connections with more than one.
type summary struct {
	lat       []int64
	duplicate int
}

// summarize collects latency and copies (of one kind) over the held
// connections.
func summarize(conns []*conn, latency func(*conn) int64, copies func(*conn) int32) summary {
	var s summary
	for _, c := range conns {
		if c == nil {
			continue
		}
		if l := latency(c); l > 0 {
			s.lat = append(s.lat, l)
		}
		if copies(c) > 1 {
			s.duplicate++
		}
	}
	slices.Sort(s.lat)
	return s
}

// pct is the p-quantile of the latencies in ms (0 when there are none), as
// scripts/bench/conns.sh takes it over the files.
func (s summary) pct(p float64) float64 {
	if len(s.lat) == 0 {
		return 0
	}
	return float64(s.lat[min(len(s.lat)-1, int(p*float64(len(s.lat))))]) / 1000
}

// write puts the latencies in file, one a line (nothing when file is "").
func (s summary) write(file string) {
	if file == "" {
		return
	}
	var b strings.Builder
	for _, l := range s.lat {
		fmt.Fprintln(&b, l)
	}
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, "herald-conns:", err)
	}
}

// result is what the RESULT line reports.
type result struct {
	from, count, held, dropped int
	broadcasts                 string
	inbox, live                summary
	missing, liveMissing       int
}

// tally counts the connections' arrivals.
func tally(o *options, conns []*conn) result {
	r := result{from: o.from, count: o.count, broadcasts: o.broadcasts}
	if r.broadcasts == "" {
		r.broadcasts = "inbox"
	}
	for _, c := range conns {
		if c == nil {
			continue
		}
		r.held++
		if c.dropped.Load() {
			r.dropped++
		}
	}
	r.inbox = summarize(conns, func(c *conn) int64 { return c.latency.Load() }, func(c *conn) int32 { return c.copies.Load() })
	r.live = summarize(conns, func(c *conn) int64 { return c.liveLatency.Load() }, func(c *conn) int32 { return c.liveCopies.Load() })
	if o.event != "" {
		r.missing = o.count - len(r.inbox.lat)
		if r.broadcasts == "live" {
			r.liveMissing = o.count - len(r.live.lat)
		}
	}
	return r
}

// line is the RESULT line: the fields herald-conns always printed, then
// the broadcast frame's (live_*), so that parsers of the old line still
// work.
func (r result) line() string {
	return fmt.Sprintf("RESULT from=%d count=%d held=%d received=%d missing=%d duplicate=%d dropped=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f"+
		" broadcasts=%s live_received=%d live_missing=%d live_duplicate=%d live_p50_ms=%.1f live_p99_ms=%.1f live_max_ms=%.1f",
		r.from, r.count, r.held, len(r.inbox.lat), r.missing, r.inbox.duplicate, r.dropped, r.inbox.pct(0.50), r.inbox.pct(0.99), r.inbox.pct(1),
		r.broadcasts, len(r.live.lat), r.liveMissing, r.live.duplicate, r.live.pct(0.50), r.live.pct(0.99), r.live.pct(1))
}

// failures lists why the run is not clean (none: it is). A missing
// broadcast frame is not among them: it is best effort.
func (r result) failures() []string {
	var f []string
	if r.held != r.count {
		f = append(f, fmt.Sprintf("%d of %d connections held", r.held, r.count))
	}
	if r.dropped > 0 {
		f = append(f, fmt.Sprintf("%d dropped by the gateway", r.dropped))
	}
	if r.missing > 0 {
		f = append(f, fmt.Sprintf("%d without the notification", r.missing))
	}
	if r.inbox.duplicate > 0 {
		f = append(f, fmt.Sprintf("%d with the notification more than once", r.inbox.duplicate))
	}
	if r.live.duplicate > 0 {
		f = append(f, fmt.Sprintf("%d with the broadcast frame more than once", r.live.duplicate))
	}
	if r.broadcasts != "live" && len(r.live.lat) > 0 {
		f = append(f, fmt.Sprintf("%d with a broadcast frame though opened with broadcasts=inbox", len(r.live.lat)))
	}
	return f
}

// report prints the RESULT line, writes -out and -out-live and tells
// whether the run was clean.
func report(o *options, conns []*conn) bool {
	r := tally(o, conns)
	r.inbox.write(o.out)
	r.live.write(o.outLive)
	o.say("%s", r.line())
	f := r.failures()
	if len(f) > 0 {
		fmt.Fprintln(os.Stderr, "herald-conns: failed:", strings.Join(f, "; "))
	}
	return len(f) == 0
}
