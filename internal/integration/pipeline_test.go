//go:build integration

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/stacktest"
	"github.com/heraldhq/herald/store/cassandra"
)

// TestCrossGatewayDeliveryAndReplay: events produced with a plain Kafka
// producer reach WebSocket clients on whichever gateway they are connected
// to, whichever gateway's router consumes their partition (Redis routing),
// and a reconnect with after= replays from Cassandra.
func TestCrossGatewayDeliveryAndReplay(t *testing.T) {
	e := newEnv(t)
	e.start("enricher", "enricher", "HERALD_TRANSACTIONAL_ID="+e.prefix+"enricher-1")
	gws := []*proc{
		e.start("gateway-a", "gateway", "HERALD_GATEWAY_ID="+e.prefix+"a"),
		e.start("gateway-b", "gateway", "HERALD_GATEWAY_ID="+e.prefix+"b"),
	}
	// 24 users over 12 partitions, alternately on A and B: with two routers
	// sharing the partitions, many users sit on the gateway that does not
	// consume their partition (the odds that none does are 2^-24).
	const users = 24
	clients := make([]*client, users)
	for i := range clients {
		clients[i] = dial(t, gws[i%2], e.u(fmt.Sprintf("x-%d", i)), "")
		if seqs, f := clients[i].untilSynced(t); len(seqs) != 0 || f.Seq != 0 {
			t.Fatalf("fresh user replayed %v / %+v", seqs, f)
		}
	}
	pr := producer(t)
	for round := 1; round <= 2; round++ {
		var recs []*kgo.Record
		for i := 0; i < users; i++ {
			recs = append(recs, eventRecord(fmt.Sprintf("x-%d-%d", i, round), e.u(fmt.Sprintf("x-%d", i)), "hello"))
		}
		e.produce(t, pr, recs...)
		for i, c := range clients {
			f := c.next(t)
			if f.Type != "notification" || f.Notification.Seq != uint64(round) || f.Notification.EventID != fmt.Sprintf("x-%d-%d", i, round) {
				t.Fatalf("user %d round %d: %+v", i, round, f)
			}
		}
	}
	// Replay from Cassandra on the other gateway.
	c := dial(t, gws[1], e.u("x-0"), "&after=0")
	seqs, f := c.untilSynced(t)
	if !slices.Equal(seqs, []uint64{1, 2}) || f.Seq != 2 {
		t.Fatalf("replay after=0: %v %+v", seqs, f)
	}
	// A read on one gateway reaches the user's socket on the other.
	if err := clients[0].conn.WriteMessage(1, []byte(`{"type":"read","all":true}`)); err != nil {
		t.Fatal(err)
	}
	for _, cl := range []*client{clients[0], c} {
		if f := cl.next(t); f.Type != "unread" || f.Count != 0 {
			t.Fatalf("unread frame: %+v", f)
		}
	}
	metric := 0.0
	for _, gw := range gws {
		metric += scrape(t, gw, "herald_cluster_forwarded_total")
	}
	if metric == 0 {
		t.Fatal("no notification was forwarded between gateways")
	}
}

// scrape sums a counter's samples from a role's /metrics.
func scrape(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp.Body)
	resp.Body.Close()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? ([0-9.e+]+)$`)
	sum := 0.0
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		v, _ := strconv.ParseFloat(m[2], 64)
		sum += v
	}
	return sum
}

// TestExactlyOnceAcrossEnricherCrash: 10,000 events (with duplicate ids)
// produced by a plain producer; the enricher process is killed with SIGKILL
// mid-way and restarted. Every valid event is in Cassandra exactly once with
// contiguous per-user seqs, and herald.deliveries (read_committed) holds each
// exactly once.
func TestExactlyOnceAcrossEnricherCrash(t *testing.T) {
	e := newEnv(t)
	const total, users = 10000, 40
	rng := rand.New(rand.NewPCG(1, 2))
	want := map[string][]string{} // user → distinct event ids in produce order
	var recs []*kgo.Record
	var ids []struct{ id, user string }
	for i := 0; i < total; i++ {
		// One record in 20 repeats an earlier event id of the same user.
		if i > 100 && rng.IntN(20) == 0 {
			prev := ids[rng.IntN(len(ids))]
			recs = append(recs, eventRecord(prev.id, prev.user, "dup"))
			continue
		}
		user := e.u(fmt.Sprintf("c-%d", rng.IntN(users)))
		id := fmt.Sprintf("c-%d", i)
		ids = append(ids, struct{ id, user string }{id, user})
		want[user] = append(want[user], id)
		recs = append(recs, eventRecord(id, user, "crash"))
	}
	e.produce(t, producer(t), recs...)

	enricher := e.start("enricher-1", "enricher", "HERALD_TRANSACTIONAL_ID="+e.prefix+"enricher")
	// Kill it once it has committed part of the work.
	deadline := time.Now().Add(5 * time.Minute)
	committed := 0.0
	for committed < 1500 {
		if time.Now().After(deadline) {
			t.Fatalf("enricher made no progress:\n%s", enricher.tail())
		}
		time.Sleep(50 * time.Millisecond)
		committed = scrape(t, enricher, "herald_notifications_out_total")
	}
	enricher.kill()
	t.Logf("killed the enricher (SIGKILL) after it reported %.0f committed notifications", committed)
	e.start("enricher-2", "enricher", "HERALD_TRANSACTIONAL_ID="+e.prefix+"enricher")

	distinct := 0
	for _, evs := range want {
		distinct += len(evs)
	}
	got := readDeliveries(t, e, distinct)
	for user, evs := range want {
		if len(got[user]) != len(evs) {
			t.Fatalf("user %s: %d deliveries, want %d", user, len(got[user]), len(evs))
		}
		seen := map[string]bool{}
		for i, n := range got[user] {
			if seen[n.EventID] {
				t.Fatalf("user %s: event %s delivered twice", user, n.EventID)
			}
			seen[n.EventID] = true
			if n.Seq != uint64(i+1) || n.Prev != uint64(i) {
				t.Fatalf("user %s: delivery %d has seq %d prev %d", user, i, n.Seq, n.Prev)
			}
		}
	}

	// The inbox in Cassandra: each valid event once, seqs 1..k contiguous.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cs := stacktest.Cassandra()
	st, err := cassandra.Open(ctx, cassandra.Config{Hosts: cs.Hosts, Username: cs.User, Password: cs.Password,
		TLS: cs.TLSConfig(), LocalDC: cs.LocalDC, Keyspace: e.keyspace, Consistency: "ONE"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }() // read-only use; nothing to report on close
	for user, evs := range want {
		ns, err := st.List(ctx, user, 0, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(ns) != len(evs) {
			t.Fatalf("user %s: %d stored, want %d", user, len(ns), len(evs))
		}
		stored := map[string]bool{}
		for i, n := range ns {
			if n.Seq != uint64(i+1) || n.Prev != uint64(i) || stored[n.EventID] {
				t.Fatalf("user %s: row %d seq %d prev %d event %s", user, i, n.Seq, n.Prev, n.EventID)
			}
			stored[n.EventID] = true
		}
		for _, id := range evs {
			if !stored[id] {
				t.Fatalf("user %s: event %s missing", user, id)
			}
		}
		if n, _ := st.UnreadCount(ctx, user); n != int64(len(evs)) {
			t.Fatalf("user %s: unread %d want %d", user, n, len(evs))
		}
	}
}

// readDeliveries is deliveriesBy bounded by ten minutes.
func readDeliveries(t *testing.T, e *env, want int) map[string][]herald.Notification {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	return deliveriesBy(ctx, t, e, want)
}

func writeSentinels(t *testing.T, topic string) int {
	t.Helper()
	cl, err := kgo.NewClient(stacktest.KafkaOpts(kgo.RecordPartitioner(kgo.ManualPartitioner()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	td, err := kadm.NewClient(cl).ListTopics(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	n := len(td[topic].Partitions)
	for p := 0; p < n; p++ {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Partition: int32(p), Value: []byte("sentinel")}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestInvalidRecordsGoToDLQ: invalid records land in herald.events.dlq with
// their reason and source, and the valid ones around them are delivered.
func TestInvalidRecordsGoToDLQ(t *testing.T) {
	e := newEnv(t)
	e.start("enricher", "enricher", "HERALD_TRANSACTIONAL_ID="+e.prefix+"enricher")
	gw := e.start("gateway", "gateway", "HERALD_GATEWAY_ID="+e.prefix+"gw")
	ws := dial(t, gw, e.u("d-1"), "")
	ws.untilSynced(t)
	bad := []string{`{not json`, `{"id":"b2","type":"t"}`, `{"id":"b3","user_id":"d-1","type":"t","priority":"urgent"}`}
	recs := []*kgo.Record{eventRecord("v1", e.u("d-1"), "before")}
	for _, b := range bad {
		recs = append(recs, &kgo.Record{Key: []byte(e.u("d-1")), Value: []byte(b)})
	}
	recs = append(recs, eventRecord("v2", e.u("d-1"), "after"))
	e.produce(t, producer(t), recs...)
	for _, id := range []string{"v1", "v2"} {
		if f := ws.next(t); f.Notification.EventID != id {
			t.Fatalf("want %s, got %+v", id, f)
		}
	}
	cl, err := kgo.NewClient(stacktest.KafkaOpts(kgo.ConsumeTopics(e.prefix+"events.dlq"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reasons := map[string]string{}
	for len(reasons) < len(bad) {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("dlq has %v", reasons)
		}
		fs.EachRecord(func(r *kgo.Record) {
			h := map[string]string{}
			for _, kv := range r.Headers {
				h[kv.Key] = string(kv.Value)
			}
			if h["herald-source-topic"] != e.prefix+"events" || h["herald-source-offset"] == "" || h["herald-source-partition"] == "" {
				t.Fatalf("dlq headers %v", h)
			}
			reasons[string(r.Value)] = h["herald-error"]
		})
	}
	for raw, want := range map[string]string{bad[0]: "malformed JSON", bad[1]: "user_id: one of user_id, user_ids or audience is required", bad[2]: "priority: must be one of"} {
		if !strings.Contains(reasons[raw], want) {
			t.Fatalf("reason for %s: %q, want %q", raw, reasons[raw], want)
		}
	}
}

// TestGatewayCrashClientsResume: a gateway is killed with clients connected;
// they reconnect to another gateway with after=<last seq> and miss nothing,
// including events produced while they were away.
func TestGatewayCrashClientsResume(t *testing.T) {
	e := newEnv(t)
	e.start("enricher", "enricher", "HERALD_TRANSACTIONAL_ID="+e.prefix+"enricher")
	a := e.start("gateway-a", "gateway", "HERALD_GATEWAY_ID="+e.prefix+"a")
	b := e.start("gateway-b", "gateway", "HERALD_GATEWAY_ID="+e.prefix+"b")
	const users, perPhase = 8, 5
	pr := producer(t)
	send := func(phase int) {
		var recs []*kgo.Record
		for i := 0; i < users; i++ {
			for j := 0; j < perPhase; j++ {
				recs = append(recs, eventRecord(fmt.Sprintf("g-%d-%d-%d", i, phase, j), e.u(fmt.Sprintf("g-%d", i)), "x"))
			}
		}
		e.produce(t, pr, recs...)
	}
	clients := make([]*client, users)
	last := make([]uint64, users)
	for i := range clients {
		clients[i] = dial(t, a, e.u(fmt.Sprintf("g-%d", i)), "")
		clients[i].untilSynced(t)
	}
	send(1)
	for i, c := range clients {
		for j := 0; j < perPhase; j++ {
			f := c.next(t)
			if f.Notification.Seq != last[i]+1 {
				t.Fatalf("user %d: seq %d after %d", i, f.Notification.Seq, last[i])
			}
			last[i] = f.Notification.Seq
		}
	}
	a.kill()
	for _, c := range clients {
		select {
		case <-c.closed:
		case <-time.After(time.Minute):
			t.Fatal("client not disconnected by the crash")
		}
	}
	send(2) // while the clients are away
	for i := range clients {
		c := dial(t, b, e.u(fmt.Sprintf("g-%d", i)), "&after="+strconv.FormatUint(last[i], 10))
		seqs, _ := c.untilSynced(t)
		for _, s := range seqs {
			if s != last[i]+1 {
				t.Fatalf("user %d: replayed seq %d after %d", i, s, last[i])
			}
			last[i] = s
		}
		clients[i] = c
	}
	send(3)
	for i, c := range clients {
		for last[i] < 3*perPhase {
			f := c.next(t)
			if f.Type != "notification" {
				continue
			}
			if f.Notification.Seq != last[i]+1 {
				t.Fatalf("user %d: seq %d after %d", i, f.Notification.Seq, last[i])
			}
			last[i] = f.Notification.Seq
		}
	}
}
