package pipeline

import (
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/policy"
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

// BenchmarkEnricherPolicy is BenchmarkEnricher with the notification
// policy (issue 12): the same b.N events for the same 1000 users, half of
// them likes and half mentions, run once with no policy (none) and once
// with a digest on like (digest-half). With the policy, every batch reads
// and writes the policy state of each of its users with a like, claims
// each like and records its decision; the likes' windows (an hour) do not
// close during the run, so digest-half stores the mentions only and none
// stores everything. The ratio of the two records/s is the cost of the
// policy stage on the enricher.
func BenchmarkEnricherPolicy(b *testing.B) {
	for _, bc := range []struct {
		name string
		pol  map[string]policy.TypePolicy
	}{
		{name: "none"},
		{name: "digest-half", pol: likeDigest(time.Hour)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			benchPolicy(b, bc.pol)
		})
	}
}

func benchPolicy(b *testing.B, types map[string]policy.TypePolicy) {
	e := newEnv(b)
	ev := e.names.Events
	cfg := e.enricherConfig("txn-bench-policy")
	if types != nil {
		pol := mustPolicy(b, types)
		cfg.Policy = func() *policy.Policy { return pol }
	}
	e.startEnricher(cfg)
	e.produce(ev, "warm", eventJSON("warm", "warm", "mention"))
	e.waitCommitted(enricherGroup, ev)

	const users = 1000
	parts := make([]int32, users)
	for u := range parts {
		parts[u] = partitionFor(fmt.Sprint("user-", u), 12)
	}
	recs := make([]*kgo.Record, b.N)
	mentions := 0
	for i := range recs {
		u := i % users
		user := fmt.Sprint("user-", u)
		// Alternate per user, not per record: with 1000 users every user
		// gets likes and mentions alike.
		v := eventJSON(fmt.Sprint("bench-", i), user, "mention", "body", "Ada mentioned you in #general")
		if (i/users)%2 == 1 {
			v = eventJSON(fmt.Sprint("bench-", i), user, "like", "title", "Ada liked your post", "collapse_key", "post-1")
		} else {
			mentions++
		}
		recs[i] = &kgo.Record{Topic: ev, Key: []byte(user), Partition: parts[u], Value: v}
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

	want := uint64(b.N)
	if types != nil {
		want = uint64(mentions)
	}
	var stored uint64
	for u := range users {
		n, err := e.store.LastSeq(e.ctx, fmt.Sprint("user-", u))
		if err != nil {
			b.Fatal(err)
		}
		stored += n
	}
	if stored != want {
		b.Fatalf("%d notifications stored, want %d", stored, want)
	}
}
