package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/internal/errclass"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/heraldhq/herald/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

// PusherStore is what the Pusher needs from the store; every store.Store
// satisfies it. Its errors are sorted by errclass.Of: a transient error is
// retried with backoff (the partition waits), a permanent one
// dead-letters the job, a fatal one ends Run.
type PusherStore interface {
	// Devices, TouchDevice and DeleteDeviceIfStale are store.Devices'.
	Devices(ctx context.Context, userID string) ([]herald.Device, error)
	TouchDevice(ctx context.Context, userID, token string, seen time.Time) error
	DeleteDeviceIfStale(ctx context.Context, userID, token string, before time.Time) (bool, error)
	// MarkPushSent and PushSent are store.PushProgress'.
	MarkPushSent(ctx context.Context, userID, jobID, token string) error
	PushSent(ctx context.Context, userID, jobID string) (map[string]bool, error)
	// GetPreferences is store.Preferences'.
	GetPreferences(ctx context.Context, userID string) (herald.Preferences, error)
	// List and UnreadCount are store.Inbox's: the read check and the badge.
	List(ctx context.Context, userID string, after uint64, limit int, unreadOnly bool) ([]herald.Notification, error)
	UnreadCount(ctx context.Context, userID string) (int64, error)
}

// PusherConfig configures a Pusher. Store, Sender and a way to reach the
// brokers are required.
type PusherConfig struct {
	// Brokers are the seed brokers. May be empty if ClientOptions carries
	// kgo.SeedBrokers.
	Brokers []string
	// ClientOptions are extra franz-go options appended after Herald's;
	// the group, topics, isolation level and commit mode are set after them.
	ClientOptions []kgo.Opt
	// Group is the pushers' consumer group. Zero value: "herald-pusher".
	Group string
	// Topics are the topic names. Zero value: topics.WithPrefix("").
	Topics topics.Names
	// Store holds devices, push progress, preferences and inboxes.
	// Required.
	Store PusherStore
	// Sender sends to the providers (a push.Mux over the apps' APNs and
	// FCM senders). Required.
	Sender push.Sender
	// Logger receives operational logs. Zero value: slog.Default().
	Logger *slog.Logger
	// Registerer receives the Pusher's collectors; collectors already
	// registered there with the same options are shared. Zero value:
	// metrics.Registry.
	Registerer prometheus.Registerer
	// Now is the clock of every send-time decision (expiry, quiet hours,
	// delays, backoff, circuits). Zero value: time.Now.
	Now func() time.Time
	// MaxPollRecords bounds one batch. Zero value: 500.
	MaxPollRecords int
	// StoreConcurrency bounds the jobs of one partition whose store calls
	// are in flight at once. Zero value: 16.
	StoreConcurrency int
	// SendTimeout bounds one Sender.Send call (all the messages of one
	// partition's batch); what is not answered by then is a transient
	// failure, retried. Zero value: 30s.
	SendTimeout time.Duration
	// RetryTiers are the delays of the retry topics
	// (Topics.PushRetry(tier)), which must exist (topics.PushRetrySpecs).
	// Zero value: topics.DefaultPushRetryTiers (5s, 30s, 5m).
	RetryTiers []time.Duration
	// Backoff is the delay before a device's next attempt after a
	// transient failure, and the attempt bound. Zero value (Base and Cap
	// both 0): Base 1s, Cap 5m, push.DefaultMaxAttempts.
	Backoff push.Backoff
	// PushDelay holds a job back by its notification type's delay
	// (counted from the notification's created_at) and sends it only if
	// still unread then. Zero value: no delay for any type.
	PushDelay map[string]time.Duration
	// Circuit tunes the breaker per (provider, app). Zero value: see
	// CircuitConfig.
	Circuit CircuitConfig
	// RetryBackoff is the first delay before a failed store call or
	// produce is retried; it doubles up to MaxRetryBackoff. Zero values:
	// 200ms and 10s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
}

func (c *PusherConfig) setDefaults() error {
	switch {
	case c.Store == nil:
		return fmt.Errorf("%w: pusher: Store is required", ErrInvalidConfig)
	case c.Sender == nil:
		return fmt.Errorf("%w: pusher: Sender is required", ErrInvalidConfig)
	case len(c.Brokers) == 0 && len(c.ClientOptions) == 0:
		return fmt.Errorf("%w: pusher: Brokers (or ClientOptions with seed brokers) required", ErrInvalidConfig)
	}
	if c.Group == "" {
		c.Group = "herald-pusher"
	}
	if c.Topics.IsZero() {
		c.Topics = topics.WithPrefix("")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 500
	}
	if c.StoreConcurrency <= 0 {
		c.StoreConcurrency = 16
	}
	if c.SendTimeout <= 0 {
		c.SendTimeout = 30 * time.Second
	}
	if len(c.RetryTiers) == 0 {
		c.RetryTiers = topics.DefaultPushRetryTiers
	}
	tiers := slices.Clone(c.RetryTiers)
	slices.Sort(tiers)
	c.RetryTiers = slices.Compact(tiers)
	if c.RetryTiers[0] <= 0 {
		return fmt.Errorf("%w: pusher: RetryTiers must be positive, got %v", ErrInvalidConfig, c.RetryTiers[0])
	}
	if c.Backoff.Base == 0 && c.Backoff.Cap == 0 {
		c.Backoff.Base, c.Backoff.Cap = time.Second, 5*time.Minute
	}
	if c.Backoff.Base < 0 || c.Backoff.Cap < c.Backoff.Base {
		return fmt.Errorf("%w: pusher: Backoff needs 0 <= Base <= Cap, got %v and %v", ErrInvalidConfig, c.Backoff.Base, c.Backoff.Cap)
	}
	for typ, d := range c.PushDelay {
		if d < 0 {
			return fmt.Errorf("%w: pusher: PushDelay[%s] is negative: %v", ErrInvalidConfig, typ, d)
		}
	}
	c.Circuit.setDefaults()
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 200 * time.Millisecond
	}
	if c.MaxRetryBackoff < c.RetryBackoff {
		c.MaxRetryBackoff = max(10*time.Second, c.RetryBackoff)
	}
	c.Registerer = metrics.Or(c.Registerer)
	return nil
}

// Pusher consumes herald.push and its retry topics and sends each job to
// the user's devices; see the package documentation ("The Pusher").
type Pusher struct {
	cfg   PusherConfig
	log   *slog.Logger
	cl    *kgo.Client
	codec Codec
	m     *pusherMetrics
	tiers map[string]time.Duration // retry topic -> its delay

	circuitsMu sync.Mutex
	circuits   map[circuitKey]*circuit
	providers  map[push.Route]string // learned from results

	pauseMu sync.Mutex
	// rewound holds, per paused partition, the offset it was rewound to;
	// timers resume them.
	rewound map[topicPartition]int64
	timers  map[topicPartition]*time.Timer

	lc        lifecycle.Lifecycle
	closeOnce sync.Once
}

type topicPartition struct {
	topic     string
	partition int32
}

type circuitKey struct{ provider, app string }

// NewPusher validates cfg, fills its defaults and creates the Kafka client
// (which joins the group in the background).
func NewPusher(cfg PusherConfig) (*Pusher, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	p := &Pusher{
		cfg:       cfg,
		log:       cfg.Logger.With("component", "pusher", "group", cfg.Group),
		codec:     NewCodec(cfg.Topics),
		m:         newPusherMetrics(cfg.Registerer),
		tiers:     map[string]time.Duration{},
		circuits:  map[circuitKey]*circuit{},
		providers: map[push.Route]string{},
		rewound:   map[topicPartition]int64{},
		timers:    map[topicPartition]*time.Timer{},
	}
	consume := []string{cfg.Topics.Push}
	for _, d := range cfg.RetryTiers {
		name := cfg.Topics.PushRetry(d)
		p.tiers[name] = d
		consume = append(consume, name)
	}
	opts := ClientOptions(cfg.Brokers, cfg.ClientOptions...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
		kgo.ConsumeTopics(consume...),
		// The enricher writes push jobs in its transactions.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(p.forget),
		kgo.OnPartitionsLost(p.forget),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: pusher: %w", ErrInvalidConfig, err)
	}
	p.cl = cl
	return p, nil
}

// Close stops Run, waits for it to return and closes the client, leaving
// the group without committing what was not handled. It is idempotent and
// safe to call concurrently with Run.
func (p *Pusher) Close() {
	p.lc.Stop()
	p.closeClient()
}

func (p *Pusher) closeClient() {
	p.closeOnce.Do(func() {
		p.pauseMu.Lock()
		for tp, t := range p.timers {
			t.Stop()
			delete(p.timers, tp)
		}
		p.pauseMu.Unlock()
		p.cl.Close()
	})
}

// Run consumes herald.push and the retry topics until ctx is done or
// Close is called, then returns nil (ErrClosed if the client was closed
// under it). Each polled batch is worked on one goroutine per partition;
// its retry and dead-letter records are produced (acks=all) and then its
// offsets committed. Run may be called once.
func (p *Pusher) Run(ctx context.Context) error {
	if err := begin(&p.lc); err != nil {
		return err
	}
	defer p.lc.End()
	defer p.closeClient()
	ctx, release := p.lc.Context(ctx)
	defer release()

	loop := pollLoop{
		poll:      p.cl.PollRecords,
		max:       p.cfg.MaxPollRecords,
		handle:    p.handle,
		afterPoll: p.cl.AllowRebalance,
		log:       p.log,
		backoff:   retry.Backoff{Min: p.cfg.RetryBackoff, Max: p.cfg.MaxRetryBackoff},
	}
	return loop.run(ctx)
}

// partResult is what working one partition's records produced.
type partResult struct {
	tp      topicPartition
	handled []*kgo.Record // to commit
	out     []*kgo.Record // retry and DLQ records to produce first
	// rewind is the first record not yet due (nil: none): the partition
	// is paused and rewound to it until wake.
	rewind *kgo.Record
	wake   time.Time
}

// handle works a batch and commits it. It returns an error only when ctx
// is done or a fatal store error ended a partition.
func (p *Pusher) handle(ctx context.Context, fetches kgo.Fetches) error {
	var parts []kgo.FetchTopicPartition
	fetches.EachPartition(func(fp kgo.FetchTopicPartition) {
		if recs := p.afterRewind(fp); len(recs) > 0 {
			fp.Records = recs
			parts = append(parts, fp)
		}
	})
	res := make([]partResult, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	for i := range parts {
		g.Go(func() error {
			var err error
			res[i], err = p.handlePartition(gctx, parts[i])
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	var out, handled []*kgo.Record
	for i := range res {
		out = append(out, res[i].out...)
		handled = append(handled, res[i].handled...)
	}
	if err := p.produce(ctx, out); err != nil {
		return err
	}
	// Pausing and rewinding happen here, while rebalances are blocked and
	// no commit is in flight (kgo.Client.SetOffsets' conditions).
	for i := range res {
		if res[i].rewind != nil {
			p.pause(res[i].tp, res[i].rewind, res[i].wake)
		}
	}
	if len(handled) > 0 {
		if err := p.cl.CommitRecords(ctx, handled...); err != nil {
			// Redone by whoever owns the partition next: at least once,
			// and the progress records keep the devices from a duplicate.
			p.log.Warn("commit failed", "err", err)
		}
	}
	return nil
}

// afterRewind drops the records of a rewound partition that come before
// its rewind takes effect (fetched earlier, past the rewind point).
func (p *Pusher) afterRewind(fp kgo.FetchTopicPartition) []*kgo.Record {
	tp := topicPartition{fp.Topic, fp.Partition}
	p.pauseMu.Lock()
	defer p.pauseMu.Unlock()
	at, ok := p.rewound[tp]
	if !ok {
		return fp.Records
	}
	for i, r := range fp.Records {
		if r.Offset == at {
			delete(p.rewound, tp)
			return fp.Records[i:]
		}
	}
	return nil
}

// forget drops the pause state of partitions this member no longer owns
// and resumes them, so that a later assignment fetches from the committed
// offset at once.
func (p *Pusher) forget(_ context.Context, cl *kgo.Client, lost map[string][]int32) {
	p.pauseMu.Lock()
	for topic, parts := range lost {
		for _, part := range parts {
			tp := topicPartition{topic, part}
			delete(p.rewound, tp)
			if t, ok := p.timers[tp]; ok {
				t.Stop()
				delete(p.timers, tp)
			}
		}
	}
	p.pauseMu.Unlock()
	// Outside the lock: kgo calls this with its group state held.
	cl.ResumeFetchPartitions(lost)
}

// pause stops fetching tp, rewinds it to r and resumes it at wake.
func (p *Pusher) pause(tp topicPartition, r *kgo.Record, wake time.Time) {
	parts := map[string][]int32{tp.topic: {tp.partition}}
	// kgo calls outside pauseMu: forget takes it from kgo's callbacks.
	p.cl.PauseFetchPartitions(parts)
	p.cl.SetOffsets(map[string]map[int32]kgo.EpochOffset{tp.topic: {tp.partition: {Epoch: -1, Offset: r.Offset}}})
	p.pauseMu.Lock()
	defer p.pauseMu.Unlock()
	p.rewound[tp] = r.Offset
	if t, ok := p.timers[tp]; ok {
		t.Stop()
	}
	var t *time.Timer
	t = time.AfterFunc(max(wake.Sub(p.cfg.Now()), time.Millisecond), func() {
		p.pauseMu.Lock()
		mine := p.timers[tp] == t
		if mine {
			delete(p.timers, tp)
		}
		p.pauseMu.Unlock()
		if mine {
			p.cl.ResumeFetchPartitions(parts)
		}
	})
	p.timers[tp] = t
}

// produce writes out and waits for every ack, retrying failures until
// they succeed or ctx is done.
func (p *Pusher) produce(ctx context.Context, out []*kgo.Record) error {
	bo := retry.Backoff{Min: p.cfg.RetryBackoff, Max: p.cfg.MaxRetryBackoff}
	for len(out) > 0 {
		res := p.cl.ProduceSync(ctx, out...)
		var failed []*kgo.Record
		for _, pr := range res {
			if pr.Err != nil {
				pr.Record.Partition, pr.Record.Offset = 0, 0
				failed = append(failed, pr.Record)
			}
		}
		if len(failed) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := bo.Next()
		p.log.Warn("retry/DLQ produce failed, retrying", "failed", len(failed), "backoff", d, "err", res.FirstErr())
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
		out = failed
	}
	return nil
}

// pushTask is one job of a partition's batch.
type pushTask struct {
	rec   *kgo.Record
	job   herald.PushJob
	jobID string
	meta  pushMeta
	now   time.Time
	// msgs are the messages to send and keys their circuits.
	msgs    []push.Message
	keys    []circuitKey
	results []push.Result
	// deferred are the tokens held back by an open circuit, for wait.
	deferred []string
	wait     time.Duration
	out      []*kgo.Record
}

// handlePartition works one partition's records in offset order: due jobs
// are decided (concurrently, up to StoreConcurrency), their messages sent
// in one Sender call, and the results settled.
func (p *Pusher) handlePartition(ctx context.Context, fp kgo.FetchTopicPartition) (partResult, error) {
	res := partResult{tp: topicPartition{fp.Topic, fp.Partition}}
	tier, retryTopic := p.tiers[fp.Topic]
	now := p.cfg.Now()
	var tasks []*pushTask
	for _, r := range fp.Records {
		t := &pushTask{rec: r, now: now}
		job, err := DecodePush(r)
		if err == nil {
			t.meta, err = decodePushMeta(r)
		}
		if err != nil {
			p.log.Error("dead-lettering an undecodable push record", "topic", r.Topic, "partition", r.Partition, "offset", r.Offset, "err", err)
			p.m.dlq.WithLabelValues("undecodable").Inc()
			res.out = append(res.out, p.codec.PushDLQ(r, fmt.Errorf("undecodable: %w", err), 0))
			res.handled = append(res.handled, r)
			continue
		}
		t.job = job
		if retryTopic && now.Before(t.meta.notBefore) {
			// The head waits for its time, bounded by the tier's delay
			// (a record with a longer wait than its tier hops on).
			wake := t.meta.notBefore
			if bound := r.Timestamp.Add(tier); bound.Before(wake) {
				wake = bound
			}
			if now.Before(wake) {
				res.rewind, res.wake = r, wake
				break
			}
			hop, err := p.codec.pushRetry(p.tierFor(t.meta.notBefore.Sub(now)), &t.job, &t.meta, now)
			if err != nil {
				return res, err
			}
			p.m.retries.WithLabelValues("hop").Inc()
			res.out = append(res.out, hop)
			res.handled = append(res.handled, r)
			continue
		}
		t.jobID = job.Notification.ID
		if t.jobID == "" {
			t.jobID = "event:" + job.Notification.EventID
		}
		tasks = append(tasks, t)
		res.handled = append(res.handled, r)
	}
	if err := p.perTask(ctx, tasks, p.decide); err != nil {
		return res, err
	}
	p.send(ctx, tasks)
	if err := p.perTask(ctx, tasks, p.settle); err != nil {
		return res, err
	}
	for _, t := range tasks {
		res.out = append(res.out, t.out...)
	}
	return res, nil
}

// perTask runs fn for every task, StoreConcurrency at a time.
func (p *Pusher) perTask(ctx context.Context, tasks []*pushTask, fn func(context.Context, *pushTask) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(p.cfg.StoreConcurrency)
	for _, t := range tasks {
		g.Go(func() error { return fn(ctx, t) })
	}
	return g.Wait()
}

// call runs a store call, retrying transient errors with backoff until it
// succeeds or ctx is done; a permanent or fatal error is returned as is.
func (p *Pusher) call(ctx context.Context, what string, f func(context.Context) error) error {
	bo := retry.Backoff{Min: p.cfg.RetryBackoff, Max: p.cfg.MaxRetryBackoff}
	for {
		err := f(ctx)
		if err == nil || errclass.IsPermanent(err) || errclass.IsFatal(err) {
			return err
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := bo.Next()
		p.log.Warn("store call failed, retrying", "call", what, "backoff", d, "err", err)
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
	}
}

// storeFailed turns a store error into the task's outcome: a permanent
// one dead-letters the job (nil: go on), anything else is returned.
func (p *Pusher) storeFailed(t *pushTask, err error) error {
	if !errclass.IsPermanent(err) {
		return err
	}
	p.log.Warn("dead-lettering a push job after a permanent store error", "user", t.job.UserID, "job", t.jobID, "err", err)
	p.giveUp(t, t.meta.tokens, "store: "+err.Error(), t.job.Attempt)
	return nil
}

// drop counts a job dropped at send time.
func (p *Pusher) drop(reason string) { p.m.dropped.WithLabelValues(reason).Inc() }

// decide makes the send-time decisions of one job and builds its
// messages.
func (p *Pusher) decide(ctx context.Context, t *pushTask) error {
	job, n := &t.job, &t.job.Notification
	if !job.ExpiresAt.IsZero() && !t.now.Before(job.ExpiresAt) {
		p.drop("expired")
		return nil
	}
	var prefs herald.Preferences
	if err := p.call(ctx, "GetPreferences", func(ctx context.Context) (err error) {
		prefs, err = p.cfg.Store.GetPreferences(ctx, job.UserID)
		return err
	}); err != nil {
		return p.storeFailed(t, err)
	}
	switch {
	case prefs.Muted(n.Type):
		p.drop("muted")
		return nil
	case !prefs.Channels.Push:
		p.drop(herald.PushDisabled.String())
		return nil
	case n.Priority != herald.PriorityHigh && prefs.InQuietHours(t.now):
		p.drop(herald.PushQuietHours.String())
		return nil
	}
	if d := p.cfg.PushDelay[n.Type]; d > 0 && !t.meta.delayed {
		from := n.CreatedAt
		if from.IsZero() {
			from = t.rec.Timestamp
		}
		if due := from.Add(d); t.now.Before(due) {
			t.meta.delayed = true
			return p.schedule(t, t.meta.tokens, job.Attempt, due.Sub(t.now), "delay")
		}
	}
	if n.Seq > 0 {
		var unread []herald.Notification
		if err := p.call(ctx, "List", func(ctx context.Context) (err error) {
			unread, err = p.cfg.Store.List(ctx, job.UserID, n.Seq-1, 1, true)
			return err
		}); err != nil {
			return p.storeFailed(t, err)
		}
		if len(unread) == 0 || unread[0].Seq != n.Seq {
			p.drop("read")
			return nil
		}
	}
	var devices []herald.Device
	var sent map[string]bool
	if err := p.call(ctx, "Devices", func(ctx context.Context) (err error) {
		devices, err = p.cfg.Store.Devices(ctx, job.UserID)
		return err
	}); err != nil {
		return p.storeFailed(t, err)
	}
	if err := p.call(ctx, "PushSent", func(ctx context.Context) (err error) {
		sent, err = p.cfg.Store.PushSent(ctx, job.UserID, t.jobID)
		return err
	}); err != nil {
		return p.storeFailed(t, err)
	}
	devices = slices.DeleteFunc(devices, func(d herald.Device) bool {
		return sent[d.Token] || (t.meta.tokens != nil && !slices.Contains(t.meta.tokens, d.Token))
	})
	if len(devices) == 0 {
		if t.meta.tokens == nil && len(sent) == 0 {
			p.drop("no_devices")
		}
		return nil
	}
	var badge int64
	if err := p.call(ctx, "UnreadCount", func(ctx context.Context) (err error) {
		badge, err = p.cfg.Store.UnreadCount(ctx, job.UserID)
		return err
	}); err != nil {
		return p.storeFailed(t, err)
	}
	for _, d := range devices {
		d.UserID = job.UserID
		key := p.keyOf(d)
		if ok, wait := p.circuit(key).allow(t.now); !ok {
			t.deferred = append(t.deferred, d.Token)
			t.wait = max(t.wait, wait)
			continue
		}
		t.msgs = append(t.msgs, push.Message{
			UserID: job.UserID, Device: d, Notification: *n,
			CollapseKey: job.CollapseKey, ExpiresAt: job.ExpiresAt, Badge: int(min(badge, 1<<31-1)),
		})
		t.keys = append(t.keys, key)
	}
	return nil
}

// send sends every task's messages in one Sender call and hands each task
// its results.
func (p *Pusher) send(ctx context.Context, tasks []*pushTask) {
	var msgs []push.Message
	for _, t := range tasks {
		msgs = append(msgs, t.msgs...)
	}
	if len(msgs) == 0 {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, p.cfg.SendTimeout)
	defer cancel()
	results := p.cfg.Sender.Send(sctx, msgs)
	i := 0
	for _, t := range tasks {
		t.results = make([]push.Result, len(t.msgs))
		for j := range t.msgs {
			if i < len(results) {
				t.results[j] = results[i]
			} else {
				t.results[j] = push.Result{Reason: push.ReasonUnknown, Class: errclass.ClassTransient, Err: errors.New("push: sender returned too few results")}
			}
			i++
		}
	}
}

// settle records the results of one job's sends and schedules what
// remains.
func (p *Pusher) settle(ctx context.Context, t *pushTask) error {
	job := &t.job
	now := p.cfg.Now()
	var transient []string
	var retryAfter time.Duration
	var lastReason string
	for i, r := range t.results {
		m := &t.msgs[i]
		key := p.learn(m.Device, r.Provider, t.keys[i])
		if r.Provider != "" {
			p.circuit(key).record(now, r.Retriable())
		}
		outcome := "permanent"
		switch {
		case r.Sent:
			outcome = "sent"
		case r.TokenDead:
			outcome = "token_dead"
		case r.Retriable():
			outcome = "transient"
		}
		p.m.sends.WithLabelValues(key.provider, m.Device.AppID, outcome, r.Reason).Inc()
		token := m.Device.Token
		switch outcome {
		case "sent":
			if err := p.call(ctx, "MarkPushSent", func(ctx context.Context) error {
				return p.cfg.Store.MarkPushSent(ctx, job.UserID, t.jobID, token)
			}); err != nil {
				if !errclass.IsPermanent(err) {
					return err
				}
				p.log.Warn("cannot record push progress", "user", job.UserID, "job", t.jobID, "err", err)
			}
			if err := p.call(ctx, "TouchDevice", func(ctx context.Context) error {
				return p.cfg.Store.TouchDevice(ctx, job.UserID, token, now)
			}); err != nil {
				if !errclass.IsPermanent(err) {
					return err
				}
				p.log.Warn("cannot touch device", "user", job.UserID, "err", err)
			}
		case "token_dead":
			var deleted bool
			if err := p.call(ctx, "DeleteDeviceIfStale", func(ctx context.Context) (err error) {
				deleted, err = p.cfg.Store.DeleteDeviceIfStale(ctx, job.UserID, token, t.now)
				return err
			}); err != nil {
				if !errclass.IsPermanent(err) {
					return err
				}
				p.log.Warn("cannot delete a dead device", "user", job.UserID, "err", err)
			}
			if deleted {
				p.m.tokensDeleted.Inc()
			}
		case "transient":
			transient = append(transient, token)
			retryAfter = max(retryAfter, r.RetryAfter)
			lastReason = r.Reason
		default:
			p.giveUp(t, []string{token}, r.Reason, job.Attempt+1)
		}
	}
	if len(transient) > 0 {
		attempts := job.Attempt + 1
		d, err := p.cfg.Backoff.Next(attempts, retryAfter, now, job.ExpiresAt)
		switch {
		case errors.Is(err, push.ErrExpired):
			p.drop("expired")
		case err != nil:
			p.giveUp(t, transient, lastReason, attempts)
		default:
			if err := p.schedule(t, transient, attempts, d, lastReason); err != nil {
				return err
			}
		}
	}
	if len(t.deferred) > 0 {
		// An open circuit burns no attempt.
		if !job.ExpiresAt.IsZero() && !now.Add(t.wait).Before(job.ExpiresAt) {
			p.drop("expired")
			return nil
		}
		return p.schedule(t, t.deferred, job.Attempt, t.wait, "circuit_open")
	}
	return nil
}

// schedule produces a retry record of t's job for tokens (nil: all
// devices) after wait, with attempts sends made.
func (p *Pusher) schedule(t *pushTask, tokens []string, attempts int, wait time.Duration, reason string) error {
	job := t.job
	job.Attempt = attempts
	m := pushMeta{notBefore: t.now.Add(wait), tokens: tokens, delayed: t.meta.delayed, reason: reason}
	r, err := p.codec.pushRetry(p.tierFor(wait), &job, &m, t.now)
	if err != nil {
		return err
	}
	label := reason
	if reason != "delay" && reason != "circuit_open" {
		label = "transient"
	}
	p.m.retries.WithLabelValues(label).Inc()
	t.out = append(t.out, r)
	return nil
}

// giveUp dead-letters t's job for tokens with reason.
func (p *Pusher) giveUp(t *pushTask, tokens []string, reason string, attempts int) {
	r, err := p.codec.pushGiveUp(t.rec, t.job, tokens, reason, attempts)
	if err != nil { // the job was decoded from JSON: unreachable
		p.log.Error("cannot encode a push dead letter", "user", t.job.UserID, "job", t.jobID, "err", err)
		return
	}
	p.m.dlq.WithLabelValues(reason).Inc()
	t.out = append(t.out, r)
}

// tierFor is the retry topic for a wait: the smallest tier at least as
// long, else the longest.
func (p *Pusher) tierFor(wait time.Duration) string {
	tiers := p.cfg.RetryTiers
	i := sort.Search(len(tiers), func(i int) bool { return tiers[i] >= wait })
	if i == len(tiers) {
		i--
	}
	return p.cfg.Topics.PushRetry(tiers[i])
}

// keyOf is the circuit of a device: its app and the provider its route
// was last answered by (before any answer: APNs for iOS, FCM otherwise).
func (p *Pusher) keyOf(d herald.Device) circuitKey {
	p.circuitsMu.Lock()
	prov, ok := p.providers[push.Route{AppID: d.AppID, Platform: d.Platform}]
	p.circuitsMu.Unlock()
	if !ok {
		prov = push.ProviderFCM
		if d.Platform == push.PlatformIOS {
			prov = push.ProviderAPNs
		}
	}
	return circuitKey{provider: prov, app: d.AppID}
}

// learn records which provider answered for a device's route and returns
// the circuit the answer belongs to.
func (p *Pusher) learn(d herald.Device, provider string, asked circuitKey) circuitKey {
	if provider == "" || provider == asked.provider {
		return asked
	}
	p.circuitsMu.Lock()
	p.providers[push.Route{AppID: d.AppID, Platform: d.Platform}] = provider
	p.circuitsMu.Unlock()
	return circuitKey{provider: provider, app: d.AppID}
}

// circuit returns key's breaker, creating it closed.
func (p *Pusher) circuit(key circuitKey) *circuit {
	p.circuitsMu.Lock()
	defer p.circuitsMu.Unlock()
	c, ok := p.circuits[key]
	if !ok {
		g := p.m.circuit.WithLabelValues(key.provider, key.app)
		g.Set(float64(CircuitClosed))
		c = newCircuit(p.cfg.Circuit, func(s CircuitState) { g.Set(float64(s)) })
		p.circuits[key] = c
	}
	return c
}
