package dlq

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// env is one test's Kafka cluster (kfake, in process).
type env struct {
	tb    testing.TB
	ctx   context.Context
	addrs []string
	names topics.Names
	codec pipeline.Codec
	adm   *kadm.Client
	prod  *kgo.Client // plain producer
	txn   *kgo.Client // transactional producer, as the enricher writes the DLQ
	now   time.Time
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func newEnv(tb testing.TB) *env {
	tb.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	// A generous failure guard, never an assertion on time.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	e := &env{tb: tb, ctx: ctx, addrs: c.ListenAddrs(), names: topics.WithPrefix(""), now: time.Now()}
	e.codec = pipeline.NewCodec(e.names)
	admCl, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(admCl.Close)
	e.adm = kadm.NewClient(admCl)
	if err := topics.Apply(ctx, e.adm, "", -1); err != nil {
		tb.Fatal(err)
	}
	if e.prod, err = kgo.NewClient(kgo.SeedBrokers(e.addrs...), kgo.ProducerLinger(0)); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.prod.Close)
	if e.txn, err = kgo.NewClient(kgo.SeedBrokers(e.addrs...), kgo.ProducerLinger(0), kgo.TransactionalID("test-writer")); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.txn.Close)
	return e
}

func (e *env) config(kind Kind) Config {
	return Config{Brokers: e.addrs, Kind: kind, Logger: quietLog, Now: func() time.Time { return e.now },
		IdleCheck: 200 * time.Millisecond, ClientOptions: []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)}}
}

// dead is a dead letter to write: the source record and why it failed.
type dead struct {
	src      *kgo.Record
	reason   string
	attempts int // push only
	age      time.Duration
}

func eventRecord(names topics.Names, off int64, user string, value []byte) *kgo.Record {
	return &kgo.Record{Topic: names.Events, Partition: 1, Offset: off, Key: []byte(user), Value: value,
		Headers: []kgo.RecordHeader{{Key: "upstream", Value: []byte("x")}}}
}

func eventJSON(id, user string) []byte {
	b, _ := json.Marshal(map[string]any{"id": id, "user_id": user, "type": "comment", "title": "t " + id})
	return b
}

// writeDLQ writes ds to kind's DLQ in one transaction (with its control
// marker), or plainly if plain.
func (e *env) writeDLQ(kind Kind, plain bool, ds ...dead) {
	e.tb.Helper()
	rs := make([]*kgo.Record, len(ds))
	for i, d := range ds {
		if kind == Events {
			rs[i] = e.codec.EventDLQ(d.src, errors.New(d.reason))
		} else {
			rs[i] = e.codec.PushDLQ(d.src, errors.New(d.reason), d.attempts)
		}
		rs[i].Timestamp = e.now.Add(-d.age)
	}
	if plain {
		if err := e.prod.ProduceSync(e.ctx, rs...).FirstErr(); err != nil {
			e.tb.Fatal(err)
		}
		return
	}
	if err := e.txn.BeginTransaction(); err != nil {
		e.tb.Fatal(err)
	}
	if err := e.txn.ProduceSync(e.ctx, rs...).FirstErr(); err != nil {
		e.tb.Fatal(err)
	}
	if err := e.txn.EndTransaction(e.ctx, kgo.TryCommit); err != nil {
		e.tb.Fatal(err)
	}
}

var sentinelSeq atomic.Int64

// readAll returns every committed record of topic but the sentinels it
// appends to each partition to know, without a clock, that it read
// everything before them.
func (e *env) readAll(topic string) []*kgo.Record {
	e.tb.Helper()
	details, err := e.adm.ListTopics(kadm.WithAuthorizedOps(e.ctx), topic)
	if err != nil {
		e.tb.Fatal(err)
	}
	id := strconv.FormatInt(sentinelSeq.Add(1), 10)
	var sentinels []*kgo.Record
	for p := range details[topic].Partitions {
		sentinels = append(sentinels, &kgo.Record{Topic: topic, Partition: p, Value: []byte("sentinel"),
			Headers: []kgo.RecordHeader{{Key: "test-sentinel", Value: []byte(id)}}})
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		e.tb.Fatal(err)
	}
	defer cl.Close()
	if err := cl.ProduceSync(e.ctx, sentinels...).FirstErr(); err != nil {
		e.tb.Fatal(err)
	}
	var out []*kgo.Record
	seen := 0
	for seen < len(sentinels) {
		fs := cl.PollFetches(e.ctx)
		if e.ctx.Err() != nil {
			e.tb.Fatalf("readAll %s: %d of %d sentinels seen", topic, seen, len(sentinels))
		}
		fs.EachRecord(func(r *kgo.Record) {
			for _, h := range r.Headers {
				if h.Key == "test-sentinel" {
					if string(h.Value) == id {
						seen++
					}
					return
				}
			}
			out = append(out, r)
		})
	}
	return out
}

func header(r *kgo.Record, key string) (string, int) {
	v, n := "", 0
	for _, h := range r.Headers {
		if h.Key == key {
			v, n = string(h.Value), n+1
		}
	}
	return v, n
}

// sampleEvents writes five events dead letters: three "user_id" ones (one
// of them not even JSON, one two hours old) and two "type" ones.
func (e *env) sampleEvents() {
	e.tb.Helper()
	n := e.names
	e.writeDLQ(Events, false,
		dead{src: eventRecord(n, 10, "alice", eventJSON("e1", "alice")), reason: "user_id: is required"},
		dead{src: eventRecord(n, 11, "bob", []byte(`{"id": "e2", "user_id": "bob",`)), reason: "user_id: is not valid JSON"},
		dead{src: eventRecord(n, 12, "carol", eventJSON("e3", "carol")), reason: "type: too long"},
	)
	e.writeDLQ(Events, true,
		dead{src: eventRecord(n, 13, "dave", eventJSON("e4", "dave")), reason: "USER_ID: is required", age: 2 * time.Hour},
		dead{src: eventRecord(n, 14, "erin", eventJSON("e5", "erin")), reason: "type: too long"},
	)
}

func eventIDs(es []Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.EventID)
	}
	return out
}

func sorted(ss []string) string {
	s := append([]string(nil), ss...)
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return strings.Join(s, ",")
}

func TestListFilters(t *testing.T) {
	e := newEnv(t)
	e.sampleEvents()

	l, err := List(e.ctx, e.config(Events), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if l.Read != 5 || l.Matched != 5 || len(l.Entries) != 5 {
		t.Fatalf("read %d matched %d entries %d, want 5 5 5", l.Read, l.Matched, len(l.Entries))
	}
	if got := sorted(eventIDs(l.Entries)); got != "e1,e2,e3,e4,e5" {
		t.Errorf("event ids %s", got)
	}
	for _, en := range l.Entries {
		if en.EventID == "e2" {
			if en.UserID != "bob" || en.Invalid == "" || en.Reason != "user_id: is not valid JSON" {
				t.Errorf("invalid event listed as %+v", en)
			}
		}
		if en.SourceTopic != e.names.Events || en.SourcePartition != 1 || en.SourceOffset < 10 || !en.Pending {
			t.Errorf("entry %+v: wrong source or not pending", en)
		}
	}
	if len(l.ByReason) != 4 || l.ByReason[0] != (ReasonCount{"type: too long", 2}) {
		t.Errorf("by reason %+v", l.ByReason)
	}

	cfg := e.config(Events)
	cfg.Filter = Filter{Reason: "user_id"}
	l, err = List(e.ctx, cfg, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(eventIDs(l.Entries)); got != "e1,e2,e4" || l.Matched != 3 || l.Read != 5 {
		t.Errorf("reason filter: %s (matched %d, read %d), want e1,e2,e4", got, l.Matched, l.Read)
	}

	cfg.Filter = Filter{Reason: "user_id", Since: time.Hour}
	l, err = List(e.ctx, cfg, ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(eventIDs(l.Entries)); got != "e1,e2" {
		t.Errorf("reason+since filter: %s, want e1,e2", got)
	}

	l, err = List(e.ctx, e.config(Events), ListOptions{Limit: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 2 || l.Matched != 5 {
		t.Errorf("limit 2: %d entries, matched %d", len(l.Entries), l.Matched)
	}
	for _, en := range l.Entries {
		if en.EventID == "e4" {
			t.Errorf("limit keeps the newest, but kept the two-hour-old e4")
		}
	}
}

func TestListPush(t *testing.T) {
	e := newEnv(t)
	job := herald.PushJob{UserID: "alice", Notification: herald.Notification{ID: "n1", Seq: 3, EventID: "ev-7"}, Attempt: 4}
	src, err := e.codec.Push(&job)
	if err != nil {
		t.Fatal(err)
	}
	src.Partition, src.Offset = 2, 40
	bad := &kgo.Record{Topic: e.names.Push, Key: []byte("zed"), Value: []byte("not json"), Offset: 41}
	e.writeDLQ(Push, false, dead{src: src, reason: "apns: down", attempts: 5}, dead{src: bad, reason: "decode", attempts: 0})
	l, err := List(e.ctx, e.config(Push), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(l.Entries) != 2 {
		t.Fatalf("%d entries", len(l.Entries))
	}
	for _, en := range l.Entries {
		switch en.Reason {
		case "apns: down":
			if en.UserID != "alice" || en.EventID != "ev-7" || en.Attempts != 5 || en.SourceTopic != e.names.Push || en.SourceOffset != 40 {
				t.Errorf("push entry %+v", en)
			}
		case "decode":
			if en.UserID != "zed" || en.Invalid == "" {
				t.Errorf("undecodable push entry %+v", en)
			}
		default:
			t.Errorf("unexpected %+v", en)
		}
	}
}

func TestReplayMovesMatchingOnceAndCarriesOverTheRest(t *testing.T) {
	e := newEnv(t)
	e.sampleEvents()
	cfg := e.config(Events)
	cfg.Filter = Filter{Reason: "user_id"}
	res, err := Replay(e.ctx, cfg, ReplayOptions{MaxRecords: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 3 || res.CarriedOver != 2 {
		t.Fatalf("first replay %+v, want 3 replayed, 2 carried over", res)
	}
	got := e.readAll(e.names.Events)
	if len(got) != 3 {
		t.Fatalf("%d records in herald.events, want 3", len(got))
	}
	users := map[string]bool{}
	for _, r := range got {
		users[string(r.Key)] = true
		if _, n := header(r, pipeline.HeaderError); n != 0 {
			t.Errorf("replayed record kept %s", pipeline.HeaderError)
		}
		if _, n := header(r, pipeline.HeaderSourceOffset); n != 0 {
			t.Errorf("replayed record kept %s", pipeline.HeaderSourceOffset)
		}
		if v, _ := header(r, "upstream"); v != "x" {
			t.Errorf("replayed record lost its own header: %v", r.Headers)
		}
		if v, n := header(r, HeaderReplayedFrom); n != 1 || !strings.HasPrefix(v, e.names.EventsDLQ+"/") {
			t.Errorf("%s = %q (%d)", HeaderReplayedFrom, v, n)
		}
		if string(r.Key) == "bob" && string(r.Value) != `{"id": "e2", "user_id": "bob",` {
			t.Errorf("invalid event replayed as %q", r.Value)
		}
		if string(r.Key) == "alice" && string(r.Value) != string(eventJSON("e1", "alice")) {
			t.Errorf("event replayed as %q", r.Value)
		}
	}
	if !users["alice"] || !users["bob"] || !users["dave"] {
		t.Errorf("replayed users %v, want alice, bob, dave", users)
	}

	// Pending now: the two carried-over "type" ones, with their age.
	l, err := List(e.ctx, e.config(Events), ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got := sorted(eventIDs(l.Entries)); got != "e3,e5" {
		t.Errorf("pending after replay: %s, want e3,e5", got)
	}
	all, err := List(e.ctx, e.config(Events), ListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	handled := 0
	for _, en := range all.Entries {
		if !en.Pending {
			handled++
		}
	}
	if all.Read != 7 || handled != 5 {
		t.Errorf("--all: read %d, handled %d; want 7 and 5", all.Read, handled)
	}

	// The same replay again replays nothing.
	res, err = Replay(e.ctx, cfg, ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 0 {
		t.Errorf("second replay %+v, want nothing replayed", res)
	}
	// Another filter still finds the ones the first one passed over.
	res, err = Replay(e.ctx, e.config(Events), ReplayOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 2 || res.CarriedOver != 0 {
		t.Errorf("unfiltered replay %+v, want the 2 carried over", res)
	}
	if got := e.readAll(e.names.Events); len(got) != 5 {
		t.Errorf("%d records in herald.events, want each of the 5 once", len(got))
	}
	if n, err := Depth(e.ctx, e.adm, mustTopic(t, e.names, Events)); err != nil || n != 0 {
		t.Errorf("depth after replaying everything: %d, %v", n, err)
	}
	res, err = Replay(e.ctx, e.config(Events), ReplayOptions{})
	if err != nil || res.Replayed != 0 || res.CarriedOver != 0 {
		t.Errorf("replay of an empty DLQ: %+v, %v", res, err)
	}
}

func mustTopic(t *testing.T, names topics.Names, k Kind) Topic {
	t.Helper()
	tp, err := TopicOf(names, k)
	if err != nil {
		t.Fatal(err)
	}
	return tp
}

func TestReplayPushResetsAttempts(t *testing.T) {
	e := newEnv(t)
	job := herald.PushJob{UserID: "alice", Notification: herald.Notification{ID: "n1", Seq: 3, EventID: "ev-7"}, Attempt: 4}
	src, err := e.codec.Push(&job)
	if err != nil {
		t.Fatal(err)
	}
	src.Offset = 9
	e.writeDLQ(Push, true, dead{src: src, reason: "apns: 500", attempts: 5})
	res, err := Replay(e.ctx, e.config(Push), ReplayOptions{})
	if err != nil || res.Replayed != 1 {
		t.Fatalf("%+v, %v", res, err)
	}
	got := e.readAll(e.names.Push)
	if len(got) != 1 {
		t.Fatalf("%d push records", len(got))
	}
	back, err := pipeline.DecodePush(got[0])
	if err != nil {
		t.Fatal(err)
	}
	if back.Attempt != 0 || back.Notification.EventID != "ev-7" || back.UserID != "alice" {
		t.Errorf("replayed job %+v", back)
	}
	if _, n := header(got[0], pipeline.HeaderAttempts); n != 0 {
		t.Errorf("replayed job kept %s", pipeline.HeaderAttempts)
	}
}

func TestReplayInterruptedResumesExactlyOnce(t *testing.T) {
	e := newEnv(t)
	var ds []dead
	for i := range 12 {
		id := "e" + strconv.Itoa(i)
		ds = append(ds, dead{src: eventRecord(e.names, int64(i), "u"+strconv.Itoa(i), eventJSON(id, "u"+strconv.Itoa(i))), reason: "r"})
	}
	e.writeDLQ(Events, false, ds[:6]...)
	e.writeDLQ(Events, true, ds[6:]...)

	// Canceled after the first committed batch.
	ctx, cancel := context.WithCancel(e.ctx)
	first, err := Replay(ctx, e.config(Events), ReplayOptions{MaxRecords: 2, OnReplayed: func(Entry) { cancel() }})
	cancel()
	if !errors.Is(err, context.Canceled) || first.Replayed == 0 || first.Replayed >= 12 {
		t.Fatalf("canceled replay: %+v, %v", first, err)
	}
	// Crashed in the middle of the next batch: produced, not committed.
	calls := 0
	crash := errors.New("crash")
	second, err := Replay(e.ctx, e.config(Events), ReplayOptions{MaxRecords: 2, beforeEnd: func(context.Context) error {
		if calls++; calls == 2 {
			return crash
		}
		return nil
	}})
	if !errors.Is(err, crash) {
		t.Fatalf("crashed replay: %+v, %v", second, err)
	}
	third, err := Replay(e.ctx, e.config(Events), ReplayOptions{MaxRecords: 2})
	if err != nil {
		t.Fatal(err)
	}
	if total := first.Replayed + second.Replayed + third.Replayed; total != 12 {
		t.Errorf("replayed %d+%d+%d, want 12 in all", first.Replayed, second.Replayed, third.Replayed)
	}
	counts := map[string]int{}
	for _, r := range e.readAll(e.names.Events) {
		counts[string(r.Key)]++
	}
	for i := range 12 {
		if u := "u" + strconv.Itoa(i); counts[u] != 1 {
			t.Errorf("%s replayed %d times, want once", u, counts[u])
		}
	}
	if len(counts) != 12 {
		t.Errorf("herald.events holds %d users", len(counts))
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	e := newEnv(t)
	e.sampleEvents()
	before, err := e.adm.ListEndOffsets(e.ctx, e.names.EventsDLQ)
	if err != nil {
		t.Fatal(err)
	}
	cfg := e.config(Events)
	cfg.Filter = Filter{Reason: "type"}
	var seen []string
	res, err := Replay(e.ctx, cfg, ReplayOptions{DryRun: true, OnReplayed: func(en Entry) { seen = append(seen, en.EventID) }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Replayed != 2 || sorted(seen) != "e3,e5" {
		t.Errorf("dry run %+v, saw %v", res, seen)
	}
	after, err := e.adm.ListEndOffsets(e.ctx, e.names.EventsDLQ)
	if err != nil {
		t.Fatal(err)
	}
	before.Each(func(o kadm.ListedOffset) {
		if a, _ := after.Lookup(o.Topic, o.Partition); a.Offset != o.Offset {
			t.Errorf("dry run wrote to %s[%d]: end %d -> %d", o.Topic, o.Partition, o.Offset, a.Offset)
		}
	})
	if got := e.readAll(e.names.Events); len(got) != 0 {
		t.Errorf("dry run produced %d records", len(got))
	}
	if offs, err := groupOffsets(e.ctx, e.adm, mustTopic(t, e.names, Events)); err != nil || len(offs) != 0 {
		t.Errorf("dry run committed %v (%v)", offs, err)
	}
	// A real replay still finds all of them.
	res, err = Replay(e.ctx, e.config(Events), ReplayOptions{})
	if err != nil || res.Replayed != 5 {
		t.Errorf("replay after dry run: %+v, %v", res, err)
	}
}

func TestDepthAndCollector(t *testing.T) {
	e := newEnv(t)
	e.sampleEvents() // 5 records in two writes, one transactional
	job := herald.PushJob{UserID: "alice", Notification: herald.Notification{ID: "n1", Seq: 1, EventID: "ev"}}
	src, err := e.codec.Push(&job)
	if err != nil {
		t.Fatal(err)
	}
	e.writeDLQ(Push, true, dead{src: src, reason: "x"}, dead{src: src, reason: "y"})
	if n, err := Depth(e.ctx, e.adm, mustTopic(t, e.names, Push)); err != nil || n != 2 {
		t.Errorf("push depth %d, %v; want 2", n, err)
	}
	// Transaction markers count: an upper bound.
	if n, err := Depth(e.ctx, e.adm, mustTopic(t, e.names, Events)); err != nil || n < 5 || n > 7 {
		t.Errorf("events depth %d, %v; want 5 to 7", n, err)
	}
	col := NewDepthCollector(DepthConfig{Admin: e.adm, Logger: quietLog})
	reg := prometheus.NewRegistry()
	reg.MustRegister(col)
	if got := gatherDepth(t, reg); len(got) != 2 || got["herald.push.dlq"] != 2 {
		t.Errorf("depth series %v, want one per DLQ, push 2", got)
	}
	if _, err := Replay(e.ctx, e.config(Push), ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := Replay(e.ctx, e.config(Events), ReplayOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := gatherDepth(t, reg); len(got) != 2 || got["herald.push.dlq"] != 0 || got["herald.events.dlq"] != 0 {
		t.Errorf("depth after replays %v, want 0 for both", got)
	}
}

func TestConfigErrorsNameTheField(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{Kind: Events}, "Brokers"},
		{Config{Brokers: []string{"x:1"}}, "Kind"},
		{Config{Brokers: []string{"x:1"}, Kind: "nope"}, "unknown kind"},
		{Config{Brokers: []string{"x:1"}, Kind: Push, Filter: Filter{Since: -time.Second}}, "Since"},
	} {
		_, err := List(context.Background(), tc.cfg, ListOptions{})
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %s", tc.cfg, err, tc.want)
		}
	}
	if _, err := ParseKind("pushes"); err == nil {
		t.Error("ParseKind accepted pushes")
	}
	tp := mustTopic(t, topics.WithPrefix("acme."), Push)
	if tp.DLQ != "acme.push.dlq" || tp.Source != "acme.push" || tp.Group != "acme.dlq-replay-push" {
		t.Errorf("TopicOf: %+v", tp)
	}
}

// gatherDepth scrapes reg: herald_dlq_depth by topic.
func gatherDepth(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetName() != "herald_dlq_depth" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "topic" {
					out[l.GetValue()] = m.GetGauge().GetValue()
				}
			}
		}
	}
	return out
}
