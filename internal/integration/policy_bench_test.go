//go:build integration

package integration

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// TestPolicyThroughput is the real-stack half of issue 12's benchmark
// (the in-process one is pipeline's BenchmarkEnricherPolicy): the
// enricher's records/s on the same events, half likes and half mentions
// for 1000 users, with no policy and with a digest on likes (an hour: no
// window closes during the run). It asserts nothing about speed; it logs
// both figures and their ratio. Opt-in (HERALD_BENCH_POLICY=1), and
// meaningful only with a binary built without -race
// (HERALD_IT_BIN=$(go build -o … ./cmd/herald)); HERALD_BENCH_POLICY_EVENTS
// sets the number of events (20000).
func TestPolicyThroughput(t *testing.T) {
	if os.Getenv("HERALD_BENCH_POLICY") != "1" {
		t.Skip("a benchmark: set HERALD_BENCH_POLICY=1 to run it")
	}
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("HERALD_BENCH_POLICY_EVENTS")); err == nil && v > 0 {
		n = v
	}
	if os.Getenv("HERALD_IT_BIN") == "" {
		t.Log("the roles run from a -race build: the figures are the race detector's (set HERALD_IT_BIN)")
	}
	rates := map[string]float64{}
	for _, mode := range []string{"none", "digest-half"} {
		t.Run(mode, func(t *testing.T) {
			rates[mode] = policyThroughput(t, mode, n)
		})
	}
	if rates["none"] > 0 && rates["digest-half"] > 0 {
		t.Logf("%d events: none %.0f records/s, digest-half %.0f records/s, ratio digest-half/none %.2f",
			n, rates["none"], rates["digest-half"], rates["digest-half"]/rates["none"])
	}
}

// policyThroughput runs one mode of TestPolicyThroughput and returns its
// records/s: from the first produce until the enricher has committed
// every event (herald_events_in_total counts a batch once committed).
func policyThroughput(t *testing.T, mode string, n int) float64 {
	deadline := time.Now().Add(10 * time.Minute)
	e := newEnv(t)
	cfg := filepath.Join(e.dir, "herald.yaml")
	content := "policy:\n  types: {}\n"
	if mode == "digest-half" {
		content = digestYAML("like", time.Hour)
	}
	writeConfig(t, cfg, content)
	p := e.start("enricher", "enricher", "HERALD_TRANSACTIONAL_ID="+e.prefix+"enricher", "HERALD_CONFIG="+cfg)
	cl := producer(t)
	e.produce(t, cl, typedRecord("warm", e.u("warm"), "mention", "warm", ""))
	waitUntil(t, deadline, "the warm-up event", func() bool {
		return metric(t, p, "herald_events_in_total") >= 1
	}, p)

	const users = 1000
	recs := make([]*kgo.Record, n)
	likes := 0
	for i := range recs {
		user := e.u(fmt.Sprint("tp-", i%users))
		id := fmt.Sprint("tp-", i)
		if (i/users)%2 == 1 {
			recs[i] = typedRecord(id, user, "like", "Ada liked your post", "post-1")
			likes++
		} else {
			recs[i] = typedRecord(id, user, "mention", "Ada mentioned you in #general", "")
		}
		recs[i].Topic = e.prefix + "events"
	}
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produced := time.Since(start)
	waitUntil(t, deadline, fmt.Sprintf("the enricher committing %d events", n), func() bool {
		return metric(t, p, "herald_events_in_total") >= float64(n+1)
	}, p)
	elapsed := time.Since(start)
	rate := float64(n) / elapsed.Seconds()
	out := metric(t, p, "herald_notifications_out_total")
	digested := metric(t, p, "herald_policy_total", `action="digested"`)
	t.Logf("%s: %d events (%d likes) in %s (produced in %s): %.0f records/s; %.0f notifications out, %.0f likes digested",
		mode, n, likes, elapsed.Round(time.Millisecond), produced.Round(time.Millisecond), rate, out, digested)
	var stages []string
	for _, stage := range []string{"preferences", "policy", "claim", "append", "produce", "commit"} {
		stages = append(stages, fmt.Sprintf("%s %.1fs", stage, metric(t, p, "herald_enricher_stage_seconds_sum", `stage="`+stage+`"`)))
	}
	t.Logf("%s: time in the batch stages, summed over batches: %s", mode, strings.Join(stages, ", "))
	wantOut, wantDigested := float64(n+1), 0.0
	if mode == "digest-half" {
		wantOut, wantDigested = float64(n-likes+1), float64(likes)
	}
	if out != wantOut || digested != wantDigested {
		t.Errorf("%s: %.0f notifications out and %.0f digested, want %.0f and %.0f", mode, out, digested, wantOut, wantDigested)
	}
	return rate
}
