//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/stacktest"
)

// Issue 13's fan-out on write on the real stack: the enricher role's
// process hosts the fan-out stage (pipeline/fanout.go), so killing it
// kills both the stage that expands a multi-recipient event page by page
// and the enricher that writes the recipients' inboxes. A restart under
// the same transactional id (hence the same "-fanout" one) aborts what
// either left open; every recipient must then hold the event exactly
// once, in the store and in herald.deliveries (compareInbox).

// fanoutRateEnv is the enricher role's --fanout-rate: recipients/s.
const fanoutRateEnv = "HERALD_FANOUT_RATE"

// startEnricherAt starts the enricher role (with its fan-out stage)
// expanding at most rate recipients/s. Every call uses the env's one
// transactional id, so a second call is the first's restart.
func (e *env) startEnricherAt(name string, rate float64) *proc {
	e.t.Helper()
	return e.start(name, "enricher", "HERALD_TRANSACTIONAL_ID="+e.prefix+"enricher",
		fanoutRateEnv+"="+strconv.FormatFloat(rate, 'g', -1, 64))
}

// eventBody is an event's JSON with the addressing fields of to
// (user_id, user_ids or audience).
func eventBody(t *testing.T, id string, to map[string]any) string {
	t.Helper()
	ev := map[string]any{"id": id, "type": "broadcast", "title": "fan-out " + id}
	for k, v := range to {
		ev[k] = v
	}
	raw, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// postEvent posts one event through the API role, failing unless it is
// accepted (202).
func postEvent(t *testing.T, p *proc, body string) {
	t.Helper()
	if code, m := apiDo(t, p, "POST", "/v1/events", apiKey, body); code != 202 {
		t.Fatalf("POST /v1/events: %d %v", code, m)
	}
}

// addMembers makes users members of topic through
// POST /v1/audiences/{topic}/members, in calls of at most
// api.MaxMembersPerCall ids, and fails unless each was new.
func addMembers(t *testing.T, p *proc, topic string, users []string) {
	t.Helper()
	// Calls of 500 ids: each is a conditional write in Cassandra, and a
	// call must be applied within the API's 20 s members timeout on this
	// shared machine. A 503 (the store was slow: part applied) is retried
	// as is, the call being idempotent; what a retry adds is then fewer.
	for len(users) > 0 {
		n := min(len(users), 500)
		raw, err := json.Marshal(map[string]any{"add": users[:n]})
		if err != nil {
			t.Fatal(err)
		}
		for try := 1; ; try++ {
			code, m := apiDo(t, p, "POST", "/v1/audiences/"+url.PathEscape(topic)+"/members", apiKey, string(raw))
			if code == 503 && try < 5 {
				t.Logf("POST /v1/audiences/%s/members with %d ids: 503 %v; retrying", topic, n, m["error"])
				time.Sleep(time.Second)
				continue
			}
			if code != 200 {
				t.Fatalf("POST /v1/audiences/%s/members with %d ids: %d %v", topic, n, code, m)
			}
			if got, _ := m["added"].(float64); try == 1 && got != float64(n) {
				t.Fatalf("POST /v1/audiences/%s/members with %d new ids added %v", topic, n, got)
			}
			break
		}
		users = users[n:]
	}
}

// inboxLen is the number of notifications in user's inbox, read through
// the API role (GET /v1/notifications), or -1 if it did not answer 200.
func inboxLen(t *testing.T, p *proc, user string) int {
	t.Helper()
	code, m := apiDo(t, p, "GET", "/v1/notifications?after=0", token(t, user), "")
	if code != 200 {
		return -1
	}
	ns, _ := m["notifications"].([]any)
	return len(ns)
}

// aimedKill is a SIGKILL aimed at an open transaction: a read_uncommitted
// consumer of one topic kills the process at the first record keyed by one
// of a set of users, a record its transaction produced and may not have
// committed yet, so the kill lands between the produce and the commit (or
// just after it). The consumer goes on counting those users' records,
// aborted copies included, until the test ends: a kill that beat the
// commit shows as more records than users once the restart redid the work.
type aimedKill struct {
	killed chan struct{}
	mu     sync.Mutex
	seen   int    // records keyed by the aimed users, aborted ones included
	first  string // the user of the record the kill was aimed at
}

// aimKill starts the consumer that kills p at the first record of topic
// keyed by one of users.
func aimKill(t *testing.T, p *proc, topic string, users []string) *aimedKill {
	t.Helper()
	keys := make(map[string]bool, len(users))
	for _, u := range users {
		keys[u] = true
	}
	cl, err := kgo.NewClient(stacktest.KafkaOpts(kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	ak := &aimedKill{killed: make(chan struct{})}
	done := make(chan struct{})
	t.Cleanup(func() { cl.Close(); <-done })
	go func() {
		defer close(done)
		for {
			fs := cl.PollFetches(context.Background())
			if fs.IsClientClosed() {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				if !keys[string(r.Key)] {
					return
				}
				ak.mu.Lock()
				ak.seen++
				first := ak.first == ""
				if first {
					ak.first = string(r.Key)
				}
				ak.mu.Unlock()
				if first {
					p.kill()
					close(ak.killed)
				}
			})
		}
	}()
	return ak
}

// wait blocks until the kill, failing the test at deadline.
func (ak *aimedKill) wait(t *testing.T, deadline time.Time, what string) {
	t.Helper()
	select {
	case <-ak.killed:
	case <-time.After(time.Until(deadline)):
		t.Fatalf("no record of %s by the test's deadline: the kill never came", what)
	}
}

// report logs what the aimed users' records showed, from the kill to now.
func (ak *aimedKill) report(t *testing.T, topic string, users int) {
	t.Helper()
	ak.mu.Lock()
	defer ak.mu.Unlock()
	verdict := "the kill came after their transaction committed, or the restart's records are not all read yet"
	if ak.seen > users {
		verdict = "the kill aborted a transaction that had produced some of them, and the restart produced them again"
	}
	t.Logf("%s: %d records keyed by the %d aimed users (aborted ones included; the kill was aimed at %s's): %s",
		topic, ak.seen, users, ak.first, verdict)
}

// TestFanoutKill9 is issue 13's first test: one event with user_ids of
// 1,000 users, posted through the API role, expanded at 100 recipients/s
// (the first page of 500 at once, the second some 5 s later). Once some
// recipients have it in their inbox, an ordinary event for another user
// is posted (its delay to the inbox is logged: the broadcast must not
// hold it up). Then the enricher process, fan-out stage included, is
// killed with SIGKILL the moment the second page's first recipient shows
// in herald.events read uncommitted (aimKill: the fan-out's transaction is
// open), and restarted with the same transactional id. Every
// one of the 1,000 then has the event exactly once at seq 1, in the store
// and in herald.deliveries, and so has the ordinary user its own.
func TestFanoutKill9(t *testing.T) {
	deadline := time.Now().Add(100 * time.Second)
	e := newEnv(t)
	t.Cleanup(func() { keepLogs(t, e, t.Name()) }) // HERALD_CHAOS_LOGS keeps the roles' logs
	apiP := e.start("api", "api", "HERALD_GATEWAY_ID="+e.prefix+"api")
	enr := e.startEnricherAt("enricher-1", 100)
	users := make([]string, herald.MaxRecipients)
	want := map[string][]string{}
	for i := range users {
		users[i] = e.u(fmt.Sprintf("f-%04d", i))
		want[users[i]] = []string{"bc-1"}
	}
	postEvent(t, apiP, eventBody(t, "bc-1", map[string]any{"user_ids": users}))
	waitUntil(t, deadline, "the first recipients' notifications", func() bool {
		return scrapeQuiet(enr, "herald_notifications_out_total") >= 1
	}, enr, apiP)

	other := e.u("other")
	want[other] = []string{"plain-1"}
	posted := time.Now()
	postEvent(t, apiP, eventBody(t, "plain-1", map[string]any{"user_id": other}))
	waitUntil(t, deadline, "the ordinary event in its user's inbox", func() bool {
		return inboxLen(t, apiP, other) >= 1
	}, enr, apiP)
	t.Logf("an ordinary event posted during the broadcast was in its user's inbox %s after the POST (%.0f of %d recipients expanded by then)",
		time.Since(posted).Round(time.Millisecond), scrapeQuiet(enr, "herald_fanout_recipients_total"), len(users))

	// The kill: at the second page's first recipient in herald.events,
	// produced in the fan-out's transaction, before its commit.
	second := users[len(users)/2:]
	ak := aimKill(t, enr, e.prefix+"events", second)
	ak.wait(t, deadline, "the second page in herald.events")
	t.Logf("killed the enricher (SIGKILL) at %s's record in herald.events (the second page, in the fan-out's open transaction)", ak.first)
	stopWatch := watchTxns(t, e.prefix+"enricher", e.prefix+"enricher-fanout")
	defer stopWatch()
	killedAt := time.Now()
	restarted := e.startEnricherAt("enricher-2", 100)
	t.Logf("restarted enricher ready %s after the kill", round(time.Since(killedAt)))

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	got := deliveriesBy(ctx, t, e, len(want))
	t.Logf("every notification in herald.deliveries %s after the kill", round(time.Since(killedAt)))
	stopWatch()
	compareInbox(ctx, t, e, want, got)
	ak.report(t, e.prefix+"events", len(second))
	t.Logf("after the restart: %.0f recipients expanded, %.0f notifications committed; each of the %d recipients holds the event once",
		scrapeQuiet(restarted, "herald_fanout_recipients_total"), scrapeQuiet(restarted, "herald_notifications_out_total"), len(users))
}

// TestFanoutKill9Audience is the audience variant: 2,000 members added
// through POST /v1/audiences/{topic}/members, one event to the audience
// expanded at 200 recipients/s (pages of 500 read from the store, each
// resuming after the last user id of the one before), the enricher killed
// with SIGKILL at the second page's first notification in
// herald.deliveries read uncommitted (its batch transaction open, the
// batch's inbox rows written), and restarted. A user who
// subscribes (PUT /v1/subscriptions) after the event was posted, and
// whose id sorts after every other member so that the fan-out reads it
// seconds after it subscribed, does not get it; each of the 2,000 does,
// exactly once.
func TestFanoutKill9Audience(t *testing.T) {
	deadline := time.Now().Add(100 * time.Second)
	e := newEnv(t)
	t.Cleanup(func() { keepLogs(t, e, t.Name()) }) // HERALD_CHAOS_LOGS keeps the roles' logs
	apiP := e.start("api", "api", "HERALD_GATEWAY_ID="+e.prefix+"api")
	enr := e.startEnricherAt("enricher-1", 200)
	topic := e.u("club")
	members := make([]string, 2000)
	want := map[string][]string{}
	for i := range members {
		members[i] = e.u(fmt.Sprintf("a-%04d", i))
		want[members[i]] = []string{"aud-1"}
	}
	addMembers(t, apiP, topic, members)
	late := e.u("z-late") // after every a-NNNN: its page is the last one
	want[late] = nil

	postEvent(t, apiP, eventBody(t, "aud-1", map[string]any{"audience": topic}))
	if code, m := apiDo(t, apiP, "PUT", "/v1/subscriptions/"+url.PathEscape(topic), token(t, late), ""); code != 201 {
		t.Fatalf("PUT /v1/subscriptions/%s for the late member: %d %v", topic, code, m)
	}
	// The kill: at the second page's first notification in
	// herald.deliveries, produced in the enricher's batch transaction,
	// before its commit (the inbox rows of the batch are written by then).
	second := members[500:1000]
	ak := aimKill(t, enr, e.prefix+"deliveries", second)
	ak.wait(t, deadline, "the second page in herald.deliveries")
	t.Logf("killed the enricher (SIGKILL) at %s's notification in herald.deliveries (the second page, in the enricher's open transaction)", ak.first)
	stopWatch := watchTxns(t, e.prefix+"enricher", e.prefix+"enricher-fanout")
	defer stopWatch()
	killedAt := time.Now()
	restarted := e.startEnricherAt("enricher-2", 200)
	t.Logf("restarted enricher ready %s after the kill", round(time.Since(killedAt)))

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	got := deliveriesBy(ctx, t, e, len(members))
	t.Logf("every notification in herald.deliveries %s after the kill", round(time.Since(killedAt)))
	stopWatch()
	compareInbox(ctx, t, e, want, got)
	ak.report(t, e.prefix+"deliveries", len(second))
	code, m := apiDo(t, apiP, "GET", "/v1/audiences/"+url.PathEscape(topic), apiKey, "")
	if code != 200 {
		t.Fatalf("GET /v1/audiences/%s: %d %v", topic, code, m)
	}
	t.Logf("after the restart: %.0f recipients expanded; each of the %d members holds the event once, the late member (of %v counted) has nothing",
		scrapeQuiet(restarted, "herald_fanout_recipients_total"), len(members), m["members"])
}

// TestFanoutThroughput is issue 13's fan-out on write benchmark:
// recipients/s from an audience event's POST to the last recipient's
// inbox row (the enricher's herald_notifications_out_total, polled every
// 20 ms), with --fanout-rate at 1e6 so that the stage's ceiling shows,
// not its bound. It runs on the real stack (the api and enricher roles)
// and on herald dev (kfake and the embedded store, one process). It
// asserts nothing about speed and prints one line per mode. Opt-in
// (HERALD_BENCH_FANOUT=1); HERALD_BENCH_FANOUT_MEMBERS sets the audience
// (10000); HERALD_BENCH_FANOUT_DEV=0 skips herald dev. Meaningful only
// with a binary built without -race (HERALD_IT_BIN).
func TestFanoutThroughput(t *testing.T) {
	if os.Getenv("HERALD_BENCH_FANOUT") != "1" {
		t.Skip("a benchmark: set HERALD_BENCH_FANOUT=1 to run it")
	}
	n := 10000
	if v, err := strconv.Atoi(os.Getenv("HERALD_BENCH_FANOUT_MEMBERS")); err == nil && v > 0 {
		n = v
	}
	if os.Getenv("HERALD_IT_BIN") == "" {
		t.Log("the roles run from a -race build: the figures are the race detector's (set HERALD_IT_BIN)")
	}
	t.Run("stack", func(t *testing.T) { fanoutThroughput(t, "stack", n) })
	if os.Getenv("HERALD_BENCH_FANOUT_DEV") != "0" {
		t.Run("dev", func(t *testing.T) { fanoutThroughput(t, "dev", n) })
	}
}

// fanoutThroughput runs one mode of TestFanoutThroughput.
func fanoutThroughput(t *testing.T, mode string, n int) {
	deadline := time.Now().Add(8 * time.Minute)
	e := newEnv(t)
	var apiP, enr *proc
	if mode == "dev" {
		dev := e.start("dev", "dev", "HERALD_DATA_DIR="+filepath.Join(e.dir, "dev"), fanoutRateEnv+"=1e6")
		apiP, enr = dev, dev
	} else {
		apiP = e.start("api", "api", "HERALD_GATEWAY_ID="+e.prefix+"api")
		enr = e.startEnricherAt("enricher", 1e6)
	}
	topic := e.u("bench")
	members := make([]string, n)
	for i := range members {
		members[i] = e.u(fmt.Sprintf("m-%06d", i))
	}
	began := time.Now()
	addMembers(t, apiP, topic, members)
	adding := time.Since(began)

	// One ordinary event first: the enricher's clients, caches and
	// transactions are warm when the broadcast comes.
	postEvent(t, apiP, eventBody(t, "warm", map[string]any{"user_id": e.u("warm")}))
	waitUntil(t, deadline, "the warm-up event", func() bool {
		return scrapeQuiet(enr, "herald_notifications_out_total") >= 1
	}, enr, apiP)
	base := scrapeQuiet(enr, "herald_notifications_out_total")

	start := time.Now()
	postEvent(t, apiP, eventBody(t, "bench-1", map[string]any{"audience": topic}))
	var expanded, all time.Duration
	for {
		if expanded == 0 && scrapeQuiet(enr, "herald_fanout_events_total") >= 1 {
			expanded = time.Since(start)
		}
		if scrapeQuiet(enr, "herald_notifications_out_total") >= base+float64(n) {
			all = time.Since(start)
			if expanded == 0 {
				expanded = all
			}
			break
		}
		select {
		case <-enr.done:
			t.Fatalf("%s exited:\n%s", enr.name, enr.tail())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%.0f of %d notifications committed by the deadline:\n%s",
				scrapeQuiet(enr, "herald_notifications_out_total")-base, n, enr.tail())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i := 0; i < n; i += max(1, n/20) {
		if got := inboxLen(t, apiP, members[i]); got != 1 {
			t.Fatalf("member %s: %d notifications in the inbox, want 1", members[i], got)
		}
	}
	t.Logf("fan-out on write (%s): %d members (added in %s, %.0f/s); expanded in %s (%.0f recipients/s); last inbox row %s after the POST (%.0f recipients/s end to end)",
		mode, n, adding.Round(time.Millisecond), float64(n)/adding.Seconds(),
		expanded.Round(time.Millisecond), float64(n)/expanded.Seconds(),
		all.Round(time.Millisecond), float64(n)/all.Seconds())
}

// watchTxns logs every change of the broker's view of the transactional
// ids (state, epoch, partitions) from now until the returned stop is
// called: after a kill it shows which predecessor's transaction stayed
// open, and for how long, while the restart caught up.
func watchTxns(t *testing.T, ids ...string) (stop func()) {
	t.Helper()
	adm := admin(t)
	quit, done := make(chan struct{}), make(chan struct{})
	began := time.Now()
	go func() {
		defer close(done)
		last := map[string]string{}
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			ds, err := adm.DescribeTransactions(ctx, ids...)
			cancel()
			if err == nil {
				for _, d := range ds.Sorted() {
					s := fmt.Sprintf("%s epoch %d, %d topics", d.State, d.ProducerEpoch, len(d.Topics))
					if s != last[d.TxnID] {
						last[d.TxnID] = s
						t.Logf("+%s transaction %s: %s", round(time.Since(began)), d.TxnID, s)
					}
				}
			}
			select {
			case <-quit:
				return
			case <-time.After(250 * time.Millisecond):
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(quit); <-done }) }
}
