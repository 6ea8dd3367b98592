package delivery

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	herald "github.com/heraldhq/herald"
)

// rawDial opens an idle client connection with a hand-written handshake,
// so the client side costs only a socket, and waits for the synced frame.
func rawDial(tb testing.TB, addr, tok string) net.Conn {
	tb.Helper()
	return rawDialFrom(tb, addr, tok, nil)
}

// rawDialFrom is rawDial from the source address local (nil: any).
func rawDialFrom(tb testing.TB, addr, tok string, local *net.TCPAddr) net.Conn {
	tb.Helper()
	d := net.Dialer{}
	if local != nil {
		d.LocalAddr = local
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		tb.Fatal(err)
	}
	_ = nc.SetDeadline(time.Now().Add(15 * time.Second))
	if _, err := fmt.Fprintf(nc, "GET /v1/ws?token=%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", tok, addr); err != nil {
		tb.Fatalf("raw handshake: %v", err)
	}
	var got []byte
	buf := make([]byte, 512)
	for !bytes.Contains(got, []byte(`"type":"synced"`)) {
		n, err := nc.Read(buf)
		if err != nil {
			tb.Fatalf("raw handshake: %v (got %q)", err, got)
		}
		got = append(got, buf[:n]...)
	}
	if !bytes.HasPrefix(got, []byte("HTTP/1.1 101")) {
		tb.Fatalf("raw handshake answered %q", got)
	}
	_ = nc.SetDeadline(time.Time{})
	return nc
}

// idleBytesPerConn opens n idle connections and returns the growth of heap
// plus goroutine stacks per connection, after GC. It includes the few
// hundred bytes of the client's own socket.
func idleBytesPerConn(tb testing.TB, n int) (perConn float64, goroutinesPerConn float64) {
	tb.Helper()
	e := newEnv(tb, func(c *Config) {
		// Memory only: no upgrade bucket, no position checks' goroutines.
		c.PingInterval, c.UpgradeRate, c.PositionInterval = time.Hour, -1, -1
	})
	addr := strings.TrimPrefix(e.srv.URL, "http://")
	toks := make([]string, n)
	for i := range toks {
		toks[i] = token(tb, fmt.Sprintf("idle-%d", i))
	}
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// Warm up pools and code paths, then measure from a settled heap.
	for range 10 {
		rawDial(tb, addr, token(tb, "warm")).Close()
	}
	eventually(tb, "warm-up connections to close", func() bool { return e.gw.ConnCount() == 0 })
	var before, after runtime.MemStats
	settle := func(m *runtime.MemStats) int {
		for range 3 {
			runtime.GC()
		}
		runtime.ReadMemStats(m)
		return runtime.NumGoroutine()
	}
	g0 := settle(&before)
	for _, tok := range toks {
		conns = append(conns, rawDial(tb, addr, tok))
	}
	eventually(tb, "every replay to finish", func() bool { return runtime.NumGoroutine() <= g0+n+5 })
	g1 := settle(&after)
	grow := float64(after.HeapAlloc+after.StackInuse) - float64(before.HeapAlloc+before.StackInuse)
	tb.Logf("per connection: heap %.0f B, stacks %.0f B",
		(float64(after.HeapAlloc)-float64(before.HeapAlloc))/float64(n),
		(float64(after.StackInuse)-float64(before.StackInuse))/float64(n))
	return grow / float64(n), float64(g1-g0) / float64(n)
}

// TestIdleConnectionMemory reports the memory of an idle connection; the
// bound is only a sanity check (the design target is ~10 KiB).
func TestIdleConnectionMemory(t *testing.T) {
	const n = 2000
	per, gor := idleBytesPerConn(t, n)
	t.Logf("%d idle connections: %.0f bytes (heap+stack) and %.2f goroutines per connection", n, per, gor)
	if per > 64<<10 {
		t.Fatalf("%.0f bytes per idle connection", per)
	}
	if gor > 1.05 {
		t.Fatalf("%.2f goroutines per idle connection, want 1 (the reader)", gor)
	}
}

// BenchmarkIdleConnectionMemory: run with -benchtime=1x.
func BenchmarkIdleConnectionMemory(b *testing.B) {
	for range b.N {
		per, gor := idleBytesPerConn(b, 2000)
		b.ReportMetric(per, "bytes/conn")
		b.ReportMetric(gor, "goroutines/conn")
	}
}

// BenchmarkFanout delivers notifications round-robin to 100 users with 10
// connections each (1,000 sockets, read by real clients in this process).
// One op is one Deliver call, i.e. 10 frames on the wire; frames/s counts
// frames received by the clients. At most `window` frames are in flight.
func BenchmarkFanout(b *testing.B) {
	const users, perUser, window = 100, 10, 4000
	e := newEnv(b, func(c *Config) { c.PingInterval = time.Hour })
	var received atomic.Int64
	sem := make(chan struct{}, window)
	var readers sync.WaitGroup
	var clients []*websocket.Conn
	names := make([]string, users)
	for u := range users {
		names[u] = fmt.Sprintf("fan-%d", u)
		for range perUser {
			c, resp, err := websocket.DefaultDialer.Dial(e.wsURL+"?token="+token(b, names[u]), nil)
			if resp != nil {
				resp.Body.Close()
			}
			if err != nil {
				b.Fatal(err)
			}
			if _, s := readUntilSynced(b, c); s.Seq != 0 {
				b.Fatalf("synced %v", s)
			}
			_ = c.SetReadDeadline(time.Time{})
			clients = append(clients, c)
			readers.Add(1)
			go func() {
				defer readers.Done()
				buf := make([]byte, 1024)
				for {
					_, r, err := c.NextReader()
					if err != nil {
						return
					}
					for {
						if _, err := r.Read(buf); err == io.EOF {
							break
						} else if err != nil {
							return
						}
					}
					received.Add(1)
					<-sem
				}
			}()
		}
	}
	defer func() {
		for _, c := range clients {
			_ = c.Close() // ends its reader; the benchmark is over
		}
		readers.Wait()
	}()
	seqs := make([]uint64, users)
	n := herald.Notification{
		ID: herald.NewID(time.Now()), EventID: "evt-bench", Type: "mention", Priority: herald.PriorityNormal,
		Title: "Ada mentioned you", Body: "in #general: shall we ship it?", Data: []byte(`{"url":"/c/general/42"}`),
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		u := i % users
		for range perUser {
			sem <- struct{}{}
		}
		n.Prev, n.Seq = seqs[u], seqs[u]+1
		seqs[u]++
		n.CreatedAt = time.Now()
		if online, err := e.gw.Deliver(ctx, names[u], n); !online || err != nil {
			b.Fatalf("Deliver = %v, %v", online, err)
		}
	}
	want := int64(b.N) * perUser
	for received.Load() < want {
		if e.gw.ConnCount() < users*perUser {
			b.Fatalf("a connection was dropped (%d left)", e.gw.ConnCount())
		}
		time.Sleep(100 * time.Microsecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(want)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "notifications/s")
}
