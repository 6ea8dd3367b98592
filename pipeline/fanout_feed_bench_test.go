package pipeline

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
)

// writeCounter is the fan-out stage's store, counting its writes (feed
// items and cursors): the other calls are the embedded store's.
type writeCounter struct {
	FanoutStore
	puts, cursors atomic.Int64
}

func (w *writeCounter) PutFeedItem(ctx context.Context, ev herald.Event) (int64, bool, error) {
	w.puts.Add(1)
	return w.FanoutStore.PutFeedItem(ctx, ev)
}

func (w *writeCounter) SetFeedCursor(ctx context.Context, user, topic string, pos int64) error {
	w.cursors.Add(1)
	return w.FanoutStore.SetFeedCursor(ctx, user, topic, pos)
}

// BenchmarkLargeAudience: one broadcast per iteration to an audience of
// HERALD_BENCH_AUDIENCE members (1,000,000 by default) of whom 2,000 are
// connected and 1,000 have a device, through the fan-out stage and the
// enricher on kfake and the memory store, at an unbounded --fanout-rate.
// It reports the time until every connected member's inbox holds the
// broadcast (online-ms), until the pushed members' too (all-ms: the push
// pages read every member's devices), and the store writes per broadcast:
// inbox notifications and the stage's feed writes, which must be
// O(connected + pushed), not O(members).
//
// HERALD_BENCH_ON_WRITE=1 runs the same broadcast fanned out on write
// (the threshold above the audience) for the side-by-side figure: every
// member's inbox is written, and all-ms is until the last member has it.
func BenchmarkLargeAudience(b *testing.B) {
	onWrite := os.Getenv("HERALD_BENCH_ON_WRITE") == "1"
	members := 1_000_000
	if v := os.Getenv("HERALD_BENCH_AUDIENCE"); v != "" {
		var err error
		if members, err = strconv.Atoi(v); err != nil || members < 3000 {
			b.Fatalf("HERALD_BENCH_AUDIENCE=%q: want at least 3000", v)
		}
	}
	const connected, pushed = 2000, 1000
	e := newEnv(b)
	created := time.Now().Add(-time.Hour)
	us := make([]string, members)
	for i := range us {
		us[i] = fmt.Sprintf("m-%07d", i)
		if _, err := e.store.Subscribe(e.ctx, us[i], "celebrity", created); err != nil {
			b.Fatal(err)
		}
	}
	// Spread over the audience, as connected users are: fan-out on write
	// reaches them page by page in user id order.
	online := make([]string, connected)
	for i := range online {
		online[i] = us[i*(members/connected)]
	}
	withDevice := make([]string, pushed)
	for i := range withDevice {
		withDevice[i] = us[i*(members/pushed)+1]
	}
	for _, u := range withDevice {
		if err := e.store.PutDevice(e.ctx, herald.Device{UserID: u, Platform: "android", Token: "t-" + u, AppID: "app"}); err != nil {
			b.Fatal(err)
		}
	}
	counter := &writeCounter{FanoutStore: e.store}
	e.startEnricher(e.enricherConfig("txn-bench-large-enricher"))
	cfg := e.fanoutConfig("txn-bench-large")
	cfg.Store, cfg.Online, cfg.Devices = counter, &onlineList{users: map[string][]string{"celebrity": online}}, e.store
	cfg.PageSize = 500
	if onWrite {
		cfg.Threshold = int64(members) + 1
	}
	e.startFanout(cfg)

	waitSeq := func(users []string, seq uint64) {
		for _, u := range users {
			for {
				n, err := e.store.LastSeq(e.ctx, u)
				if err != nil {
					b.Fatal(err)
				}
				if n >= seq {
					break
				}
				select {
				case <-e.ctx.Done():
					b.Fatalf("%s never reached seq %d", u, seq)
				case <-time.After(time.Millisecond):
				}
			}
		}
	}
	var onlineTotal, allTotal time.Duration
	b.ResetTimer()
	i := 0
	for b.Loop() {
		i++
		start := time.Now()
		e.produceMulti(map[string]any{"id": fmt.Sprint("big-", i), "audience": "celebrity", "type": "post"})
		waitSeq(online, uint64(i))
		onlineTotal += time.Since(start)
		waitSeq(withDevice, uint64(i))
		if onWrite {
			waitSeq(us, uint64(i))
		}
		allTotal += time.Since(start)
	}
	b.StopTimer()
	var stored uint64
	for _, u := range us {
		n, err := e.store.LastSeq(e.ctx, u)
		if err != nil {
			b.Fatal(err)
		}
		stored += n
	}
	per := func(n int64) float64 { return float64(n) / float64(i) }
	b.ReportMetric(float64(onlineTotal.Milliseconds())/float64(i), "online-ms")
	b.ReportMetric(float64(allTotal.Milliseconds())/float64(i), "all-ms")
	b.ReportMetric(per(int64(stored)), "inbox-writes/op")
	b.ReportMetric(per(counter.puts.Load()+counter.cursors.Load()), "feed-writes/op")
	want := uint64(i * (connected + pushed))
	if onWrite {
		want = uint64(i * members)
	}
	if stored != want {
		b.Errorf("%d notifications stored, want %d", stored, want)
	}
}
