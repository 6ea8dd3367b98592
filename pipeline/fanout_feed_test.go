package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/policy"
	"github.com/twmb/franz-go/pkg/kgo"
)

// onlineList is a fixed OnlineMembers.
type onlineList struct {
	mu    sync.Mutex
	users map[string][]string
	err   error
}

func (o *onlineList) OnlineMembers(_ context.Context, topic string) ([]string, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.users[topic]), o.err
}

// has counts the inbox entries of user for eventID.
func (e *env) has(user, eventID string) int {
	n := 0
	for _, x := range e.list(user) {
		if x.EventID == eventID {
			n++
		}
	}
	return n
}

// catchUpRequester is a CatchUpRequester on the env's producer and store,
// asking every time.
func (e *env) catchUpRequester() *CatchUpRequester {
	e.tb.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...), kgo.ProducerLinger(0))
	if err != nil {
		e.tb.Fatal(err)
	}
	e.tb.Cleanup(cl.Close)
	now := time.Unix(0, 0)
	var mu sync.Mutex
	r, err := NewCatchUpRequester(CatchUpConfig{Producer: cl, Store: e.store, Logger: quietLog, HeadTTL: time.Nanosecond,
		Now: func() time.Time { // a clock that moves a second per call: no throttling
			mu.Lock()
			defer mu.Unlock()
			now = now.Add(time.Second)
			return now
		}})
	if err != nil {
		e.tb.Fatal(err)
	}
	return r
}

// TestFanoutLargeAudience: an audience at the threshold takes the feed
// path. Its connected members and members with a device get the broadcast
// at once; the others get nothing until they read, and then get each
// broadcast once, in feed order; a non-member listed as online, a member
// who subscribed after the broadcast and one who left get nothing.
func TestFanoutLargeAudience(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	created := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	members := users(150)
	for _, u := range members {
		if _, err := e.store.Subscribe(e.ctx, u, "celebrity", created.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.store.Subscribe(e.ctx, "late", "celebrity", created.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	online := members[:10]
	pushed := members[100:105]
	for _, u := range pushed {
		if err := e.store.PutDevice(e.ctx, herald.Device{UserID: u, Platform: "ios", Token: "tok-" + u, AppID: "app"}); err != nil {
			t.Fatal(err)
		}
	}
	live := &onlineList{users: map[string][]string{"celebrity": append(slices.Clone(online), "late", "stranger", online[0])}}
	e.startEnricher(e.enricherConfig("txn-large-enricher"))
	cfg := e.fanoutConfig("txn-large")
	cfg.Threshold = 100
	cfg.Online = live
	cfg.Devices = e.store
	e.startFanout(cfg)

	e.produceMulti(map[string]any{"id": "post-1", "audience": "celebrity", "type": "post", "title": "First", "created_at": created.Format(time.RFC3339)})
	e.waitAllHave(append(slices.Clone(online), pushed...), "post-1")
	// Nothing else produces events for the others: they hold nothing yet.
	for _, u := range []string{members[50], members[149], "late", "stranger"} {
		if ns := e.list(u); len(ns) != 0 {
			t.Errorf("%s holds %v before reading", u, eventIDs(ns))
		}
	}
	head, err := e.store.FeedHead(e.ctx, "celebrity")
	if err != nil || head < 1 {
		t.Fatalf("feed head %d, %v", head, err)
	}

	// A second broadcast, after the live members' first catch-up.
	e.produceMulti(map[string]any{"id": "post-2", "audience": "celebrity", "type": "post", "title": "Second", "created_at": created.Add(2 * time.Minute).Format(time.RFC3339)})
	e.waitAllHave(online, "post-2")

	req := e.catchUpRequester()
	for _, u := range append(slices.Clone(members), "late", "stranger") {
		if err := req.Request(e.ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	e.waitAllHave(members, "post-2")
	e.waitAllHave([]string{"late"}, "post-2")
	for _, u := range members {
		ns := e.list(u)
		if !slices.Equal(eventIDs(ns), []string{"post-1", "post-2"}) {
			t.Errorf("%s: inbox %v, want post-1 then post-2, once each", u, eventIDs(ns))
			continue
		}
		if ns[0].Seq != 1 || ns[1].Seq != 2 || ns[1].Prev != 1 || ns[0].Title != "First" {
			t.Errorf("%s: seqs %d/%d prev %d title %q", u, ns[0].Seq, ns[1].Seq, ns[1].Prev, ns[0].Title)
		}
	}
	if ids := eventIDs(e.list("late")); !slices.Equal(ids, []string{"post-2"}) {
		t.Errorf("late subscriber: %v, want only the broadcast after subscribing", ids)
	}
	if ns := e.list("stranger"); len(ns) != 0 {
		t.Errorf("a non-member got %v", eventIDs(ns))
	}
	// Caught up: asking again produces nothing and changes nothing.
	for _, u := range members[:20] {
		if err := req.Request(e.ctx, u); err != nil {
			t.Fatal(err)
		}
		cur, err := e.store.FeedCursors(e.ctx, u)
		if err != nil || cur["celebrity"] != 2 {
			t.Errorf("%s cursor %v, %v; want 2", u, cur, err)
		}
	}
}

// TestFanoutLargeAudienceCrash: a fan-out stage that dies before the
// commit of a batch of catch-ups leaves the cursors behind; its successor
// takes the broadcast into each inbox exactly once.
func TestFanoutLargeAudienceCrash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	created := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	members := users(40)
	for _, u := range members {
		if _, err := e.store.Subscribe(e.ctx, u, "big", created.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	live := &onlineList{users: map[string][]string{"big": members}}
	e.startEnricher(e.enricherConfig("txn-crash-enricher"))
	cfg := e.fanoutConfig("txn-crash")
	cfg.Threshold = 10
	cfg.Online = live
	cfg.MaxPollRecords = 1
	var f1 *Fanout
	var mu sync.Mutex
	var batches int
	crashed := make(chan struct{})
	cfg.beforeEnd = func(context.Context) error {
		mu.Lock()
		defer mu.Unlock()
		if batches++; batches < 2 { // the feed put and the live catch-up records commit
			return nil
		}
		close(crashed)
		f1.Close() //nolint:contextcheck // the process dies: no EndTxn, no offset commit
		return errors.New("crash")
	}
	mu.Lock()
	f1, r1 := e.startFanout(cfg)
	mu.Unlock()
	e.produceMulti(map[string]any{"id": "b-1", "audience": "big", "type": "post", "created_at": created.Format(time.RFC3339)})
	select {
	case <-crashed:
	case <-e.ctx.Done():
		t.Fatal("crash point not reached")
	}
	_ = r1.wait(t, e.ctx)
	for _, u := range members {
		if cur, _ := e.store.FeedCursors(e.ctx, u); cur["big"] != 0 {
			t.Fatalf("%s cursor %d advanced by an aborted batch", u, cur["big"])
		}
	}
	next := e.fanoutConfig("txn-crash")
	next.Threshold = 10
	next.Online = live
	e.startFanout(next)
	e.waitAllHave(members, "b-1")
	for _, u := range members {
		if n := e.has(u, "b-1"); n != 1 {
			t.Errorf("%s holds b-1 %d times", u, n)
		}
	}
	if n, _ := e.store.FeedHead(e.ctx, "big"); n != 1 {
		t.Errorf("feed head %d: the broadcast was put again", n)
	}
}

// TestFanoutLargeAudienceOnlineDown: when the connected members cannot
// be listed, the broadcast still goes to the feed, and members take it on
// their next read.
func TestFanoutLargeAudienceOnlineDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	members := users(20)
	for _, u := range members {
		if _, err := e.store.Subscribe(e.ctx, u, "big", time.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	e.startEnricher(e.enricherConfig("txn-down-enricher"))
	cfg := e.fanoutConfig("txn-down")
	cfg.Threshold = 20
	cfg.Online = &onlineList{err: errors.New("redis down")}
	e.startFanout(cfg)
	e.produceMulti(map[string]any{"id": "b-1", "audience": "big", "type": "post"})
	for {
		if n, err := e.store.FeedHead(e.ctx, "big"); err == nil && n == 1 {
			break
		}
		select {
		case <-e.ctx.Done():
			t.Fatal("broadcast never reached the feed")
		case <-time.After(5 * time.Millisecond):
		}
	}
	req := e.catchUpRequester()
	for _, u := range members {
		if err := req.Request(e.ctx, u); err != nil {
			t.Fatal(err)
		}
	}
	e.waitAllHave(members, "b-1")
}

// TestFanoutCatchUpPages: a member far behind takes more than one page
// of the feed, through continuations, in feed order.
func TestFanoutCatchUpPages(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	created := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	if _, err := e.store.Subscribe(e.ctx, "ada", "big", created.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	const n = 2*catchUpPage + 7
	var want []string
	for i := range n {
		ev := herald.Event{ID: fmt.Sprintf("b-%03d", i), Audience: "big", Type: "post", CreatedAt: created.Add(time.Duration(i) * time.Second)}
		if _, _, err := e.store.PutFeedItem(e.ctx, ev); err != nil {
			t.Fatal(err)
		}
		want = append(want, ev.ID)
	}
	e.startEnricher(e.enricherConfig("txn-pages-enricher"))
	cfg := e.fanoutConfig("txn-pages")
	cfg.PageSize = 500
	e.startFanout(cfg)
	if err := e.catchUpRequester().Request(e.ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	e.waitAllHave([]string{"ada"}, want[n-1])
	ns := e.list("ada")
	if got := eventIDs(ns); !slices.Equal(got, want) {
		t.Fatalf("inbox %d items, want the %d in feed order: %v", len(got), n, got)
	}
	for i, x := range ns {
		if x.Seq != uint64(i+1) {
			t.Fatalf("item %d seq %d", i, x.Seq)
		}
	}
}

// liveRecorder is a LiveBroadcaster that records what it is given.
type liveRecorder struct {
	mu  sync.Mutex
	got []herald.Broadcast
}

func (l *liveRecorder) Broadcast(_ context.Context, b herald.Broadcast) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.got = append(l.got, b)
	return 1, nil
}

func (l *liveRecorder) ids() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, b := range l.got {
		out = append(out, b.EventID)
	}
	return out
}

// TestFanoutBroadcastsLive: a large audience's broadcast is offered for
// live delivery once it is in the feed, as the event it is (not a
// member's copy), unless the policy governs its type; a small audience's
// event is not; every member still takes it into their inbox.
func TestFanoutBroadcastsLive(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	created := time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)
	members := users(120)
	for _, u := range members {
		if _, err := e.store.Subscribe(e.ctx, u, "stars", created.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := e.store.Subscribe(e.ctx, u, "small", created.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	// small has fewer members than the threshold.
	for _, u := range members[10:] {
		if _, err := e.store.Unsubscribe(e.ctx, u, "small"); err != nil {
			t.Fatal(err)
		}
	}
	online := members[:5]
	pol := mustPolicy(t, map[string]policy.TypePolicy{"digested": {Digest: &policy.Digest{Window: policy.Duration(time.Minute)}}})
	live := &liveRecorder{}
	e.startEnricher(e.enricherConfig("txn-live-enricher"))
	cfg := e.fanoutConfig("txn-live")
	cfg.Threshold = 100
	cfg.Online = &onlineList{users: map[string][]string{"stars": online}}
	cfg.Broadcasts = live
	cfg.Policy = func() *policy.Policy { return pol }
	e.startFanout(cfg)

	e.produceMulti(map[string]any{"id": "star-1", "audience": "stars", "type": "post", "title": "Hi", "created_at": created.Format(time.RFC3339)})
	e.produceMulti(map[string]any{"id": "star-2", "audience": "stars", "type": "digested", "title": "Governed", "created_at": created.Format(time.RFC3339)})
	e.produceMulti(map[string]any{"id": "small-1", "audience": "small", "type": "post", "title": "Few", "created_at": created.Format(time.RFC3339)})
	e.waitAllHave(online, "star-1")
	e.waitAllHave(online, "star-2") // the enricher here has no policy
	e.waitAllHave(members[:10], "small-1")
	if ids := live.ids(); !slices.Equal(ids, []string{"star-1"}) {
		t.Fatalf("offered live %v, want only star-1 (star-2 is governed, small-1 is fanned out on write)", ids)
	}
	live.mu.Lock()
	b := live.got[0]
	live.mu.Unlock()
	if b.Topic != "stars" || b.Type != "post" || b.Title != "Hi" || !b.CreatedAt.Equal(created) {
		t.Fatalf("offered %+v", b)
	}
}

// liveSignal is a LiveBroadcaster that reaches `reached` gateways and
// closes called at its first call.
type liveSignal struct {
	reached int
	once    sync.Once
	called  chan struct{}
}

func (l *liveSignal) Broadcast(context.Context, herald.Broadcast) (int, error) {
	l.once.Do(func() { close(l.called) })
	return l.reached, nil
}

// TestFanoutLiveHold: a batch holding a broadcast sent live to connected
// members waits LiveHold before its commit, and Close ends that wait at
// once: the stage stops (its batch committed or cut off), and the next
// stage takes the broadcast into every connected member's inbox once. A broadcast
// that reached no gateway is not held (with an hour's hold the members
// would otherwise never get it within the test's deadline).
func TestFanoutLiveHold(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	created := time.Date(2026, 12, 4, 6, 0, 0, 0, time.UTC)
	members := users(120)
	for _, u := range members {
		if _, err := e.store.Subscribe(e.ctx, u, "held", created.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	online := members[:5]
	e.startEnricher(e.enricherConfig("txn-hold-enricher"))

	cfg := e.fanoutConfig("txn-hold")
	cfg.Threshold = 100
	cfg.Online = &onlineList{users: map[string][]string{"held": online}}
	cfg.LiveHold = time.Hour
	sig := &liveSignal{reached: 1, called: make(chan struct{})}
	cfg.Broadcasts = sig
	ended := make(chan struct{})
	var endOnce sync.Once
	cfg.beforeEnd = func(context.Context) error {
		endOnce.Do(func() { close(ended) })
		return nil
	}
	f, run := e.startFanout(cfg)
	e.produceMulti(map[string]any{"id": "held-1", "audience": "held", "type": "post", "title": "Hi", "created_at": created.Format(time.RFC3339)})
	select {
	case <-sig.called:
	case <-e.ctx.Done():
		t.Fatal("the broadcast was never offered live")
	}
	// Held: the batch does not come to its commit. (An observation window,
	// not a timing assertion: a slow machine can only make this pass.)
	select {
	case <-ended:
		t.Fatal("the batch of a broadcast sent live came to its commit without its hold")
	case <-time.After(200 * time.Millisecond):
	}
	f.Close()
	if err := run.wait(t, e.ctx); err != nil {
		t.Fatalf("Run after Close during a hold: %v", err)
	}

	// The next stage (same transactional id), whose publish reaches no
	// gateway: no hold, every connected member takes it once.
	cfg.Broadcasts = &liveSignal{reached: 0, called: make(chan struct{})}
	cfg.beforeEnd = nil
	e.startFanout(cfg)
	e.waitAllHave(online, "held-1")
	e.produceMulti(map[string]any{"id": "held-2", "audience": "held", "type": "post", "title": "Again", "created_at": created.Format(time.RFC3339)})
	e.waitAllHave(online, "held-2")
	for _, u := range online {
		if n := e.has(u, "held-1"); n != 1 {
			t.Fatalf("%s has held-1 %d times, want once", u, n)
		}
	}
}
