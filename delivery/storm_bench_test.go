package delivery

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// BenchmarkReconnectStorm is a measurement, not a test: STORM_CONNS
// clients (default 4,000) whose gateway just died all reconnect at once,
// resuming with after=1 (two notifications each to replay). Each client
// backs off as the JS SDK will: on 503 it waits Retry-After plus up to 1 s
// of jitter; on 1013, 1011 or a failed dial, full-jitter exponential
// backoff from 250 ms to 8 s. Reported: seconds until every client is
// resynced (synced frame with both notifications), refusals, 1013 closes,
// failed dials, peak replays waiting for a slot, and peak memory. A
// resynced client keeps reading (so it answers the gateway's pings) until
// the end; losing one fails the benchmark.
// STORM_TIMEOUT (default 5m) bounds the storm: clients not resynced by
// then fail the benchmark. Client sockets are bound to STORM_SOURCES
// (default 64) source addresses 127.0.1.1, 127.0.1.2, … when the gateway is
// on loopback, so that no source address runs out of ephemeral ports.
//
// In process (STORM_GATEWAYS unset) the gateway runs in this process:
// each client costs two file descriptors here, keep STORM_CONNS under half
// the 20,000 per-process limit. The store is the memory store with
// STORM_STORE_LATENCY (default 2ms) added to every call, a stand-in for
// Cassandra reads. STORM_RATE and STORM_BURST set the upgrade bucket
// (default: the gateway's defaults; STORM_RATE=-1: no bucket),
// STORM_REPLAYS the replay slots and STORM_QUEUE the replay queue (-1:
// unbounded). Memory reported: the process's peak RSS (VmHWM: gateway and
// clients together) and peak Go heap.
//
// External (STORM_GATEWAYS=<http base URLs, comma separated>): the
// gateways are other processes, `herald dev` (see stormExternal), and only
// the clients run here (one descriptor each). Memory reported: each
// gateway's peak RSS (VmHWM of the matching STORM_GATEWAY_PIDS) and RSS
// growth per connection, and this process's. scripts/bench/storm.sh runs
// it against a fresh herald dev. Run:
//
//	go test -run '^$' -bench 'ReconnectStorm$' -benchtime 1x ./delivery/
//	bash scripts/bench/storm.sh   # 15,000 clients against herald dev
func BenchmarkReconnectStorm(b *testing.B) {
	latency := envDuration(b, "STORM_STORE_LATENCY", 2*time.Millisecond)
	for range b.N {
		runStorm(b, func(st store.Inbox) store.Inbox { return &slowInbox{Inbox: st, delay: latency} })
	}
}

// stormTarget is what one storm runs against: the gateways' WebSocket
// URLs, one token per seeded user, and the gateways' side of the report.
type stormTarget struct {
	wsURLs []string
	toks   []string
	// waiting is how many connections wait for a replay slot now, summed
	// over the gateways; sampled during the storm.
	waiting func() int64
	// sample is called with waiting on the same ticker (may be nil).
	sample func()
	// report adds the gateways' figures once every client is resynced.
	report func(b *testing.B, n int)
}

// runStorm runs one storm: against the external gateways of
// STORM_GATEWAYS when set, else against an in-process gateway whose store
// is inbox(the env's memory store).
func runStorm(b *testing.B, inbox func(store.Inbox) store.Inbox) {
	n := envInt(b, "STORM_CONNS", 4000)
	var t stormTarget
	if os.Getenv("STORM_GATEWAYS") != "" {
		t = stormExternal(b, n)
	} else {
		t = stormInProcess(b, n, inbox)
	}
	storm(b, n, t)
}

// stormInProcess seeds a gateway in this process (memory store wrapped by
// inbox) with three notifications for each of n users.
func stormInProcess(b *testing.B, n int, inbox func(store.Inbox) store.Inbox) stormTarget {
	var st store.Inbox
	e := newEnv(b, func(c *Config) {
		c.Store = inbox(c.Store)
		st = c.Store
		c.UpgradeRate = float64(envInt(b, "STORM_RATE", 0))
		c.UpgradeBurst = envInt(b, "STORM_BURST", 0)
		c.MaxReplays = envInt(b, "STORM_REPLAYS", 0)
		c.MaxReplayQueue = envInt(b, "STORM_QUEUE", 0)
	})
	toks := make([]string, n)
	w, err := st.Fence(context.Background(), "storm/"+herald.NewID(time.Now()))
	if err != nil {
		b.Fatal(err)
	}
	run := herald.NewID(time.Now())
	var batch []herald.Notification
	for i := range toks {
		user := fmt.Sprintf("storm-%s-%d", run, i)
		toks[i] = token(b, user)
		for j := range 3 {
			batch = append(batch, herald.Notification{ID: herald.NewID(time.Now()), EventID: fmt.Sprintf("e-%d-%d", i, j), Type: "t", UserID: user})
		}
		if len(batch) >= 300 || i == n-1 {
			if _, err := w.Append(context.Background(), batch); err != nil {
				b.Fatal(err)
			}
			batch = batch[:0]
		}
	}
	runtime.GC()
	var peakHeap atomic.Uint64
	return stormTarget{
		wsURLs:  []string{e.wsURL},
		toks:    toks,
		waiting: func() int64 { return int64(gaugeValue(e.gw.m.replaysWaiting)) },
		sample: func() {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
		},
		report: func(b *testing.B, _ int) {
			b.ReportMetric(float64(peakHeap.Load())/(1<<20), "peak_heap_MiB")
			b.ReportMetric(float64(procStatusKiB("self", "VmHWM"))/1024, "peak_RSS_MiB")
		},
	}
}

// storm connects every client of t at once (client i to gateway i mod the
// number of gateways) and reports once all are resynced.
func storm(b *testing.B, n int, t stormTarget) {
	timeout := envDuration(b, "STORM_TIMEOUT", 5*time.Minute)
	dialers := stormDialers(b, t.wsURLs, envInt(b, "STORM_SOURCES", 64))
	var (
		refused, tryLater, failed atomic.Int64
		synced, dropped           atomic.Int64
		closing                   atomic.Bool
		drains                    sync.WaitGroup
		peakWaiting               atomic.Int64
		conns                     = make([]*websocket.Conn, n)
		wg                        sync.WaitGroup
	)
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() { // sample the gateways' state until the storm is over
		defer close(sampled)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if w := t.waiting(); w > peakWaiting.Load() {
				peakWaiting.Store(w)
			}
			if t.sample != nil {
				t.sample()
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	start := time.Now()
	b.ResetTimer()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			g := i % len(t.wsURLs)
			c := stormClient(ctx, b, dialers[g][i/len(t.wsURLs)%len(dialers[g])], t.wsURLs[g]+"?after=1&token="+t.toks[i], &refused, &tryLater, &failed)
			if c == nil {
				return
			}
			conns[i] = c
			synced.Add(1)
			// Keep reading, as a client does: it answers the gateway's
			// pings, else the gateway would close it a ping interval and
			// pong wait (35 s) after its last frame, freeing its slot.
			_ = c.SetReadDeadline(time.Time{})
			drains.Add(1)
			go func() {
				defer drains.Done()
				for {
					if _, _, err := c.ReadMessage(); err != nil {
						if !closing.Load() && dropped.Add(1) <= 3 {
							b.Logf("client %d: resynced connection lost after %.1f s: %v", i, time.Since(start).Seconds(), err)
						}
						return
					}
				}
			}()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	<-sampled
	if d := dropped.Load(); d > 0 {
		b.Errorf("%d resynced connections were closed during the storm", d)
	}
	if s := synced.Load(); s < int64(n) {
		b.Errorf("%d of %d connections resynced within STORM_TIMEOUT=%s (%d refused (503), %d closed 1013, %d failed dials)",
			s, n, timeout, refused.Load(), tryLater.Load(), failed.Load())
	}
	b.ReportMetric(elapsed.Seconds(), "s_to_resync_all")
	b.ReportMetric(float64(refused.Load()), "refused_503")
	b.ReportMetric(float64(tryLater.Load()), "closed_1013")
	b.ReportMetric(float64(failed.Load()), "failed_dials")
	b.ReportMetric(float64(peakWaiting.Load()), "peak_replays_waiting")
	t.report(b, n)
	b.Logf("%d connections resynced in %.1f s: %d refused (503), %d closed 1013, %d failed dials, peak %d waiting for a replay slot",
		synced.Load(), elapsed.Seconds(), refused.Load(), tryLater.Load(), failed.Load(), peakWaiting.Load())
	closing.Store(true)
	for _, c := range conns {
		if c != nil {
			_ = c.Close()
		}
	}
	drains.Wait()
}

// stormDialers returns, per gateway URL, the dialers the clients share:
// for a gateway on a loopback IP, one per source address 127.0.1.1 …
// 127.0.1.sources (at most 250), each address with its own ephemeral port
// range; otherwise the default dialer alone.
func stormDialers(b *testing.B, urls []string, sources int) [][]*websocket.Dialer {
	out := make([][]*websocket.Dialer, len(urls))
	for g, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil {
			b.Fatalf("gateway URL %q: %v", raw, err)
		}
		ip := net.ParseIP(u.Hostname())
		if ip == nil || !ip.IsLoopback() || ip.To4() == nil || sources <= 0 {
			out[g] = []*websocket.Dialer{websocket.DefaultDialer}
			continue
		}
		for s := range min(sources, 250) {
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+s))}}
			out[g] = append(out[g], &websocket.Dialer{
				NetDialContext:   d.DialContext,
				HandshakeTimeout: 45 * time.Second,
				Proxy:            http.ProxyFromEnvironment,
			})
		}
	}
	return out
}

// stormClient connects until it is resynced and returns the connection,
// or nil once ctx is done.
func stormClient(ctx context.Context, b *testing.B, d *websocket.Dialer, url string, refused, tryLater, failed *atomic.Int64) *websocket.Conn {
	backoff := 250 * time.Millisecond
	sleep := func(dt time.Duration) bool {
		t := time.NewTimer(dt)
		defer t.Stop()
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
			return true
		}
	}
	retry := func() bool {
		dt := rand.N(backoff) + time.Millisecond // full jitter
		backoff = min(2*backoff, 8*time.Second)
		return sleep(dt)
	}
	for ctx.Err() == nil {
		c, resp, err := d.DialContext(ctx, url, nil)
		if err != nil {
			if resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
				refused.Add(1)
				secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				resp.Body.Close()
				if !sleep(time.Duration(secs)*time.Second + rand.N(time.Second)) {
					return nil
				}
				continue
			}
			if ctx.Err() != nil {
				return nil
			}
			failed.Add(1)
			if !retry() {
				return nil
			}
			continue
		}
		got := 0
		for {
			f, err := tryRead(c)
			if err != nil {
				if websocket.IsCloseError(err, CloseTryAgainLater) {
					tryLater.Add(1)
				} else {
					failed.Add(1)
				}
				_ = c.Close()
				break
			}
			if f.Type == "notification" {
				got++
			}
			if f.Type == "synced" {
				if got != 2 || f.Seq != 3 {
					b.Errorf("resynced with %d notifications at %d, want 2 at 3", got, f.Seq)
				}
				return c
			}
		}
		if !retry() {
			return nil
		}
	}
	return nil
}

// slowInbox adds a fixed latency to every read of the inbox.
type slowInbox struct {
	store.Inbox
	delay time.Duration
}

func (s *slowInbox) LastSeq(ctx context.Context, user string) (uint64, error) {
	time.Sleep(s.delay)
	return s.Inbox.LastSeq(ctx, user)
}

func (s *slowInbox) UnreadCount(ctx context.Context, user string) (int64, error) {
	time.Sleep(s.delay)
	return s.Inbox.UnreadCount(ctx, user)
}

func (s *slowInbox) List(ctx context.Context, user string, after uint64, limit int, unreadOnly bool) ([]herald.Notification, error) {
	time.Sleep(s.delay)
	return s.Inbox.List(ctx, user, after, limit, unreadOnly)
}

// procStatusKiB is the field (VmHWM: peak resident set, VmRSS: resident
// set) of /proc/<pid>/status in KiB, pid "self" for this process (Linux;
// 0 elsewhere or when the process is gone).
func procStatusKiB(pid, field string) int64 {
	f, err := os.Open("/proc/" + pid + "/status")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb
		}
	}
	return 0
}

func envInt(tb testing.TB, name string, def int) int {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		tb.Fatalf("%s=%q: %v", name, s, err)
	}
	return v
}

func envDuration(tb testing.TB, name string, def time.Duration) time.Duration {
	s := os.Getenv(name)
	if s == "" {
		return def
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		tb.Fatalf("%s=%q: %v", name, s, err)
	}
	return v
}
