package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/internal/errclass"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/store/memory"
	"github.com/heraldhq/herald/topics"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testTiers are the retry tiers of these tests: short, so retries come
// back quickly (the tests wait on outcomes, never on time).
var testTiers = []time.Duration{100 * time.Millisecond, 500 * time.Millisecond}

// sendRec is one message handed to the fake sender.
type sendRec struct {
	job, token string
	badge      int
	ok         bool
}

// fakeSender answers by token prefix: "dead-" token dead, "perm-"
// permanent (PayloadTooLarge), "flaky-" transient on its first send of a
// job then sent, "down-" always transient, "gated-" transient until an
// "opener-" token was sent, anything else sent; while
// outage is set every send fails transiently. It records every message in
// order.
type fakeSender struct {
	push.Sender // nil: only Send is implemented
	outage      atomic.Bool
	mu          sync.Mutex
	sends       []sendRec
	seen        map[string]int // job/token -> sends
	opened      bool           // an "opener-" token was sent: "gated-" ones succeed from now on
	onSend      func(n int)    // called after each message (outside the lock)
}

func newFakeSender() *fakeSender { return &fakeSender{seen: map[string]int{}} }

func (f *fakeSender) Send(_ context.Context, msgs []push.Message) []push.Result {
	out := make([]push.Result, len(msgs))
	for i := range msgs {
		m := &msgs[i]
		prov := push.ProviderFCM
		if m.Device.Platform == push.PlatformIOS {
			prov = push.ProviderAPNs
		}
		tok := m.Device.Token
		f.mu.Lock()
		key := m.Notification.ID + "/" + tok
		f.seen[key]++
		nth := f.seen[key]
		r := push.Result{Provider: prov, Sent: true}
		switch {
		case f.outage.Load():
			r = push.Result{Provider: prov, Status: 503, Reason: "ServiceUnavailable", Class: errclass.ClassTransient}
		case strings.HasPrefix(tok, "dead-"):
			r = push.Result{Provider: prov, Status: 410, Reason: "Unregistered", Class: errclass.ClassPermanent, TokenDead: true}
		case strings.HasPrefix(tok, "perm-"):
			r = push.Result{Provider: prov, Reason: push.ReasonPayloadTooLarge, Class: errclass.ClassPermanent}
		case strings.HasPrefix(tok, "opener-"):
			f.opened = true
		case strings.HasPrefix(tok, "gated-") && !f.opened,
			strings.HasPrefix(tok, "flaky-") && nth == 1, strings.HasPrefix(tok, "down-"):
			r = push.Result{Provider: prov, Status: 503, Reason: "ServiceUnavailable", Class: errclass.ClassTransient}
		}
		f.sends = append(f.sends, sendRec{job: m.Notification.ID, token: tok, badge: m.Badge, ok: r.Sent})
		n := len(f.sends)
		hook := f.onSend
		f.mu.Unlock()
		out[i] = r
		if hook != nil {
			hook(n)
		}
	}
	return out
}

func (f *fakeSender) all() []sendRec {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.sends)
}

// delivered counts the accepted sends per job/token.
func (f *fakeSender) delivered() map[string]int {
	out := map[string]int{}
	for _, s := range f.all() {
		if s.ok {
			out[s.job+"/"+s.token]++
		}
	}
	return out
}

func (e *env) pusherTopics() {
	e.tb.Helper()
	if _, err := topics.Ensure(e.ctx, e.adm, topics.PushRetrySpecs(e.names, testTiers), -1); err != nil {
		e.tb.Fatal(err)
	}
}

func (e *env) pusherConfig(s push.Sender) PusherConfig {
	return PusherConfig{
		Brokers:         e.addrs,
		Store:           e.store,
		Sender:          s,
		Logger:          quietLog,
		Registerer:      metrics.NewRegistry(),
		RetryTiers:      testTiers,
		Backoff:         push.Backoff{Base: 50 * time.Millisecond, Cap: 200 * time.Millisecond, MaxAttempts: 3},
		RetryBackoff:    20 * time.Millisecond,
		MaxRetryBackoff: 100 * time.Millisecond,
		ClientOptions:   []kgo.Opt{kgo.FetchMaxWait(100 * time.Millisecond)},
	}
}

func (e *env) startPusher(cfg PusherConfig) (*Pusher, *runner) {
	e.tb.Helper()
	p, err := NewPusher(cfg)
	if err != nil {
		e.tb.Fatal(err)
	}
	return p, start(e.tb, e.ctx, p.Run, p.Close)
}

func (e *env) device(user, platform, token string) {
	e.tb.Helper()
	if err := e.store.PutDevice(e.ctx, herald.Device{UserID: user, Platform: platform, Token: token, AppID: "app"}); err != nil {
		e.tb.Fatal(err)
	}
}

// notify stores an unread notification for user and returns its push job.
func (e *env) notify(user, eventID string, prio herald.Priority) herald.PushJob {
	e.tb.Helper()
	n := herald.Notification{ID: herald.NewID(time.Now()), EventID: eventID, Type: "mention", Priority: prio,
		Title: "t " + eventID, CreatedAt: time.Now().UTC(), UserID: user}
	w, err := e.store.Fence(e.ctx, "pusher-test/"+user)
	if err != nil {
		e.tb.Fatal(err)
	}
	res, err := w.Append(e.ctx, []herald.Notification{n})
	if err != nil {
		e.tb.Fatal(err)
	}
	return herald.PushJob{UserID: user, Notification: res[0].Notification}
}

// pushJobs produces jobs to herald.push, each to its user's partition.
func (e *env) pushJobs(jobs ...herald.PushJob) {
	e.tb.Helper()
	codec := NewCodec(e.names)
	rs := make([]*kgo.Record, len(jobs))
	for i := range jobs {
		r, err := codec.Push(&jobs[i])
		if err != nil {
			e.tb.Fatal(err)
		}
		r.Partition = partitionFor(jobs[i].UserID, 6)
		rs[i] = r
	}
	if err := e.prod.ProduceSync(e.ctx, rs...).FirstErr(); err != nil {
		e.tb.Fatal(err)
	}
}

// value reads a counter or gauge.
func value(c prometheus.Metric) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		return -1
	}
	if g := m.GetGauge(); g != nil {
		return g.GetValue()
	}
	return m.GetCounter().GetValue()
}

// series counts the series of a vector.
func series(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	n := 0
	for range ch {
		n++
	}
	return n
}

// eventually polls cond until it holds or the test's guard runs out.
func (e *env) eventually(what string, cond func() bool) {
	e.tb.Helper()
	for !cond() {
		select {
		case <-e.ctx.Done():
			e.tb.Fatalf("never happened: %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}

func TestPusherSendsToEveryDevice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pusherTopics()
	e.device("u1", "ios", "ios-1")
	e.device("u1", "android", "android-1")
	e.notify("u1", "older", herald.PriorityNormal) // unread: badge 2
	job := e.notify("u1", "e1", herald.PriorityNormal)
	s := newFakeSender()
	p, _ := e.startPusher(e.pusherConfig(s))
	e.pushJobs(job)

	e.eventually("both devices pushed", func() bool { return len(s.delivered()) == 2 })
	e.waitCommitted(p.cfg.Group, e.names.Push)
	sends := s.all()
	if len(sends) != 2 {
		t.Fatalf("sends: %+v", sends)
	}
	for _, sr := range sends {
		if sr.job != job.Notification.ID || sr.badge != 2 {
			t.Errorf("send %+v: want job %s, badge 2", sr, job.Notification.ID)
		}
	}
	got, err := e.store.PushSent(e.ctx, "u1", job.Notification.ID)
	if err != nil || !got["ios-1"] || !got["android-1"] {
		t.Fatalf("progress: %v %v", got, err)
	}
	if v := value(p.m.sends.WithLabelValues("apns", "app", "sent", "")); v != 1 {
		t.Errorf("apns sent: %v", v)
	}
	if v := value(p.m.sends.WithLabelValues("fcm", "app", "sent", "")); v != 1 {
		t.Errorf("fcm sent: %v", v)
	}
}

func TestPusherDeletesDeadTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pusherTopics()
	e.device("u1", "ios", "dead-1")
	e.device("u1", "android", "ok-1")
	s := newFakeSender()
	p, _ := e.startPusher(e.pusherConfig(s))
	e.pushJobs(e.notify("u1", "e1", herald.PriorityNormal))

	e.eventually("the dead token deleted", func() bool { return value(p.m.tokensDeleted) == 1 })
	e.waitCommitted(p.cfg.Group, e.names.Push)
	ds, err := e.store.Devices(e.ctx, "u1")
	if err != nil || len(ds) != 1 || ds[0].Token != "ok-1" {
		t.Fatalf("devices after a 410: %+v %v", ds, err)
	}
	if n := series(p.m.retries); n != 0 {
		t.Fatalf("retries scheduled for a dead token: %d series", n)
	}
	if len(s.all()) != 2 {
		t.Fatalf("sends: %+v", s.all())
	}
}

// sharedPartitionUsers returns two user ids on the same herald.push
// partition.
func sharedPartitionUsers() (string, string) {
	first := map[int32]string{}
	for i := 0; ; i++ {
		u := fmt.Sprintf("user-%d", i)
		part := partitionFor(u, 6)
		if other, ok := first[part]; ok {
			return other, u
		}
		first[part] = u
	}
}

func TestPusherRetriesWithoutBlockingThePartition(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pusherTopics()
	a, b := sharedPartitionUsers()
	e.device(a, "ios", "flaky-a")
	e.device(b, "ios", "ok-b")
	s := newFakeSender()
	// a's job first, b's right behind it in the same partition (one
	// produce: one fetch). a fails, and b goes out before a's retry.
	e.pushJobs(e.notify(a, "ea", herald.PriorityNormal), e.notify(b, "eb", herald.PriorityNormal))
	p, _ := e.startPusher(e.pusherConfig(s))
	e.eventually("both delivered", func() bool { return len(s.delivered()) == 2 })
	var order []string
	for _, sr := range s.all() {
		order = append(order, fmt.Sprintf("%s:%v", sr.token, sr.ok))
	}
	want := []string{"flaky-a:false", "ok-b:true", "flaky-a:true"}
	if !slices.Equal(order, want) {
		t.Fatalf("send order %v, want %v (b does not wait for a's retry)", order, want)
	}
	if v := value(p.m.retries.WithLabelValues("transient")); v != 1 {
		t.Fatalf("retries: %v", v)
	}
}

// TestPusherWaitingJobDoesNotHoldLaterJobs: a's device fails until b's
// job, produced after a's first failure to a's partition, has been sent.
// A pusher that waited for a's retry in the partition would never get to
// b, and a would never succeed.
func TestPusherWaitingJobDoesNotHoldLaterJobs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pusherTopics()
	a, b := sharedPartitionUsers()
	e.device(a, "ios", "gated-a")
	e.device(b, "ios", "opener-b")
	s := newFakeSender()
	cfg := e.pusherConfig(s)
	cfg.Backoff.MaxAttempts = 1000
	p, _ := e.startPusher(cfg)
	e.pushJobs(e.notify(a, "ea", herald.PriorityNormal))
	e.eventually("a failed once", func() bool { return value(p.m.retries.WithLabelValues("transient")) >= 1 })
	e.pushJobs(e.notify(b, "eb", herald.PriorityNormal))
	e.eventually("both delivered", func() bool { return len(s.delivered()) == 2 })
	sends := s.all()
	if last := sends[len(sends)-1]; last.token != "gated-a" || !last.ok {
		t.Fatalf("a's success is not the last send: %+v", sends)
	}
}

func TestPusherDeadLetters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pusherTopics()
	e.device("u1", "ios", "perm-1")
	e.device("u1", "android", "down-1")
	e.device("u1", "android", "ok-1")
	s := newFakeSender()
	p, _ := e.startPusher(e.pusherConfig(s))
	job := e.notify("u1", "e1", herald.PriorityNormal)
	e.pushJobs(job)

	e.eventually("both failures dead-lettered", func() bool {
		return value(p.m.dlq.WithLabelValues(push.ReasonPayloadTooLarge)) == 1 &&
			value(p.m.dlq.WithLabelValues("ServiceUnavailable")) == 1
	})
	dlq := e.readAll(e.names.PushDLQ)
	if len(dlq) != 2 {
		t.Fatalf("dlq: %s", fmtRecords(dlq))
	}
	byToken := map[string]DeadLetter{}
	for _, r := range dlq {
		d, err := DecodeDeadLetter(r)
		if err != nil {
			t.Fatal(err)
		}
		m, err := decodePushMeta(r)
		if err != nil || len(m.tokens) != 1 {
			t.Fatalf("dlq tokens: %+v %v", m, err)
		}
		got, err := DecodePush(r)
		if err != nil || got.Notification.ID != job.Notification.ID || got.Attempt != 0 {
			t.Fatalf("dlq job: %+v %v", got, err)
		}
		byToken[m.tokens[0]] = d
	}
	if d := byToken["perm-1"]; d.Reason != push.ReasonPayloadTooLarge || d.Attempts != 1 || d.SourceTopic != e.names.Push {
		t.Errorf("perm-1: %+v", d)
	}
	if d := byToken["down-1"]; d.Reason != "ServiceUnavailable" || d.Attempts != 3 {
		t.Errorf("down-1: %+v", d)
	}
	if got := s.delivered(); len(got) != 1 || got[job.Notification.ID+"/ok-1"] != 1 {
		t.Errorf("delivered: %v", got)
	}
}

func TestPusherDelayAndRead(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pusherTopics()
	e.device("reader", "ios", "r-1")
	e.device("waiter", "ios", "w-1")
	s := newFakeSender()
	cfg := e.pusherConfig(s)
	cfg.PushDelay = map[string]time.Duration{"mention": 300 * time.Millisecond}
	p, _ := e.startPusher(cfg)
	read := e.notify("reader", "e1", herald.PriorityNormal)
	unread := e.notify("waiter", "e2", herald.PriorityNormal)
	e.pushJobs(read, unread)
	e.eventually("both delayed", func() bool { return value(p.m.retries.WithLabelValues("delay")) == 2 })
	if _, err := e.store.MarkRead(e.ctx, "reader", []uint64{read.Notification.Seq}); err != nil {
		t.Fatal(err)
	}
	e.eventually("the read one dropped", func() bool { return value(p.m.dropped.WithLabelValues("read")) == 1 })
	e.eventually("the unread one sent", func() bool { return len(s.delivered()) == 1 })
	if got := s.all(); len(got) != 1 || got[0].token != "w-1" {
		t.Fatalf("sends: %+v", got)
	}
}

func TestPusherQuietHours(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pusherTopics()
	quiet := herald.DefaultPreferences()
	quiet.QuietHours = &herald.QuietHours{Start: "22:00", End: "07:00", Timezone: "UTC"}
	e.setPrefs("u1", quiet)
	e.device("u1", "ios", "i-1")
	s := newFakeSender()
	cfg := e.pusherConfig(s)
	cfg.Now = func() time.Time { return time.Date(2026, 11, 22, 23, 30, 0, 0, time.UTC) }
	p, _ := e.startPusher(cfg)
	normal := e.notify("u1", "n", herald.PriorityNormal)
	high := e.notify("u1", "h", herald.PriorityHigh)
	e.pushJobs(normal, high)
	e.waitCommitted(p.cfg.Group, e.names.Push)
	if got := s.all(); len(got) != 1 || got[0].job != high.Notification.ID {
		t.Fatalf("sends in quiet hours: %+v", got)
	}
	if v := value(p.m.dropped.WithLabelValues("quiet_hours")); v != 1 {
		t.Fatalf("quiet_hours drops: %v", v)
	}
}

// progressStore records the progress marks made, to tell what was in
// flight when a pusher stopped.
type progressStore struct {
	PusherStore
	mu     sync.Mutex
	marked map[string]bool
}

func (s *progressStore) MarkPushSent(ctx context.Context, user, job, token string) error {
	err := s.PusherStore.MarkPushSent(ctx, user, job, token)
	if err == nil {
		s.mu.Lock()
		s.marked[job+"/"+token] = true
		s.mu.Unlock()
	}
	return err
}

func (s *progressStore) snapshot() map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]bool, len(s.marked))
	for k := range s.marked {
		out[k] = true
	}
	return out
}

func TestPusherRestartResendsOnlyUnmarked(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pusherTopics()
	const users = 120
	var jobs []herald.PushJob
	for i := range users {
		u := fmt.Sprintf("r-%d", i)
		e.device(u, "ios", "i-"+u)
		e.device(u, "android", "a-"+u)
		jobs = append(jobs, e.notify(u, "e", herald.PriorityNormal))
	}
	st := &progressStore{PusherStore: e.store, marked: map[string]bool{}}
	s := newFakeSender()
	cfg := e.pusherConfig(s)
	cfg.Store = st
	cfg.MaxPollRecords = 10
	first, err := NewPusher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	var once sync.Once
	s.onSend = func(n int) {
		if n == 60 {
			once.Do(func() { go func() { first.Close(); close(stopped) }() })
		}
	}
	done := make(chan error, 1)
	go func() { done <- first.Run(e.ctx) }()
	e.pushJobs(jobs...)
	select {
	case <-stopped:
	case <-e.ctx.Done():
		t.Fatal("the first pusher never stopped")
	}
	if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	markedAtStop := st.snapshot()
	sentAtStop := s.delivered()
	s.onSend = nil

	cfg.Registerer = metrics.NewRegistry()
	e.startPusher(cfg)
	e.eventually("every device pushed", func() bool { return len(s.delivered()) == 2*users })
	resent := 0
	for key, n := range s.delivered() {
		if n == 1 {
			continue
		}
		resent++
		if markedAtStop[key] {
			t.Errorf("%s was marked sent before the stop and was sent %d times", key, n)
		}
		if sentAtStop[key] == 0 {
			t.Errorf("%s sent %d times though not in flight at the stop", key, n)
		}
	}
	t.Logf("%d sends before the stop, %d marked, %d resent after the restart", len(sentAtStop), len(markedAtStop), resent)
}

func TestPusherCircuitOutage(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pusherTopics()
	const users = 40
	var jobs []herald.PushJob
	for i := range users {
		u := fmt.Sprintf("c-%d", i)
		e.device(u, "ios", "i-"+u)
		jobs = append(jobs, e.notify(u, "e", herald.PriorityNormal))
	}
	s := newFakeSender()
	s.outage.Store(true)
	cfg := e.pusherConfig(s)
	cfg.Backoff.MaxAttempts = 20
	cfg.Circuit = CircuitConfig{Window: time.Minute, MinRequests: 10, FailureRatio: 0.5, CoolDown: 200 * time.Millisecond}
	p, _ := e.startPusher(cfg)
	e.pushJobs(jobs...)
	gauge := p.m.circuit.WithLabelValues("apns", "app")
	e.eventually("circuit open", func() bool { return value(gauge) == float64(CircuitOpen) })
	e.eventually("jobs held back by the open circuit", func() bool {
		return value(p.m.retries.WithLabelValues("circuit_open")) >= users/2
	})
	s.outage.Store(false)
	e.eventually("every job delivered", func() bool { return len(s.delivered()) == users })
	e.eventually("circuit closed", func() bool { return value(gauge) == float64(CircuitClosed) })
	for key, n := range s.delivered() {
		if n != 1 {
			t.Errorf("%s delivered %d times", key, n)
		}
	}
	if n := series(p.m.dlq); n != 0 {
		t.Errorf("dead letters after an outage: %d series", n)
	}
}

// timedSender records, for each send, whether it came before the job's
// not-before (looked up by notification id).
type timedSender struct {
	*fakeSender
	notBefore map[string]time.Time
	early     atomic.Int32
}

func (s *timedSender) Send(ctx context.Context, msgs []push.Message) []push.Result {
	now := time.Now()
	for i := range msgs {
		if nb := s.notBefore[msgs[i].Notification.ID]; now.Before(nb) {
			s.early.Add(1)
		}
	}
	return s.fakeSender.Send(ctx, msgs)
}

// TestPusherRetryTopicsWaitForNotBefore: retry records are never worked
// before their not-before, one behind a later head is worked after it, and
// a wait longer than the longest tier hops on.
func TestPusherRetryTopicsWaitForNotBefore(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pusherTopics()
	s := &timedSender{fakeSender: newFakeSender(), notBefore: map[string]time.Time{}}
	codec := NewCodec(e.names)
	now := time.Now()
	var recs []*kgo.Record
	for i, wait := range []time.Duration{300 * time.Millisecond, 50 * time.Millisecond, 900 * time.Millisecond} {
		u := "w-" + strconv.Itoa(i)
		e.device(u, "ios", "i-"+u)
		job := e.notify(u, "e", herald.PriorityNormal)
		m := pushMeta{notBefore: now.Add(wait)}
		s.notBefore[job.Notification.ID] = m.notBefore
		r, err := codec.pushRetry(e.names.PushRetry(testTiers[1]), &job, &m, now)
		if err != nil {
			t.Fatal(err)
		}
		r.Partition = 0 // one partition: the 50ms record waits behind the 300ms head
		recs = append(recs, r)
	}
	if err := e.prod.ProduceSync(e.ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	p, _ := e.startPusher(e.pusherConfig(s))
	e.eventually("all three sent", func() bool { return len(s.delivered()) == 3 })
	if n := s.early.Load(); n != 0 {
		t.Fatalf("%d sends before their not-before", n)
	}
	var order []string
	for _, sr := range s.all() {
		order = append(order, sr.token)
	}
	if want := []string{"i-w-0", "i-w-1", "i-w-2"}; !slices.Equal(order, want) {
		t.Fatalf("order %v, want %v (FIFO per tier partition)", order, want)
	}
	if v := value(p.m.retries.WithLabelValues("hop")); v < 1 {
		t.Fatalf("a 900ms wait in a 500ms tier did not hop: %v", v)
	}
}

func TestPusherTierFor(t *testing.T) {
	t.Parallel()
	p := &Pusher{cfg: PusherConfig{Topics: topics.WithPrefix(""), RetryTiers: []time.Duration{time.Second, 30 * time.Second}}}
	for wait, want := range map[time.Duration]string{
		0:                "herald.push.retry.1s",
		time.Second:      "herald.push.retry.1s",
		time.Second + 1:  "herald.push.retry.30s",
		30 * time.Second: "herald.push.retry.30s",
		time.Hour:        "herald.push.retry.30s",
	} {
		if got := p.tierFor(wait); got != want {
			t.Errorf("tierFor(%v) = %s, want %s", wait, got, want)
		}
	}
}

func TestPusherConfigErrors(t *testing.T) {
	t.Parallel()
	good := func() PusherConfig {
		return PusherConfig{Brokers: []string{"127.0.0.1:1"}, Store: memory.New(), Sender: newFakeSender()}
	}
	for _, tc := range []struct {
		edit func(*PusherConfig)
		want string
	}{
		{func(c *PusherConfig) { c.Store = nil }, "Store"},
		{func(c *PusherConfig) { c.Sender = nil }, "Sender"},
		{func(c *PusherConfig) { c.Brokers = nil }, "Brokers"},
		{func(c *PusherConfig) { c.RetryTiers = []time.Duration{-time.Second} }, "RetryTiers"},
		{func(c *PusherConfig) { c.Backoff = push.Backoff{Base: time.Minute, Cap: time.Second} }, "Backoff"},
		{func(c *PusherConfig) { c.PushDelay = map[string]time.Duration{"x": -1} }, "PushDelay[x]"},
	} {
		c := good()
		tc.edit(&c)
		_, err := NewPusher(c)
		if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("want an error naming %s, got %v", tc.want, err)
		}
	}
	c := good()
	if err := c.setDefaults(); err != nil {
		t.Fatal(err)
	}
	if c.Group != "herald-pusher" || !slices.Equal(c.RetryTiers, topics.DefaultPushRetryTiers) || c.Backoff.Base != time.Second || c.Backoff.Cap != 5*time.Minute {
		t.Fatalf("defaults: %+v", c)
	}
}

// TestPusherOpenCircuitBurnsNoAttempt works one job by hand while its
// circuit is open: no send, a retry record with the attempt count it had,
// due when the circuit lets a probe through.
func TestPusherOpenCircuitBurnsNoAttempt(t *testing.T) {
	t.Parallel()
	st := memory.New()
	ctx := context.Background()
	if err := st.PutDevice(ctx, herald.Device{UserID: "u1", Platform: "ios", Token: "i-1", AppID: "app"}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	s := newFakeSender()
	p, err := NewPusher(PusherConfig{Brokers: []string{"127.0.0.1:1"}, Store: st, Sender: s, Logger: quietLog,
		Registerer: metrics.NewRegistry(), Now: func() time.Time { return now },
		Circuit: CircuitConfig{MinRequests: 1, CoolDown: 7 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	key := circuitKey{provider: push.ProviderAPNs, app: "app"}
	c := p.circuit(key)
	c.allow(now)
	c.record(now, true)
	if value(p.m.circuit.WithLabelValues("apns", "app")) != float64(CircuitOpen) {
		t.Fatal("circuit gauge not open")
	}
	job := herald.PushJob{UserID: "u1", Notification: herald.Notification{ID: "n1", EventID: "e1", Type: "mention"}, Attempt: 2}
	task := &pushTask{rec: &kgo.Record{Topic: "herald.push"}, job: job, jobID: "n1", now: now}
	if err := p.decide(ctx, task); err != nil {
		t.Fatal(err)
	}
	p.send(ctx, []*pushTask{task})
	if err := p.settle(ctx, task); err != nil {
		t.Fatal(err)
	}
	if n := len(s.all()); n != 0 {
		t.Fatalf("%d sends through an open circuit", n)
	}
	if len(task.out) != 1 {
		t.Fatalf("out: %d records", len(task.out))
	}
	r := task.out[0]
	got, err := DecodePush(r)
	if err != nil || got.Attempt != 2 {
		t.Fatalf("retry job %+v %v: want attempt 2 kept", got, err)
	}
	m, err := decodePushMeta(r)
	if err != nil || m.reason != "circuit_open" || !m.notBefore.Equal(now.Add(7*time.Second)) || !slices.Equal(m.tokens, []string{"i-1"}) {
		t.Fatalf("retry meta %+v %v", m, err)
	}
	if r.Topic != "herald.push.retry.30s" {
		t.Fatalf("a 7s wait went to %s, want the 30s tier", r.Topic)
	}
}

func TestPusherMetricNames(t *testing.T) {
	t.Parallel()
	reg := metrics.NewRegistry()
	p, err := NewPusher(PusherConfig{Brokers: []string{"127.0.0.1:1"}, Store: memory.New(), Sender: newFakeSender(), Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	p.m.sends.WithLabelValues("apns", "a", "sent", "").Inc()
	p.m.dropped.WithLabelValues("read").Inc()
	p.m.retries.WithLabelValues("transient").Inc()
	p.m.dlq.WithLabelValues("x").Inc()
	p.m.tokensDeleted.Inc()
	p.circuit(circuitKey{"apns", "a"})
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range []string{"herald_push_sends_total", "herald_push_dropped_total", "herald_push_retries_total",
		"herald_push_dlq_total", "herald_push_tokens_deleted_total", "herald_push_circuit_state"} {
		if !got[name] {
			t.Errorf("%s not registered", name)
		}
	}
}

// answeredLateSender is a provider whose answers arrive after the stop
// began: Send hands the messages over (the provider has them: they are
// recorded), tells started, and waits for release before it reads the
// answers; by then a canceled context makes them transient failures, as
// an HTTP client's canceled request does though the provider delivered.
type answeredLateSender struct {
	*fakeSender
	started chan struct{}
	release chan struct{}
	once    sync.Once
}

func (s *answeredLateSender) Send(ctx context.Context, msgs []push.Message) []push.Result {
	out := s.fakeSender.Send(ctx, msgs)
	s.once.Do(func() {
		close(s.started)
		<-s.release
	})
	if err := ctx.Err(); err != nil {
		for i := range out {
			out[i] = push.Result{Reason: push.ReasonUnknown, Class: errclass.ClassTransient, Err: err}
		}
	}
	return out
}

// TestPusherGracefulStopFinishesItsBatch: a stop that comes while a batch's
// sends are in flight lets them be answered and marked, so the pusher
// that takes over pushes none of them again.
func TestPusherGracefulStopFinishesItsBatch(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.pusherTopics()
	const users = 20
	var jobs []herald.PushJob
	for i := range users {
		u := fmt.Sprintf("g-%d", i)
		e.device(u, "android", "a-"+u)
		jobs = append(jobs, e.notify(u, "e", herald.PriorityNormal))
	}
	s := &answeredLateSender{fakeSender: newFakeSender(), started: make(chan struct{}), release: make(chan struct{})}
	cfg := e.pusherConfig(s)
	first, err := NewPusher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(e.ctx)
	done := make(chan error, 1)
	go func() { done <- first.Run(ctx) }()
	e.pushJobs(jobs...)
	select {
	case <-s.started:
	case <-e.ctx.Done():
		t.Fatal("no send")
	}
	stop() // SIGTERM while the first batch is in flight
	closed := make(chan struct{})
	go func() { first.Close(); close(closed) }()
	close(s.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	<-closed
	inFlight := len(s.delivered())

	cfg.Registerer = metrics.NewRegistry()
	e.startPusher(cfg)
	e.eventually("every device pushed", func() bool { return len(s.delivered()) == users })
	for key, n := range s.delivered() {
		if n != 1 {
			t.Errorf("%s pushed %d times across a graceful stop", key, n)
		}
	}
	t.Logf("%d sends in flight at the stop", inFlight)
}
