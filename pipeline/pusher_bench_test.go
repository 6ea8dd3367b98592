package pipeline

import (
	"fmt"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
)

// BenchmarkPusher measures the pusher loop's own throughput (kfake, the
// memory store, a Sender that answers at once): b.N jobs for 1000 users
// with one device each, from production until every device was pushed.
// It bounds what the pusher adds to a provider's latency; the providers'
// senders are benchmarked in delivery/push.
func BenchmarkPusher(b *testing.B) {
	e := newEnv(b)
	e.pusherTopics()
	const users = 1000
	for u := range users {
		e.device(fmt.Sprint("user-", u), "ios", fmt.Sprint("tok-", u))
	}
	jobs := make([]herald.PushJob, b.N)
	for i := range jobs {
		jobs[i] = e.notify(fmt.Sprint("user-", i%users), fmt.Sprint("e-", i), herald.PriorityNormal)
	}
	s := newFakeSender()
	cfg := e.pusherConfig(s)
	cfg.MaxPollRecords = 2000
	e.startPusher(cfg)

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	e.pushJobs(jobs...)
	e.eventually("every job pushed", func() bool { return len(s.all()) >= b.N })
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pushes/s")
}
