package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/policy"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/twmb/franz-go/pkg/kgo"
)

// clock is a test clock for Config.Now: the policy decides on it and the
// due scanner compares due times with it.
type clock struct{ us atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.us.Store(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC).UnixMicro())
	return c
}
func (c *clock) now() time.Time          { return time.UnixMicro(c.us.Load()).UTC() }
func (c *clock) advance(d time.Duration) { c.us.Add(d.Microseconds()) }

func mustPolicy(tb testing.TB, types map[string]policy.TypePolicy) *policy.Policy {
	tb.Helper()
	p, err := policy.New(policy.Config{Types: types})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

func likeDigest(window time.Duration) map[string]policy.TypePolicy {
	return map[string]policy.TypePolicy{"like": {Digest: &policy.Digest{Window: policy.Duration(window)}}}
}

// policyConfig is an enricher config with pol in force on clk, scanning
// the due index often.
func (e *env) policyConfig(txnID string, clk *clock, pol *policy.Policy) EnricherConfig {
	cfg := e.enricherConfig(txnID)
	cfg.Now = clk.now
	cfg.Policy = func() *policy.Policy { return pol }
	cfg.PolicyTick = 10 * time.Millisecond
	return cfg
}

// digestOf returns n's data.digest.
func digestOf(tb testing.TB, n herald.Notification) (d struct {
	Count    int      `json:"count"`
	Key      string   `json:"key"`
	EventIDs []string `json:"event_ids"`
	Titles   []string `json:"titles"`
}) {
	tb.Helper()
	var data struct {
		Digest *json.RawMessage `json:"digest"`
	}
	if err := json.Unmarshal(n.Data, &data); err != nil || data.Digest == nil {
		tb.Fatalf("notification %s has no data.digest: %s (%v)", n.EventID, n.Data, err)
	}
	if err := json.Unmarshal(*data.Digest, &d); err != nil {
		tb.Fatal(err)
	}
	return d
}

// waitInbox polls until user's inbox has n notifications.
func (e *env) waitInbox(user string, n int) []herald.Notification {
	e.tb.Helper()
	for {
		ns := e.list(user)
		if len(ns) >= n {
			return ns
		}
		select {
		case <-e.ctx.Done():
			e.tb.Fatalf("%s inbox has %d notifications, want %d: %v", user, len(ns), n, eventIDs(ns))
		case <-time.After(10 * time.Millisecond):
		}
	}
}

func likes(from, to int, user string) [][]byte {
	var vs [][]byte
	for i := from; i < to; i++ {
		vs = append(vs, eventJSON(fmt.Sprintf("like-%02d", i), user, "like", "title", fmt.Sprintf("liker %d liked your post", i), "collapse_key", "post-1"))
	}
	return vs
}

func deliveriesOf(tb testing.TB, e *env, user string) []herald.Notification {
	tb.Helper()
	var out []herald.Notification
	for _, r := range e.readAll(e.names.Deliveries) {
		if n := decodeNotification(tb, r); n.UserID == user {
			out = append(out, n)
		}
	}
	return out
}

// TestEnricherPolicyDigest: 50 likes inside a window become one stored
// and delivered notification with count 50, once the window is due and
// without any further event; a high-priority like and another type go
// through at once, in order.
func TestEnricherPolicyDigest(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	e.startEnricher(e.policyConfig("txn-digest", clk, mustPolicy(t, likeDigest(time.Minute))))
	ev := e.names.Events
	e.produce(ev, "ada", likes(0, 25, "ada")...)
	e.produce(ev, "ada", eventJSON("m-1", "ada", "mention"), eventJSON("urgent", "ada", "like", "priority", "high"))
	e.produce(ev, "ada", likes(25, 50, "ada")...)
	e.produce(ev, "ada", likes(10, 12, "ada")...) // upstream duplicates: counted once
	e.waitCommitted(enricherGroup, ev)
	if got := eventIDs(e.list("ada")); !slices.Equal(got, []string{"m-1", "urgent"}) {
		t.Fatalf("before the window is due: inbox %v, want [m-1 urgent]", got)
	}

	clk.advance(time.Minute)
	e.waitInbox("ada", 3)
	e.waitCommitted(enricherGroup, ev)
	ns := e.list("ada")
	if len(ns) != 3 {
		t.Fatalf("inbox %v, want 3 notifications", eventIDs(ns))
	}
	dg := ns[2]
	d := digestOf(t, dg)
	if d.Count != 50 || d.Key != "post-1" || len(d.EventIDs) != 10 || d.EventIDs[0] != "like-49" || len(d.Titles) != 3 {
		t.Errorf("digest = %+v", d)
	}
	if dg.Title != "liker 49 liked your post and 49 more" || dg.Type != "like" || dg.Seq != 3 {
		t.Errorf("digest notification = %+v", dg)
	}
	if got := eventIDs(deliveriesOf(t, e, "ada")); !slices.Equal(got, eventIDs(ns)) {
		t.Errorf("deliveries %v, want each of %v once", got, eventIDs(ns))
	}

	// A second round opens a new window with a new number.
	e.produce(ev, "ada", likes(50, 53, "ada")...)
	e.waitCommitted(enricherGroup, ev)
	clk.advance(time.Minute)
	ns = e.waitInbox("ada", 4)
	if d := digestOf(t, ns[3]); d.Count != 3 || ns[3].EventID == dg.EventID {
		t.Errorf("second digest %s = %+v (first was %s)", ns[3].EventID, d, dg.EventID)
	}
}

// TestEnricherPolicyDigestPush: a user without the in-app channel gets
// the digest as one push job.
func TestEnricherPolicyDigestPush(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	p := herald.DefaultPreferences()
	p.Channels.InApp = false
	e.setPrefs("bob", p)
	e.startEnricher(e.policyConfig("txn-digest-push", clk, mustPolicy(t, likeDigest(time.Minute))))
	e.produce(e.names.Events, "bob", likes(0, 50, "bob")...)
	e.waitCommitted(enricherGroup, e.names.Events)
	clk.advance(time.Minute)
	var jobs []herald.PushJob
	for len(jobs) == 0 {
		for _, r := range e.readAll(e.names.Push) {
			j, err := DecodePush(r)
			if err != nil {
				t.Fatal(err)
			}
			jobs = append(jobs, j)
		}
		if e.ctx.Err() != nil {
			t.Fatal("no push job")
		}
	}
	e.waitCommitted(enricherGroup, e.names.Events)
	jobs = jobs[:0]
	for _, r := range e.readAll(e.names.Push) {
		j, _ := DecodePush(r)
		jobs = append(jobs, j)
	}
	if len(jobs) != 1 {
		t.Fatalf("%d push jobs, want 1", len(jobs))
	}
	if d := digestOf(t, jobs[0].Notification); d.Count != 50 || jobs[0].CollapseKey != "post-1" {
		t.Errorf("push job %+v, digest %+v", jobs[0], d)
	}
	if ns := e.list("bob"); len(ns) != 0 {
		t.Errorf("inbox of a push-only user: %v", eventIDs(ns))
	}
}

// TestEnricherPolicyRate: 3 comments per hour, the excess dropped; an
// hour after the first, one more gets through.
func TestEnricherPolicyRate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	pol := mustPolicy(t, map[string]policy.TypePolicy{"comment": {Rate: &policy.Rate{Limit: 3, Per: policy.Duration(time.Hour)}}})
	cfg := e.policyConfig("txn-rate", clk, pol)
	reg := prometheus.NewRegistry()
	cfg.Registerer = reg
	e.startEnricher(cfg)
	ev := e.names.Events
	var vs [][]byte
	for i := range 5 {
		vs = append(vs, eventJSON(fmt.Sprint("c-", i), "cy", "comment"))
	}
	e.produce(ev, "cy", vs...)
	e.waitCommitted(enricherGroup, ev)
	clk.advance(time.Hour)
	e.produce(ev, "cy", eventJSON("c-5", "cy", "comment"), eventJSON("c-6", "cy", "comment"), eventJSON("c-7", "cy", "comment"), eventJSON("c-8", "cy", "comment"))
	e.waitCommitted(enricherGroup, ev)
	want := []string{"c-0", "c-1", "c-2", "c-5", "c-6", "c-7"}
	if got := eventIDs(e.list("cy")); !slices.Equal(got, want) {
		t.Errorf("inbox %v, want %v", got, want)
	}
	// Counted once committed: 3 refused and dropped.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP herald_policy_total Notification policy actions by event type: digested (an event folded into a digest window), throttled (refused by the rate limit; also digested or dropped), dropped (throttled with excess: drop), capped (daily cap reached; digests too), overflow (no room for one more window: delivered as is), emitted (a digest notification went out).
# TYPE herald_policy_total counter
herald_policy_total{action="dropped",type="comment"} 3
herald_policy_total{action="throttled",type="comment"} 3
`), "herald_policy_total"); err != nil {
		t.Error(err)
	}
}

// TestEnricherPolicyDuplicateTicks: ticks produced twice (a scanner
// crash between the produce and the cursor write) close the window once.
func TestEnricherPolicyDuplicateTicks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	cfg := e.policyConfig("txn-ticks", clk, mustPolicy(t, likeDigest(time.Minute)))
	cfg.PolicyTick = time.Hour // no scanner: the test ticks by hand
	e.startEnricher(cfg)
	ev := e.names.Events
	e.produce(ev, "dee", likes(0, 4, "dee")...)
	e.waitCommitted(enricherGroup, ev)
	due, err := e.store.PolicyDue(e.ctx, fmt.Sprintf("%s/%d", ev, partitionFor("dee", 12)), store.PolicyDue{}, clk.now().Add(time.Hour), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due index: %v, %v", due, err)
	}
	clk.advance(time.Minute)
	codec := NewCodec(e.names)
	tick, err := codec.Tick(PolicyTick{UserID: "dee", Key: due[0].Key, DueAt: due[0].At})
	if err != nil {
		t.Fatal(err)
	}
	early, _ := codec.Tick(PolicyTick{UserID: "dee", Key: due[0].Key, DueAt: due[0].At.Add(-time.Second)})
	bad := &kgo.Record{Topic: ev, Key: []byte("dee"), Value: []byte(`{"user_id":"dee"}`), Headers: tick.Headers}
	e.produce(ev, "dee", early.Value)
	for _, r := range []*kgo.Record{early, tick, tick, bad} {
		r.Partition = partitionFor("dee", 12)
		r.Topic = ev
		if err := e.prod.ProduceSync(e.ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	e.waitCommitted(enricherGroup, ev)
	ns := e.list("dee")
	if len(ns) != 1 || digestOf(t, ns[0]).Count != 4 {
		t.Fatalf("inbox %v, want one digest of 4", eventIDs(ns))
	}
	dlq := e.readAll(e.names.EventsDLQ)
	if len(dlq) != 2 { // the tick's value produced as an event, and the malformed tick
		t.Errorf("%d DLQ records, want 2:%s", len(dlq), fmtRecords(dlq))
	}
}

// TestEnricherPolicyCrash: an enricher that dies after writing the policy
// state of a batch (its transaction never commits) and a successor that
// replays the batch: every like is counted once, the window closes once.
func TestEnricherPolicyCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	pol := mustPolicy(t, likeDigest(time.Minute))
	ev := e.names.Events
	e.produce(ev, "eve", likes(0, 30, "eve")...)
	e.produce(ev, "eve", eventJSON("m-1", "eve", "mention"))
	e.produce(ev, "eve", likes(30, 50, "eve")...)

	var batches atomic.Int32
	var crashed atomic.Bool
	cfg := e.policyConfig("txn-policy-crash", clk, pol)
	cfg.MaxPollRecords = 7
	var en1 *Enricher
	var mu sync.Mutex
	cfg.beforeEnd = func(context.Context) error {
		if batches.Add(1) < 3 {
			return nil
		}
		crashed.Store(true)
		mu.Lock()
		defer mu.Unlock()
		en1.closeClient() //nolint:contextcheck // the process dies: no EndTxn, no offset commit
		return errors.New("crash")
	}
	mu.Lock()
	en1, r1 := e.startEnricher(cfg)
	mu.Unlock()
	if err := r1.wait(t, e.ctx); err == nil || !crashed.Load() {
		t.Fatalf("crash point not reached: %v", err)
	}

	e.startEnricher(e.policyConfig("txn-policy-crash", clk, pol))
	e.waitCommitted(enricherGroup, ev)
	clk.advance(time.Minute)
	e.waitInbox("eve", 2)
	e.waitCommitted(enricherGroup, ev)
	ns := e.list("eve")
	if len(ns) != 2 || ns[0].EventID != "m-1" || digestOf(t, ns[1]).Count != 50 {
		t.Fatalf("inbox %v, want m-1 then one digest of 50", eventIDs(ns))
	}
	if got := eventIDs(deliveriesOf(t, e, "eve")); !slices.Equal(got, eventIDs(ns)) {
		t.Errorf("deliveries %v, want %v", got, eventIDs(ns))
	}
}

// FuzzDecodeTickRecord: the tick decoder never panics, accepts only what
// it validated, and what it accepts encodes back to a tick it accepts
// again unchanged.
func FuzzDecodeTickRecord(f *testing.F) {
	f.Add("ada", []byte(`{"user_id":"ada","key":"like\u001fpost-1","due_at":"2026-12-02T12:01:00.000001Z"}`))
	f.Add("ada", []byte(`{"user_id":"bob","key":"k","due_at":"2026-12-02T12:01:00Z"}`))
	f.Add("ada", []byte(`{"user_id":"ada","key":"","due_at":"2026-12-02T12:01:00Z"}`))
	f.Add("ada", []byte(`{"user_id":"ada","key":"k","due_at":"2026-12-02T12:01:00Z","x":1}`))
	f.Add("", []byte(`null`))
	codec := NewCodec(topics.WithPrefix(""))
	f.Fuzz(func(t *testing.T, key string, value []byte) {
		r := &kgo.Record{Key: []byte(key), Value: value, Headers: []kgo.RecordHeader{{Key: HeaderPolicyTick, Value: []byte("1")}}}
		tick, ok, err := DecodeTickRecord(r)
		if !ok {
			t.Fatal("a record with the tick header is a tick")
		}
		if err != nil {
			var ve *herald.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			return
		}
		if tick.UserID != key || tick.Key == "" || tick.DueAt.IsZero() {
			t.Fatalf("accepted %+v for key %q", tick, key)
		}
		again, err := codec.Tick(tick)
		if err != nil {
			t.Fatal(err)
		}
		back, ok, err := DecodeTickRecord(again)
		if !ok || err != nil || back.UserID != tick.UserID || back.Key != tick.Key || !back.DueAt.Equal(tick.DueAt) {
			t.Fatalf("round trip of %+v: %+v %v %v", tick, back, ok, err)
		}
	})
}

// TestEnricherPolicyDailyCap: the cap counts the user's local day, from
// the timezone of their preferences: one hour later it is a new day in
// Tokyo and still the same day in Los Angeles.
func TestEnricherPolicyDailyCap(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	clk := newClock()
	clk.us.Store(time.Date(2026, 12, 2, 14, 30, 0, 0, time.UTC).UnixMicro()) // 23:30 in Tokyo, 06:30 in Los Angeles
	for user, tz := range map[string]string{"tokyo": "Asia/Tokyo", "la": "America/Los_Angeles"} {
		p := herald.DefaultPreferences()
		p.Timezone = tz
		e.setPrefs(user, p)
	}
	pol := mustPolicy(t, map[string]policy.TypePolicy{"marketing": {DailyCap: 1}})
	e.startEnricher(e.policyConfig("txn-cap", clk, pol))
	ev := e.names.Events
	for _, u := range []string{"tokyo", "la"} {
		e.produce(ev, u, eventJSON("m-1", u, "marketing"), eventJSON("m-2", u, "marketing"), eventJSON("urgent", u, "marketing", "priority", "high"))
	}
	e.waitCommitted(enricherGroup, ev)
	clk.advance(time.Hour) // 00:30 in Tokyo (a new day), 07:30 in Los Angeles
	for _, u := range []string{"tokyo", "la"} {
		e.produce(ev, u, eventJSON("m-3", u, "marketing"))
	}
	e.waitCommitted(enricherGroup, ev)
	for user, want := range map[string][]string{"tokyo": {"m-1", "urgent", "m-3"}, "la": {"m-1", "urgent"}} {
		if got := eventIDs(e.list(user)); !slices.Equal(got, want) {
			t.Errorf("%s inbox %v, want %v", user, got, want)
		}
	}
}
