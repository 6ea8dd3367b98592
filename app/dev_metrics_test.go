package app

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/store/memory"
	"github.com/heraldhq/herald/topics"
)

// dlqTopics are the two dead-letter topics, unprefixed.
var dlqTopics = []string{"herald.events.dlq", "herald.push.dlq"}

// checkDLQDepth fails unless body (a /metrics scrape) has the wanted
// herald_dlq_depth of both DLQs and no failed measure.
func checkDLQDepth(t *testing.T, body string, want map[string]int) {
	t.Helper()
	for _, topic := range dlqTopics {
		depth := `herald_dlq_depth{topic="` + topic + `"} ` + strconv.Itoa(want[topic])
		errs := `herald_dlq_depth_errors_total{topic="` + topic + `"} 0`
		if !hasLine(body, depth) || !hasLine(body, errs) {
			t.Errorf("want %q and %q in /metrics:\n%s", depth, errs, grepLines(body, "dlq"))
		}
	}
}

func hasLine(body, line string) bool {
	for l := range strings.SplitSeq(body, "\n") {
		if l == line {
			return true
		}
	}
	return false
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.SplitSeq(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d, %v", resp.StatusCode, err)
	}
	return string(raw)
}

// herald dev serves the dead-letter depth of both DLQs on /metrics, and a
// second herald dev in the same binary (the default registry is
// process-global) measures its own Kafka, not the first one's closed
// client: the cause of the reverted attempt's failing scrapes.
func TestDevServesDLQDepth(t *testing.T) {
	for range 2 {
		d := startDev(t, t.TempDir())
		body := scrape(t, d.URL())
		stopDev(t, d)
		checkDLQDepth(t, body, nil)
	}
}

// The pusher role, on the default registry as `herald pusher` runs,
// serves herald_dlq_depth for both DLQs: one dead letter on the push DLQ
// counts one, the events DLQ none; no replay group exists yet.
func TestPusherServesDLQDepth(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(0))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if err := topics.Apply(ctx, kadm.NewClient(cl), "", -1); err != nil {
		t.Fatal(err)
	}
	if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "herald.push.dlq", Value: []byte("dead")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // twice: a second process on the default registry measures its own client
		p := NewProcess(ctx, config.Defaults("pusher"), Deps{
			Store: memory.New(), Brokers: c.ListenAddrs(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		})
		if err := p.AddPusher(ctx, PusherOptions{}); err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(p.Ops(nil))
		body := scrape(t, srv.URL)
		srv.Close()
		if err := p.Shutdown(ctx); err != nil {
			t.Fatal(err)
		}
		checkDLQDepth(t, body, map[string]int{"herald.push.dlq": 1})
	}
}
