package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/prometheus/client_golang/prometheus"
)

// recordingLive is a LivePublisher that keeps what it was handed.
type recordingLive struct {
	mu  sync.Mutex
	got []herald.UserNotification
}

func (r *recordingLive) PublishLive(_ context.Context, ns []herald.UserNotification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.got = append(r.got, ns...)
	return nil
}

func (r *recordingLive) snapshot() []herald.UserNotification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// TestEnricherLivePath: the direct path is handed exactly the committed
// notifications, once each, in seq order per user; a batch whose
// transaction aborted is not handed over (its replay is, once).
func TestEnricherLivePath(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	live := &recordingLive{}
	cfg := e.enricherConfig("txn-live")
	cfg.Live = live
	var aborts atomic.Int32
	cfg.beforeEnd = func(context.Context) error {
		if aborts.Add(1) == 1 {
			return errors.New("abort the first batch")
		}
		return nil
	}
	e.produce(ev, "u1", eventJSON("a1", "u1", "mention"), eventJSON("a1", "u1", "mention"), eventJSON("a2", "u1", "mention"))
	e.produce(ev, "u2", eventJSON("b1", "u2", "mention"))
	e.startEnricher(cfg)
	e.waitCommitted(enricherGroup, ev)
	e.produce(ev, "u1", eventJSON("a3", "u1", "mention"))
	e.waitCommitted(enricherGroup, ev)

	want := map[string][]herald.Notification{"u1": e.list("u1"), "u2": e.list("u2")}
	if len(want["u1"]) != 3 || len(want["u2"]) != 1 {
		t.Fatalf("inboxes: u1 %v, u2 %v", eventIDs(want["u1"]), eventIDs(want["u2"]))
	}
	var byUser map[string][]herald.Notification
	for range 500 { // published after the commit, asynchronously
		byUser = map[string][]herald.Notification{}
		for _, un := range live.snapshot() {
			byUser[un.UserID] = append(byUser[un.UserID], un.Notification)
		}
		if len(byUser["u1"]) >= 3 && len(byUser["u2"]) >= 1 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	for user, ns := range want {
		got := byUser[user]
		if len(got) != len(ns) {
			t.Fatalf("%s: published %v, want %v", user, eventIDs(got), eventIDs(ns))
		}
		for i := range ns {
			if got[i].ID != ns[i].ID || got[i].Seq != ns[i].Seq || got[i].Prev != ns[i].Prev {
				t.Fatalf("%s[%d]: published %+v, want %+v", user, i, got[i], ns[i])
			}
		}
	}
	if aborts.Load() < 2 {
		t.Fatal("the first batch was never aborted")
	}
}

// blockingLive blocks every publish until release is closed.
type blockingLive struct {
	started chan struct{}
	release chan struct{}
	calls   atomic.Int32
}

func (b *blockingLive) PublishLive(ctx context.Context, _ []herald.UserNotification) error {
	if b.calls.Add(1) == 1 {
		close(b.started)
	}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestLivePathBounded: with the publisher stuck, batches beyond the queue
// are dropped and counted, never queued without bound; a failed publish is
// counted as an error; the runner ends with its context.
func TestLivePathBounded(t *testing.T) {
	t.Parallel()
	m := newEnricherMetrics(prometheus.NewRegistry())
	pub := &blockingLive{started: make(chan struct{}), release: make(chan struct{})}
	l := newLivePath(pub, 2, time.Hour, quietLog, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); l.run(ctx) }()

	one := []herald.UserNotification{{UserID: "u", Notification: herald.Notification{Seq: 1}}}
	l.offer(one)
	<-pub.started // the runner holds the first batch
	for range 5 {
		l.offer(one)
	}
	if got := value(m.liveDropped.WithLabelValues("queue_full")); got != 3 {
		t.Fatalf("dropped %v, want 3 (queue of 2 behind the one in flight)", got)
	}
	close(pub.release)
	for value(m.livePublished) != 3 {
		time.Sleep(5 * time.Millisecond)
	}
	cancel()
	<-done

	var nilPath *livePath
	nilPath.offer(one) // no direct path: a no-op

	failing := newLivePath(failingLive{}, 1, time.Second, quietLog, m)
	fctx, fcancel := context.WithCancel(context.Background())
	fdone := make(chan struct{})
	go func() { defer close(fdone); failing.run(fctx) }()
	failing.offer(one)
	for value(m.liveDropped.WithLabelValues("error")) != 1 {
		time.Sleep(5 * time.Millisecond)
	}
	fcancel()
	<-fdone
}

type failingLive struct{}

func (failingLive) PublishLive(context.Context, []herald.UserNotification) error {
	return fmt.Errorf("redis down")
}

// TestDelivererLive delivers in order and reports the first error after
// trying every notification.
func TestDelivererLive(t *testing.T) {
	t.Parallel()
	var seqs []uint64
	d := DelivererLive{DelivererFunc(func(_ context.Context, _ string, n herald.Notification) (bool, error) {
		seqs = append(seqs, n.Seq)
		if n.Seq == 2 {
			return false, errors.New("boom")
		}
		return true, nil
	})}
	err := d.PublishLive(context.Background(), []herald.UserNotification{
		{UserID: "u", Notification: herald.Notification{Seq: 1}},
		{UserID: "u", Notification: herald.Notification{Seq: 2}},
		{UserID: "u", Notification: herald.Notification{Seq: 3}},
	})
	if err == nil || !slices.Equal(seqs, []uint64{1, 2, 3}) {
		t.Fatalf("err %v, delivered %v", err, seqs)
	}
}
