package pipeline

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// BenchmarkEnricher measures end-to-end throughput of the enricher loop on
// an in-process kfake cluster and the memory store: b.N events for 1000
// users are produced while the enricher runs, and the clock stops when every
// transaction has committed. Allocations include kfake's and the test
// producer's, which run in the same process.
func BenchmarkEnricher(b *testing.B) {
	e := newEnv(b)
	ev := e.names.Events
	e.startEnricher(e.enricherConfig("txn-bench"))
	// Warm up: the group is joined and a first transaction committed.
	e.produce(ev, "warm", eventJSON("warm", "warm", "mention"))
	e.waitCommitted(enricherGroup, ev)

	const users = 1000
	parts := make([]int32, users)
	for u := range parts {
		parts[u] = partitionFor(fmt.Sprint("user-", u), 12)
	}
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		u := i % users
		user := fmt.Sprint("user-", u)
		recs[i] = &kgo.Record{Topic: ev, Key: []byte(user), Partition: parts[u],
			Value: eventJSON(fmt.Sprint("bench-", i), user, "mention", "body", "Ada mentioned you in #general")}
	}

	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	if err := e.prod.ProduceSync(e.ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	e.waitCommitted(enricherGroup, ev)
	elapsed := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "records/s")

	var stored uint64
	for u := range users {
		n, err := e.store.LastSeq(e.ctx, fmt.Sprint("user-", u))
		if err != nil {
			b.Fatal(err)
		}
		stored += n
	}
	if stored != uint64(b.N) {
		b.Fatalf("%d notifications stored, want %d", stored, b.N)
	}
}
