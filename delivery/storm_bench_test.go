package delivery

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
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
// clients (default 4,000; each costs two file descriptors in this process,
// keep it under half the 20,000 per-process limit) whose gateway just died
// all reconnect at once to this one, resuming with after=1 (two
// notifications each to replay). Each client backs off as the JS SDK will:
// on 503 it waits Retry-After plus up to 1 s of jitter; on 1013, 1011 or
// a failed dial, full-jitter exponential backoff from 250 ms to 8 s. The
// store is the memory store with STORM_STORE_LATENCY (default 2ms) added
// to every call, a stand-in for Cassandra reads. STORM_RATE and
// STORM_BURST set the upgrade bucket (default: the gateway's defaults;
// STORM_RATE=-1: no bucket), STORM_REPLAYS the replay slots and
// STORM_QUEUE the replay queue (-1: unbounded). Reported:
// seconds until every client is resynced (synced frame with both
// notifications), refusals, 1013 closes, peak replays waiting, and the
// process's peak RSS (VmHWM: gateway and clients together) and peak Go
// heap. Run:
//
//	go test -run '^$' -bench ReconnectStorm -benchtime 1x ./delivery/
func BenchmarkReconnectStorm(b *testing.B) {
	latency := envDuration(b, "STORM_STORE_LATENCY", 2*time.Millisecond)
	for range b.N {
		runStorm(b, func(st store.Inbox) store.Inbox { return &slowInbox{Inbox: st, delay: latency} })
	}
}

// runStorm runs one storm against inbox(the env's memory store): it seeds
// the inbox, then connects every client at once and reports.
func runStorm(b *testing.B, inbox func(store.Inbox) store.Inbox) {
	n := envInt(b, "STORM_CONNS", 4000)
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
	var (
		refused, tryLater, failed atomic.Int64
		peakWaiting               atomic.Int64
		peakHeap                  atomic.Uint64
		conns                     = make([]*websocket.Conn, n)
		wg                        sync.WaitGroup
	)
	stop := make(chan struct{})
	go func() { // sample the gateway's state
		var ms runtime.MemStats
		t := time.NewTicker(50 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			if w := int64(gaugeValue(e.gw.m.replaysWaiting)); w > peakWaiting.Load() {
				peakWaiting.Store(w)
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peakHeap.Load() {
				peakHeap.Store(ms.HeapInuse)
			}
		}
	}()
	start := time.Now()
	b.ResetTimer()
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			conns[i] = stormClient(b, e.wsURL+"?after=1&token="+toks[i], &refused, &tryLater, &failed)
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(stop)
	b.ReportMetric(elapsed.Seconds(), "s_to_resync_all")
	b.ReportMetric(float64(refused.Load()), "refused_503")
	b.ReportMetric(float64(tryLater.Load()), "closed_1013")
	b.ReportMetric(float64(failed.Load()), "failed_dials")
	b.ReportMetric(float64(peakWaiting.Load()), "peak_replays_waiting")
	b.ReportMetric(float64(peakHeap.Load())/(1<<20), "peak_heap_MiB")
	b.ReportMetric(float64(vmHWM(b))/1024, "peak_RSS_MiB")
	b.Logf("%d connections resynced in %.1f s: %d refused (503), %d closed 1013, %d failed dials, peak %d waiting for a replay slot",
		n, elapsed.Seconds(), refused.Load(), tryLater.Load(), failed.Load(), peakWaiting.Load())
	for _, c := range conns {
		_ = c.Close()
	}
}

// stormClient connects until it is resynced and returns the connection.
func stormClient(b *testing.B, url string, refused, tryLater, failed *atomic.Int64) *websocket.Conn {
	backoff := 250 * time.Millisecond
	retry := func() {
		time.Sleep(rand.N(backoff) + time.Millisecond) // full jitter
		backoff = min(2*backoff, 8*time.Second)
	}
	for {
		c, resp, err := websocket.DefaultDialer.Dial(url, nil)
		if err != nil {
			if resp != nil && resp.StatusCode == http.StatusServiceUnavailable {
				refused.Add(1)
				secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
				resp.Body.Close()
				time.Sleep(time.Duration(secs)*time.Second + rand.N(time.Second))
				continue
			}
			failed.Add(1)
			retry()
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
		retry()
	}
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

// vmHWM is the process's peak resident set in KiB (Linux; 0 elsewhere).
func vmHWM(tb testing.TB) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0
	}
	defer func() { _ = f.Close() }()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
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
