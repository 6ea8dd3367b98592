// Command herald-conns holds many WebSocket connections to Herald's
// gateways for a capacity test (make bench-conns, docs/BENCHMARKS.md,
// "Connections on one machine"): one user each, users <run>-<i> for i in
// [-from, -from+-count), connection i to gateway i mod len(-gateways),
// bound to a source address of its own block of 127.0.0.0/8 (-per-source
// connections per address, so that no address runs out of ephemeral
// ports).
//
// It dials at most -dial-rate connections per second, -dial-parallel at a
// time, each with after=0 so that the gateway answers with "synced", and
// prints "READY <n>" once every connection is synced. Then it waits for
// the notification whose event_id is -event on every connection: the
// latency of each is its arrival minus the notification's created_at, one
// line of microseconds per connection in -out. It stops when every
// connection has it (and -settle passed without a second copy), or at
// -timeout, and prints a machine-readable "RESULT" line: connections
// held, received, missing, duplicate, dropped (closed by the gateway),
// and its own p50/p99. It exits with status 1 when a connection failed to
// open, was dropped, or missed or doubled the notification.
//
// A process may hold 20,000 open files here: run several, each with its
// own -from and -count below that.
//
//	herald-conns -gateways ws://127.0.0.1:19201,ws://127.0.0.1:19202 \
//	    -jwt-secret … -run conns-1 -from 0 -count 15000 -event big-1 -out lat-0.txt
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
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
	out                string
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

// conn is one client: when it got the event (zero: not yet) and how it
// ended.
type conn struct {
	ws      *websocket.Conn
	user    string
	latency atomic.Int64 // µs; 0: not received
	copies  atomic.Int32
	dropped atomic.Bool
}

// frame is the part of a gateway frame herald-conns reads.
type frame struct {
	Type         string `json:"type"`
	Notification struct {
		EventID   string    `json:"event_id"`
		CreatedAt time.Time `json:"created_at"`
	} `json:"notification"`
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
	ws, resp, err := d.DialContext(ctx, base+"/v1/ws?token="+tok+"&after=0", nil)
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
		var f frame
		if json.Unmarshal(raw, &f) == nil && f.Type == "synced" {
			break
		}
	}
	_ = ws.SetReadDeadline(time.Time{})
	return &conn{ws: ws, user: user}, nil
}

// read runs until the connection closes: it answers pings (gorilla does)
// and notes the event's arrivals.
func (o *options) read(c *conn, arrived chan<- struct{}) {
	for {
		_, raw, err := c.ws.ReadMessage()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				c.dropped.Store(true)
			}
			return
		}
		now := time.Now()
		var f frame
		if json.Unmarshal(raw, &f) != nil || f.Type != "notification" || f.Notification.EventID != o.event {
			continue
		}
		if c.copies.Add(1) == 1 {
			c.latency.Store(max(1, now.Sub(f.Notification.CreatedAt).Microseconds()))
			arrived <- struct{}{} // buffered for every connection
		}
	}
}

func (o *options) say(format string, args ...any) {
	o.stdoutMu.Lock()
	defer o.stdoutMu.Unlock()
	fmt.Printf(format+"\n", args...)
}

// report prints the RESULT line, writes -out and tells whether the run was
// clean.
func report(o *options, conns []*conn) bool {
	var lat []int64
	var held, dropped, dup int
	for _, c := range conns {
		if c == nil {
			continue
		}
		held++
		if c.dropped.Load() {
			dropped++
		}
		if l := c.latency.Load(); l > 0 {
			lat = append(lat, l)
		}
		if c.copies.Load() > 1 {
			dup++
		}
	}
	slices.Sort(lat)
	missing := 0
	if o.event != "" {
		missing = o.count - len(lat)
	}
	pct := func(p float64) float64 {
		if len(lat) == 0 {
			return 0
		}
		return float64(lat[min(len(lat)-1, int(p*float64(len(lat))))]) / 1000
	}
	if o.out != "" {
		var b strings.Builder
		for _, l := range lat {
			fmt.Fprintln(&b, l)
		}
		if err := os.WriteFile(o.out, []byte(b.String()), 0o600); err != nil {
			fmt.Fprintln(os.Stderr, "herald-conns:", err)
		}
	}
	o.say("RESULT from=%d count=%d held=%d received=%d missing=%d duplicate=%d dropped=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f",
		o.from, o.count, held, len(lat), missing, dup, dropped, pct(0.50), pct(0.99), pct(1))
	return held == o.count && missing == 0 && dup == 0 && dropped == 0
}
