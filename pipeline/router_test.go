package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/twmb/franz-go/pkg/kgo"
)

// recorder is a Deliverer that records calls and answers online.
type recorder struct {
	mu     sync.Mutex
	online bool
	calls  map[string][]uint64 // user -> seqs, in call order
	n      int
	signal chan struct{} // receives after each call, if non-nil (never blocks)
}

func newRecorder(online bool) *recorder {
	return &recorder{online: online, calls: map[string][]uint64{}, signal: make(chan struct{}, 1)}
}

func (r *recorder) Deliver(_ context.Context, userID string, n herald.Notification) (bool, error) {
	r.mu.Lock()
	r.calls[userID] = append(r.calls[userID], n.Seq)
	r.n++
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
	return r.online, nil
}

func (r *recorder) seqs(user string) []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls[user])
}

func (e *env) startRouter(group string, d Deliverer) (*Router, *runner) {
	e.tb.Helper()
	rt, err := NewRouter(RouterConfig{
		Brokers:         e.addrs,
		Group:           group,
		Deliverer:       d,
		Logger:          quietLog,
		RetryBackoff:    20 * time.Millisecond,
		MaxRetryBackoff: 100 * time.Millisecond,
		ClientOptions:   []kgo.Opt{kgo.FetchMaxWait(200 * time.Millisecond)},
	})
	if err != nil {
		e.tb.Fatal(err)
	}
	return rt, start(e.tb, e.ctx, rt.Run, rt.Close)
}

func notificationJSON(seq uint64, eventID string) []byte {
	b, _ := json.Marshal(herald.Notification{ID: herald.NewID(time.Now()), Seq: seq, Prev: seq - 1, EventID: eventID,
		Type: "mention", Priority: herald.PriorityNormal, CreatedAt: time.Now().UTC()})
	return b
}

// TestPushDecisions runs events through the enricher, checks the push
// headers on herald.deliveries, then routes them with offline and online
// Deliverers.
func TestPushDecisions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events

	quiet := herald.DefaultPreferences()
	quiet.QuietHours = &herald.QuietHours{Start: "22:00", End: "07:00", Timezone: "UTC"}
	noPush := herald.DefaultPreferences()
	noPush.Channels.Push = false
	e.setPrefs("u-quiet", quiet)
	e.setPrefs("u-quiet-high", quiet)
	e.setPrefs("u-nopush", noPush)

	created := time.Now().UTC().Format(time.RFC3339)
	e.produce(ev, "u-allowed", eventJSON("a1", "u-allowed", "mention", "collapse_key", "thread:9", "created_at", created))
	e.produce(ev, "u-allowed", []byte(`{"id":"a2","user_id":"u-allowed","type":"mention","ttl":3600,"created_at":"`+created+`"}`))
	e.produce(ev, "u-quiet", eventJSON("q1", "u-quiet", "mention"))
	e.produce(ev, "u-quiet-high", eventJSON("h1", "u-quiet-high", "mention", "priority", "high"))
	e.produce(ev, "u-nopush", eventJSON("n1", "u-nopush", "mention"))
	e.produce(ev, "u-expired", []byte(`{"id":"x1","user_id":"u-expired","type":"mention","ttl":60,"created_at":"2020-01-01T00:00:00Z"}`))

	cfg := e.enricherConfig("txn-push")
	cfg.Now = func() time.Time { return time.Date(2026, 11, 22, 23, 30, 0, 0, time.UTC) } // inside quiet hours
	e.startEnricher(cfg)
	e.waitCommitted(enricherGroup, ev)

	wantHeader := map[string]string{"a1": "allowed", "a2": "allowed", "q1": "quiet_hours", "h1": "allowed", "n1": "disabled", "x1": "allowed"}
	dels := e.readAll(e.names.Deliveries)
	if len(dels) != len(wantHeader) {
		t.Fatalf("deliveries: %d records, want %d:%s", len(dels), len(wantHeader), fmtRecords(dels))
	}
	for _, r := range dels {
		n := decodeNotification(t, r)
		if got := mustHeader(t, r, HeaderPush); got != wantHeader[n.EventID] {
			t.Errorf("%s: %s = %q, want %q", n.EventID, HeaderPush, got, wantHeader[n.EventID])
		}
		ck, hasCK := header(r, HeaderCollapseKey)
		exp, hasExp := header(r, HeaderExpiresAt)
		switch n.EventID {
		case "a1":
			if ck != "thread:9" || hasExp {
				t.Errorf("a1 headers: %v", r.Headers)
			}
		case "a2", "x1":
			if hasCK || !hasExp {
				t.Errorf("%s headers: %v", n.EventID, r.Headers)
			}
			if _, err := time.Parse(time.RFC3339, exp); err != nil {
				t.Errorf("%s: %s = %q: %v", n.EventID, HeaderExpiresAt, exp, err)
			}
		}
		if len(e.list(n.UserID)) != 1 && n.UserID != "u-allowed" {
			t.Errorf("%s: notification not stored", n.EventID)
		}
	}
	if jobs := e.readAll(e.names.Push); len(jobs) != 0 {
		t.Fatalf("the enricher produced push jobs for in-app events:%s", fmtRecords(jobs))
	}

	// Every user offline: push only what preferences allow and has not expired.
	off := newRecorder(false)
	e.startRouter("gw-offline", off)
	e.waitCommitted("gw-offline", e.names.Deliveries) // readAll left a sentinel last in each partition
	jobs := e.readAll(e.names.Push)
	got := map[string]herald.PushJob{}
	for _, r := range jobs {
		var j herald.PushJob
		if err := json.Unmarshal(r.Value, &j); err != nil {
			t.Fatal(err)
		}
		if string(r.Key) != j.UserID {
			t.Errorf("push job key %q for user %q", r.Key, j.UserID)
		}
		got[j.Notification.EventID] = j
	}
	if len(jobs) != 3 || got["a1"].UserID != "u-allowed" || got["a2"].UserID != "u-allowed" || got["h1"].UserID != "u-quiet-high" {
		t.Fatalf("push jobs for %v, want a1, a2 (u-allowed) and h1 (u-quiet-high):%s", got, fmtRecords(jobs))
	}
	if j := got["a1"]; j.CollapseKey != "thread:9" || !j.ExpiresAt.IsZero() || j.Notification.Seq != 1 || j.Attempt != 0 {
		t.Errorf("a1 job = %+v", j)
	}
	if j := got["a2"]; j.ExpiresAt.IsZero() || j.Notification.Seq != 2 || j.Notification.Prev != 1 {
		t.Errorf("a2 job = %+v", j)
	}
	for _, u := range []string{"u-allowed", "u-quiet", "u-quiet-high", "u-nopush", "u-expired"} {
		if len(off.seqs(u)) == 0 {
			t.Errorf("Deliver never asked about %s", u)
		}
	}

	// Every user online: no push job at all.
	e.startRouter("gw-online", newRecorder(true))
	e.waitCommitted("gw-online", e.names.Deliveries)
	if jobs := e.readAll(e.names.Push); len(jobs) != 3 {
		t.Fatalf("online users got push jobs: %d jobs now, want still 3:%s", len(jobs), fmtRecords(jobs))
	}
}

func TestRouterOrderAndSkipsGarbage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.names.Deliveries
	for seq := uint64(1); seq <= 20; seq++ {
		e.produce(d, "u1", notificationJSON(seq, fmt.Sprint("e", seq)))
		e.produce(d, "u2", notificationJSON(seq, fmt.Sprint("e", seq)))
		if seq == 10 {
			e.produce(d, "u1", []byte("not json"))
			e.produce(d, "u1", notificationJSON(0, "")) // no seq
			e.produce(d, "bad key!", notificationJSON(1, "e1"))
		}
	}
	rec := newRecorder(true)
	e.startRouter("gw-order", rec)
	e.waitCommitted("gw-order", d) // commits go past the garbage

	want := make([]uint64, 20)
	for i := range want {
		want[i] = uint64(i + 1)
	}
	for _, u := range []string{"u1", "u2"} {
		if got := rec.seqs(u); !slices.Equal(got, want) {
			t.Errorf("%s delivered %v, want %v", u, got, want)
		}
	}
	if jobs := e.readAll(e.names.Push); len(jobs) != 0 {
		t.Fatalf("push jobs for online users:%s", fmtRecords(jobs))
	}
}

// blocker delivers online, but blocks on one seq of one user the first time
// until its context ends.
type blocker struct {
	*recorder
	user    string
	seq     uint64
	blocked chan struct{} // closed when the block starts
	once    sync.Once
}

func (b *blocker) Deliver(ctx context.Context, userID string, n herald.Notification) (bool, error) {
	if userID == b.user && n.Seq == b.seq {
		first := false
		b.once.Do(func() { first = true })
		if first {
			close(b.blocked)
			<-ctx.Done()
			return false, ctx.Err()
		}
	}
	return b.recorder.Deliver(ctx, userID, n)
}

func TestRouterAtLeastOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.names.Deliveries
	var recs []*kgo.Record
	for seq := uint64(1); seq <= 5; seq++ {
		recs = append(recs, e.produce(d, "u1", notificationJSON(seq, fmt.Sprint("e", seq)))...)
	}
	blocked := recs[2] // seq 3

	b := &blocker{recorder: newRecorder(true), user: "u1", seq: 3, blocked: make(chan struct{})}
	rt, run := e.startRouter("gw-alo", b)
	select {
	case <-b.blocked:
	case <-e.ctx.Done():
		t.Fatal("seq 3 never delivered")
	}
	// While seq 3 is in flight, nothing at or past it may be committed.
	offs, err := e.adm.FetchOffsets(e.ctx, "gw-alo")
	if err != nil {
		t.Fatal(err)
	}
	if o, ok := offs.Lookup(d, blocked.Partition); ok && o.At > blocked.Offset {
		t.Fatalf("committed offset %d is past the in-flight record at %d", o.At, blocked.Offset)
	}
	rt.Close() // shutdown mid-batch: no commit
	if err := run.wait(t, e.ctx); err != nil {
		t.Fatalf("Run after Close = %v", err)
	}

	// The next owner gets seq 3 onwards again.
	rec := newRecorder(true)
	e.startRouter("gw-alo", rec)
	e.waitCommitted("gw-alo", d)
	got := rec.seqs("u1")
	if len(got) < 3 || !slices.Equal(got[len(got)-3:], []uint64{3, 4, 5}) || !slices.IsSorted(got) {
		t.Fatalf("second router delivered %v, want a sorted replay ending in 3 4 5", got)
	}
}

func TestRouterRetriesDeliverErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	d := e.names.Deliveries
	e.produce(d, "u1", notificationJSON(1, "e1"), notificationJSON(2, "e2"))
	rec := newRecorder(false)
	var mu sync.Mutex
	failures := 3
	flaky := DelivererFunc(func(ctx context.Context, u string, n herald.Notification) (bool, error) {
		mu.Lock()
		fail := failures > 0
		failures--
		mu.Unlock()
		if fail {
			return false, errors.New("presence unavailable")
		}
		return rec.Deliver(ctx, u, n)
	})
	e.startRouter("gw-retry", flaky)
	e.waitCommitted("gw-retry", d)
	if got := rec.seqs("u1"); !slices.Equal(got, []uint64{1, 2}) {
		t.Fatalf("delivered %v, want [1 2]", got)
	}
	jobs := e.readAll(e.names.Push)
	if len(jobs) != 0 {
		// The records carry no herald-push header: never pushed.
		t.Fatalf("push jobs without a push decision:%s", fmtRecords(jobs))
	}
}

func TestRouterConfig(t *testing.T) {
	t.Parallel()
	if _, err := NewRouter(RouterConfig{Brokers: []string{"127.0.0.1:1"}}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("no deliverer: err = %v", err)
	}
	if _, err := NewRouter(RouterConfig{Deliverer: newRecorder(true)}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("no brokers: err = %v", err)
	}
	rt, err := NewRouter(RouterConfig{Brokers: []string{"127.0.0.1:1"}, Deliverer: newRecorder(true)})
	if err != nil {
		t.Fatal(err)
	}
	rt.Close()
	rt.Close()
	if err := rt.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v", err)
	}
}
