package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/twmb/franz-go/pkg/kgo"
)

func (e *env) fanoutConfig(txnID string) FanoutConfig {
	return FanoutConfig{
		Brokers:         e.addrs,
		TransactionalID: txnID,
		Store:           e.store,
		Logger:          quietLog,
		RetryBackoff:    20 * time.Millisecond,
		MaxRetryBackoff: 100 * time.Millisecond,
		Rate:            1e6,
		PageSize:        100,
		ClientOptions:   []kgo.Opt{kgo.FetchMaxWait(200 * time.Millisecond)},
	}
}

func (e *env) startFanout(cfg FanoutConfig) (*Fanout, *runner) {
	e.tb.Helper()
	f, err := NewFanout(cfg)
	if err != nil {
		e.tb.Fatal(err)
	}
	return f, start(e.tb, e.ctx, f.Run, f.Close)
}

// produceMulti produces a multi-recipient event to herald.events keyed by
// its id, as the API does.
func (e *env) produceMulti(ev map[string]any) {
	e.tb.Helper()
	v, _ := json.Marshal(ev)
	id := ev["id"].(string)
	r := &kgo.Record{Topic: e.names.Events, Key: []byte(id), Value: v, Partition: partitionFor(id, 12)}
	if err := e.prod.ProduceSync(e.ctx, r).FirstErr(); err != nil {
		e.tb.Fatal(err)
	}
}

// committedEvents counts the committed herald.events records per (user,
// event id) of single-recipient events.
func (e *env) committedEvents() map[[2]string]int {
	e.tb.Helper()
	got := map[[2]string]int{}
	for _, r := range e.readAll(e.names.Events) {
		ev, err := DecodeEventRecord(r)
		if err != nil || ev.Multi() {
			continue
		}
		got[[2]string{ev.UserID, ev.ID}]++
	}
	return got
}

func users(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("u-%04d", i)
	}
	return out
}

// waitAllHave polls until every user's inbox holds eventID.
func (e *env) waitAllHave(us []string, eventID string) {
	e.tb.Helper()
	for _, u := range us {
		for {
			ns := e.list(u)
			if slices.ContainsFunc(ns, func(n herald.Notification) bool { return n.EventID == eventID }) {
				break
			}
			select {
			case <-e.ctx.Done():
				e.tb.Fatalf("%s never got %s (inbox %v)", u, eventID, eventIDs(ns))
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// TestFanoutUserIDs: an event for 1,000 users (with repeats) reaches each
// once, through a fan-out stage that dies in the middle of the broadcast
// and a successor with the same transactional id: every recipient's event
// is committed to herald.events exactly once.
func TestFanoutUserIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.startEnricher(e.enricherConfig("txn-fanout-enricher"))
	us := users(1000)
	e.produceMulti(map[string]any{"id": "broadcast-1", "user_ids": us, "type": "announcement", "title": "Hello all"})

	var batches atomic.Int32
	var crashed atomic.Bool
	var f1 *Fanout
	var mu sync.Mutex
	cfg := e.fanoutConfig("txn-fanout")
	cfg.MaxPollRecords = 1
	cfg.beforeEnd = func(context.Context) error {
		if batches.Add(1) < 4 {
			return nil
		}
		crashed.Store(true)
		mu.Lock()
		defer mu.Unlock()
		f1.Close() //nolint:contextcheck // the process dies: no EndTxn, no offset commit
		return errors.New("crash")
	}
	mu.Lock()
	f1, r1 := e.startFanout(cfg)
	mu.Unlock()
	if err := r1.wait(t, e.ctx); !crashed.Load() {
		t.Fatalf("crash point not reached: %v", err)
	}
	e.startFanout(e.fanoutConfig("txn-fanout"))
	// (Not waitCommitted: the transaction markers the fan-out writes in
	// herald.fanout and herald.events stay past the committed offsets.)
	e.waitAllHave(us, "broadcast-1")

	got := e.committedEvents()
	for _, u := range us {
		if n := got[[2]string{u, "broadcast-1"}]; n != 1 {
			t.Errorf("%s: %d committed events, want 1", u, n)
		}
		if ns := e.list(u); len(ns) != 1 || ns[0].Seq != 1 || ns[0].Title != "Hello all" {
			t.Errorf("%s inbox %+v", u, ns)
		}
	}
	if len(got) != len(us) {
		t.Errorf("%d recipients, want %d", len(got), len(us))
	}
}

// TestFanoutAudience: an audience's members at the event's creation get
// it, in pages; one who subscribed after it does not, nor does one who
// left before.
func TestFanoutAudience(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	created := time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)
	members := users(250)
	for _, u := range members {
		if _, err := e.store.Subscribe(e.ctx, u, "team-a", created.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.Subscribe(e.ctx, "late", "team-a", created.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Subscribe(e.ctx, "gone", "team-a", created.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Unsubscribe(e.ctx, "gone", "team-a"); err != nil {
		t.Fatal(err)
	}
	e.startEnricher(e.enricherConfig("txn-aud-enricher"))
	e.startFanout(e.fanoutConfig("txn-aud"))
	e.produceMulti(map[string]any{"id": "news-1", "audience": "team-a", "type": "news", "created_at": created.Format(time.RFC3339)})
	// Pages go in user id order, "gone" and "late" first: once the last
	// member has it, every page committed.
	e.waitAllHave(members, "news-1")
	got := e.committedEvents()
	if len(got) != len(members) {
		t.Errorf("%d recipients, want the %d members", len(got), len(members))
	}
	for _, u := range []string{"late", "gone"} {
		if ns := e.list(u); len(ns) != 0 {
			t.Errorf("%s got %v", u, eventIDs(ns))
		}
	}
}
