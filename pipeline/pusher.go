package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery/push"
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
	// InstanceID makes the Pusher a static member of Group
	// (group.instance.id; see "Static membership" in group.go): a
	// restarted pusher takes its partitions back without a rebalance,
	// within the session timeout. It must be unique per live pusher (two
	// live processes with one id fence each other out of the group,
	// logged at error level) and stable across its restarts. Zero value:
	// dynamic membership.
	InstanceID string
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
	// DrainTimeout bounds how long a stop (Close, or the end of Run's
	// context) lets the batch in flight finish: its sends are answered and
	// their progress marks written, so that a graceful stop pushes nothing
	// twice. Past it the batch is cut off as by a crash, and what was in
	// flight is sent again, under the same collapse id, after the restart.
	// No new batch is polled once the stop began. Zero value: 10s.
	DrainTimeout time.Duration
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
	if c.DrainTimeout <= 0 {
		c.DrainTimeout = 10 * time.Second
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
	group *membership

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
	log := cfg.Logger.With("component", "pusher", "group", cfg.Group)
	group, err := newMembership("pusher", cfg.Group, cfg.InstanceID, log)
	if err != nil {
		return nil, err
	}
	p := &Pusher{
		cfg:       cfg,
		log:       log,
		group:     group,
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
	opts = append(opts, group.opts(nil, p.forget, p.forget)...)
	opts = append(opts,
		kgo.ConsumeTopics(consume...),
		// The enricher writes push jobs in its transactions.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: pusher: %w", ErrInvalidConfig, err)
	}
	p.cl = cl
	return p, nil
}

// Close stops Run, waits for it to return (the batch in flight finishes,
// up to DrainTimeout) and closes the client, leaving
// the group (a static member too: see "Leaving on a clean shutdown" in
// group.go) without committing what was not handled. It is idempotent and
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
		p.group.leave(p.cl)
		p.cl.Close()
	})
}

// Ready reports whether the Pusher is consuming: nil once Run is polling
// and the group assigned this member its partitions (or, with more
// pushers than partitions, none), else why not. It is cheap and never
// blocks, for a readiness probe.
func (p *Pusher) Ready() error { return p.group.ready() }

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
	defer p.closeClient() //nolint:contextcheck // closing outlives Run's context: leaving the group is bounded by its own timeout
	p.group.setRunning(true)
	defer p.group.setRunning(false)
	ctx, release := p.lc.Context(ctx)
	defer release()

	loop := pollLoop{
		poll:      p.cl.PollRecords,
		max:       p.cfg.MaxPollRecords,
		handle:    p.handle,
		afterPoll: p.cl.AllowRebalance,
		drain:     p.cfg.DrainTimeout,
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
