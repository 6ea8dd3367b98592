package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
	"github.com/twmb/franz-go/pkg/kgo"
)

const enricherGroup = "herald-enricher"

func TestEnricherDedup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	e.produce(ev, "u1", eventJSON("evt-1", "u1", "mention"), eventJSON("evt-1", "u1", "mention"), eventJSON("evt-2", "u1", "mention"))
	e.startEnricher(e.enricherConfig("txn-dedup"))
	e.waitCommitted(enricherGroup, ev)

	// The same id again, in a later batch.
	e.produce(ev, "u1", eventJSON("evt-1", "u1", "mention"), eventJSON("evt-3", "u1", "mention"))
	e.waitCommitted(enricherGroup, ev)

	ns := e.list("u1")
	if got, want := eventIDs(ns), []string{"evt-1", "evt-2", "evt-3"}; !slices.Equal(got, want) {
		t.Fatalf("inbox = %v, want %v", got, want)
	}
	for i, n := range ns {
		if n.Seq != uint64(i+1) || n.Prev != uint64(i) {
			t.Fatalf("inbox[%d]: seq %d prev %d", i, n.Seq, n.Prev)
		}
	}
	dels := e.readAll(e.names.Deliveries)
	if len(dels) != 3 {
		t.Fatalf("deliveries: %d records, want 3:%s", len(dels), fmtRecords(dels))
	}
	for i, r := range dels {
		n := decodeNotification(t, r)
		if string(r.Key) != "u1" || n.EventID != ns[i].EventID || n.Seq != ns[i].Seq || n.ID != ns[i].ID {
			t.Fatalf("deliveries[%d] = %s %+v, want %+v", i, r.Key, n, ns[i])
		}
		if got := mustHeader(t, r, HeaderPush); got != "allowed" {
			t.Fatalf("deliveries[%d]: %s = %q", i, HeaderPush, got)
		}
	}
}

func TestEnricherMutedAndNoChannel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	p := herald.DefaultPreferences()
	p.MutedTypes = []string{"like"}
	e.setPrefs("u-muted", p)
	p = herald.DefaultPreferences()
	p.Channels = herald.Channels{InApp: false, Push: false}
	e.setPrefs("u-none", p)

	e.produce(ev, "u-muted", eventJSON("e1", "u-muted", "like"), eventJSON("e2", "u-muted", "mention"))
	e.produce(ev, "u-none", eventJSON("e3", "u-none", "mention"))
	e.startEnricher(e.enricherConfig("txn-muted"))
	e.waitCommitted(enricherGroup, ev)

	if got := eventIDs(e.list("u-muted")); !slices.Equal(got, []string{"e2"}) {
		t.Fatalf("u-muted inbox = %v, want [e2]", got)
	}
	if got := e.list("u-none"); len(got) != 0 {
		t.Fatalf("u-none inbox = %v, want empty", got)
	}
	dels := e.readAll(e.names.Deliveries)
	if len(dels) != 1 || decodeNotification(t, dels[0]).EventID != "e2" {
		t.Fatalf("deliveries = %s, want only e2", fmtRecords(dels))
	}
	if push := e.readAll(e.names.Push); len(push) != 0 {
		t.Fatalf("push jobs produced for muted / no-channel events:%s", fmtRecords(push))
	}
}

func TestEnricherPushOnly(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	p := herald.DefaultPreferences()
	p.Channels.InApp = false
	e.setPrefs("u-phone", p)

	e.produce(ev, "u-phone",
		eventJSON("p1", "u-phone", "mention", "collapse_key", "thread:1"),
		eventJSON("p1", "u-phone", "mention"), // duplicate
		// Expired long ago: not pushed.
		[]byte(`{"id":"p2","user_id":"u-phone","type":"mention","created_at":"2020-01-01T00:00:00Z","ttl":60}`),
	)
	e.startEnricher(e.enricherConfig("txn-pushonly"))
	e.waitCommitted(enricherGroup, ev)

	if got := e.list("u-phone"); len(got) != 0 {
		t.Fatalf("push-only user got an inbox entry: %v", got)
	}
	jobs := e.readAll(e.names.Push)
	if len(jobs) != 1 {
		t.Fatalf("push jobs = %s, want one", fmtRecords(jobs))
	}
	var job herald.PushJob
	if err := json.Unmarshal(jobs[0].Value, &job); err != nil {
		t.Fatal(err)
	}
	if string(jobs[0].Key) != "u-phone" || job.UserID != "u-phone" || job.Notification.EventID != "p1" || job.CollapseKey != "thread:1" || job.Attempt != 0 {
		t.Fatalf("push job = %+v", job)
	}
	// The job's id derives from its source record, so a replay of the same
	// record gives the same id (the pusher's progress key).
	evs := e.readAll(ev)
	if want := herald.SourceID(job.Notification.CreatedAt, sourceToken(evs[0])); job.Notification.ID != want {
		t.Fatalf("push-only notification id %s, want the source-derived %s", job.Notification.ID, want)
	}
	if dels := e.readAll(e.names.Deliveries); len(dels) != 0 {
		t.Fatalf("push-only event went to deliveries:%s", fmtRecords(dels))
	}
}

func TestEnricherDLQ(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	big := `{"id":"big","user_id":"u1","type":"x","body":"` + strings.Repeat("a", herald.MaxEventBytes) + `"}`
	cases := []struct {
		value  string
		reason string
	}{
		{`{"id":"x1","user_id":`, "malformed JSON"},
		{`{"id":"x2","type":"mention"}`, "user_id: one of user_id, user_ids or audience is required"},
		{`{"id":"x3","user_id":"u1","type":"mention","priority":"urgent"}`, "priority: must be one of high, normal, low"},
		{big, "more than the 65536 allowed"},
	}
	key := "u1"
	part := partitionFor(key, 12)
	var sent []*kgo.Record
	for i, c := range cases {
		r := &kgo.Record{Topic: ev, Key: []byte(key), Value: []byte(c.value), Partition: part}
		if i == 0 {
			r.Headers = []kgo.RecordHeader{{Key: "trace-id", Value: []byte("abc")}}
		}
		sent = append(sent, r)
	}
	if err := e.prod.ProduceSync(e.ctx, sent...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// A valid event behind the bad ones on the same partition.
	e.produce(ev, key, eventJSON("ok-1", "u1", "mention"))

	e.startEnricher(e.enricherConfig("txn-dlq"))
	e.waitCommitted(enricherGroup, ev)

	if got := eventIDs(e.list("u1")); !slices.Equal(got, []string{"ok-1"}) {
		t.Fatalf("inbox = %v, want [ok-1]", got)
	}
	dlq := e.readAll(e.names.EventsDLQ)
	if len(dlq) != len(cases) {
		t.Fatalf("DLQ has %d records, want %d:%s", len(dlq), len(cases), fmtRecords(dlq))
	}
	slices.SortFunc(dlq, func(a, b *kgo.Record) int {
		x, _ := strconv.Atoi(mustHeader(t, a, HeaderSourceOffset))
		y, _ := strconv.Atoi(mustHeader(t, b, HeaderSourceOffset))
		return x - y
	})
	for i, r := range dlq {
		c, src := cases[i], sent[i]
		if string(r.Key) != key || string(r.Value) != c.value {
			t.Errorf("dlq[%d]: key/value not as received", i)
		}
		if got := mustHeader(t, r, HeaderError); !strings.Contains(got, c.reason) {
			t.Errorf("dlq[%d]: %s = %q, want it to contain %q", i, HeaderError, got, c.reason)
		}
		if got := mustHeader(t, r, HeaderSourceTopic); got != ev {
			t.Errorf("dlq[%d]: source topic %q", i, got)
		}
		if got := mustHeader(t, r, HeaderSourcePartition); got != strconv.Itoa(int(src.Partition)) {
			t.Errorf("dlq[%d]: source partition %q, want %d", i, got, src.Partition)
		}
		if got := mustHeader(t, r, HeaderSourceOffset); got != strconv.FormatInt(src.Offset, 10) {
			t.Errorf("dlq[%d]: source offset %q, want %d", i, got, src.Offset)
		}
	}
	if got, _ := header(dlq[0], "trace-id"); got != "abc" {
		t.Errorf("dlq[0]: original header lost: %v", dlq[0].Headers)
	}
}

// flakyStore fails Append calls while fail > 0.
type flakyStore struct {
	EnricherStore
	fail atomic.Int32
}

var errFlaky = errors.New("store unavailable")

func (s *flakyStore) Fence(ctx context.Context, scope string) (store.Writer, error) {
	w, err := s.EnricherStore.Fence(ctx, scope)
	if err != nil {
		return nil, err
	}
	return &flakyWriter{Writer: w, s: s}, nil
}

// flakyWriter is a Writer of a flakyStore.
type flakyWriter struct {
	store.Writer
	s *flakyStore
}

func (w *flakyWriter) Append(ctx context.Context, ns []herald.Notification) ([]store.AppendResult, error) {
	if w.s.fail.Add(-1) >= 0 {
		return nil, errFlaky
	}
	return w.Writer.Append(ctx, ns)
}

func TestEnricherRetriesStoreErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	fs := &flakyStore{EnricherStore: e.store}
	fs.fail.Store(3)
	cfg := e.enricherConfig("txn-flaky")
	cfg.Store = fs
	for i := range 5 {
		e.produce(ev, "u1", eventJSON(fmt.Sprint("f", i), "u1", "mention"))
	}
	e.startEnricher(cfg)
	e.waitCommitted(enricherGroup, ev)

	if fs.fail.Load() >= 0 {
		t.Fatal("the store never failed")
	}
	ns := e.list("u1")
	if len(ns) != 5 {
		t.Fatalf("inbox = %v, want 5 events", eventIDs(ns))
	}
	dels := e.readAll(e.names.Deliveries)
	if len(dels) != 5 {
		t.Fatalf("deliveries: %d, want 5 (aborted attempts must stay invisible):%s", len(dels), fmtRecords(dels))
	}
	for i, r := range dels {
		if n := decodeNotification(t, r); n.Seq != uint64(i+1) || n.EventID != ns[i].EventID {
			t.Fatalf("deliveries[%d] = %+v, want %+v", i, n, ns[i])
		}
	}
}

// TestEnricherCrashRestart kills an enricher after it stored and produced a
// batch but before the transaction committed, then starts a new one with the
// same transactional id and group: every valid event must be in the inbox
// exactly once, with contiguous seqs, and herald.deliveries (read_committed)
// must hold each notification exactly once.
func TestEnricherCrashRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	users := []string{"ada", "bob", "cy", "dee", "eve"}
	want := map[string][]string{} // user -> distinct event ids in order
	for i := range 60 {
		u := users[i%len(users)]
		id := fmt.Sprintf("%s-%d", u, i/len(users))
		if i%7 == 3 && i >= len(users) {
			id = fmt.Sprintf("%s-%d", u, i/len(users)-1) // a duplicate of the user's previous event
		} else {
			want[u] = append(want[u], id)
		}
		e.produce(ev, u, eventJSON(id, u, "mention"))
	}

	// First incarnation: small batches; commit one, then die inside the
	// second after its store writes and produces are done.
	var batches atomic.Int32
	var crashed atomic.Bool
	cfg := e.enricherConfig("txn-crash")
	cfg.MaxPollRecords = 7
	var en1 *Enricher
	var mu sync.Mutex
	cfg.beforeEnd = func(context.Context) error {
		if batches.Add(1) < 2 {
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
	if err := r1.wait(t, e.ctx); err == nil {
		t.Fatal("crashed enricher's Run returned nil")
	} else {
		t.Logf("crashed enricher's Run returned %v", err)
	}
	if !crashed.Load() {
		t.Fatal("the enricher never reached the crash point")
	}
	stored := 0
	for _, u := range users {
		stored += len(e.list(u))
	}
	if stored <= 7 {
		// Otherwise the test would not exercise "stored but not committed".
		t.Fatalf("only %d notifications stored before the crash", stored)
	}

	// Second incarnation, same identity.
	cfg2 := e.enricherConfig("txn-crash")
	e.startEnricher(cfg2)
	e.waitCommitted(enricherGroup, ev)

	for _, u := range users {
		ns := e.list(u)
		if got := eventIDs(ns); !slices.Equal(got, want[u]) {
			t.Errorf("%s inbox = %v, want %v", u, got, want[u])
		}
		for i, n := range ns {
			if n.Seq != uint64(i+1) || n.Prev != uint64(i) {
				t.Errorf("%s inbox[%d]: seq %d prev %d", u, i, n.Seq, n.Prev)
			}
		}
	}
	got := map[string][]herald.Notification{}
	for _, r := range e.readAll(e.names.Deliveries) {
		n := decodeNotification(t, r)
		got[n.UserID] = append(got[n.UserID], n)
	}
	for _, u := range users {
		if ids := eventIDs(got[u]); !slices.Equal(ids, want[u]) {
			t.Errorf("%s deliveries = %v, want each of %v exactly once, in order", u, ids, want[u])
		}
		for i, n := range got[u] {
			if n.Seq != uint64(i+1) {
				t.Errorf("%s deliveries[%d]: seq %d", u, i, n.Seq)
			}
		}
	}
}

func TestEnricherLifecycle(t *testing.T) {
	t.Parallel()
	if _, err := NewEnricher(EnricherConfig{Brokers: []string{"127.0.0.1:1"}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("no store: err = %v", err)
	}
	e := newEnv(t)
	if _, err := NewEnricher(EnricherConfig{Store: e.store}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("no brokers: err = %v", err)
	}

	// Close before Run: Run returns ErrClosed at once.
	en, err := NewEnricher(e.enricherConfig("txn-life-1"))
	if err != nil {
		t.Fatal(err)
	}
	en.Close()
	en.Close()
	if err := en.Run(e.ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v", err)
	}

	// Cancel: Run returns nil; a second Run reports ErrClosed.
	en, err = NewEnricher(e.enricherConfig("txn-life-2"))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- en.Run(ctx) }()
	e.produce(e.names.Events, "u1", eventJSON("l1", "u1", "mention"))
	e.waitCommitted(enricherGroup, e.names.Events)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run after cancel = %v", err)
	}
	if err := en.Run(e.ctx); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Run = %v", err)
	}
	en.Close()

	// Close while running stops Run.
	en, err = NewEnricher(e.enricherConfig("txn-life-3"))
	if err != nil {
		t.Fatal(err)
	}
	go func() { done <- en.Run(e.ctx) }()
	en.Close()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, ErrClosed) {
			t.Fatalf("Run after Close = %v", err)
		}
	case <-e.ctx.Done():
		t.Fatal("Close did not stop Run")
	}
}

// TestEnricherRebalance runs two enrichers in one group, the second joining
// while the first is busy: whatever the rebalance aborts is replayed, and
// every event still ends up stored and delivered exactly once.
func TestEnricherRebalance(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	want := map[string][]string{}
	wave := func(from, to int) {
		for i := from; i < to; i++ {
			u := fmt.Sprint("user-", i%10)
			id := fmt.Sprint("r-", i)
			want[u] = append(want[u], id)
			e.produce(ev, u, eventJSON(id, u, "mention"))
		}
	}
	cfgA := e.enricherConfig("txn-reb-a")
	cfgA.MaxPollRecords = 5
	wave(0, 100)
	e.startEnricher(cfgA)
	cfgB := e.enricherConfig("txn-reb-b")
	cfgB.MaxPollRecords = 5
	e.startEnricher(cfgB)
	wave(100, 200)
	e.waitCommitted(enricherGroup, ev)

	got := map[string][]herald.Notification{}
	for _, r := range e.readAll(e.names.Deliveries) {
		n := decodeNotification(t, r)
		got[n.UserID] = append(got[n.UserID], n)
	}
	for u, ids := range want {
		ns := e.list(u)
		if g := eventIDs(ns); !slices.Equal(g, ids) {
			t.Errorf("%s inbox = %v, want %v", u, g, ids)
		}
		for i, n := range ns {
			if n.Seq != uint64(i+1) || n.Prev != uint64(i) {
				t.Errorf("%s inbox[%d]: seq %d prev %d", u, i, n.Seq, n.Prev)
			}
		}
		if g := eventIDs(got[u]); !slices.Equal(g, ids) {
			t.Errorf("%s deliveries = %v, want %v exactly once", u, g, ids)
		}
	}
}
