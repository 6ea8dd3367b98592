package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/heraldhq/herald/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

// Deliverer hands a notification to the user's live connections, wherever
// they are. The Router calls it from one goroutine per partition, so
// concurrently for different users but in seq order for any one user; it
// must be safe for concurrent use and should not block for long (queue, do
// not write to a socket inline).
type Deliverer interface {
	// Deliver returns online=false when the user has no live connection
	// anywhere. An error means presence or delivery could not be determined
	// (e.g. Redis unreachable); the Router retries the record.
	Deliver(ctx context.Context, userID string, n herald.Notification) (online bool, err error)
}

// DelivererFunc adapts a function to the Deliverer interface.
type DelivererFunc func(ctx context.Context, userID string, n herald.Notification) (bool, error)

// Deliver calls f.
func (f DelivererFunc) Deliver(ctx context.Context, userID string, n herald.Notification) (bool, error) {
	return f(ctx, userID, n)
}

// RouterConfig configures a Router. Only Deliverer and a way to reach the
// brokers are required.
type RouterConfig struct {
	// Brokers are the seed brokers. May be empty if ClientOptions carries
	// kgo.SeedBrokers.
	Brokers []string
	// ClientOptions are extra franz-go options appended after Herald's;
	// the group, topic, isolation level and commit mode are set after them.
	ClientOptions []kgo.Opt
	// Group is the gateway fleet's consumer group. Zero value:
	// "herald-gateway".
	Group string
	// InstanceID makes the Router a static member of Group
	// (group.instance.id; see "Static membership" in group.go): a
	// restarted gateway takes its partitions of herald.deliveries back
	// without a rebalance, within the session timeout. It must be unique
	// per live gateway (two live processes with one id fence each other
	// out of the group, logged at error level) and stable across its
	// restarts; Herald's gateway role uses the gateway id. Zero value:
	// dynamic membership.
	InstanceID string
	// Topics are the topic names. Zero value: topics.WithPrefix("").
	Topics topics.Names
	// Deliverer reaches live connections. Required.
	Deliverer Deliverer
	// Logger receives operational logs. Zero value: slog.Default().
	Logger *slog.Logger
	// Registerer receives the Router's collectors; collectors already
	// registered there with the same options (another component of the
	// process) are shared. Zero value: metrics.Registry.
	Registerer prometheus.Registerer
	// Now is the clock used for push expiry. Zero value: time.Now.
	Now func() time.Time
	// MaxPollRecords bounds one batch. Zero value: 500.
	MaxPollRecords int
	// StartAtEnd makes a group without committed offsets start at the end
	// of herald.deliveries. Zero value: start at the beginning, so nothing
	// stored before the first gateway started is missed (at most the
	// topic's retention is replayed, once).
	StartAtEnd bool
	// RetryBackoff is the first delay before a failed Deliver or push
	// produce is retried; it doubles up to MaxRetryBackoff. Zero values:
	// 200ms and 10s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
}

func (c *RouterConfig) setDefaults() error {
	if c.Deliverer == nil {
		return fmt.Errorf("%w: router: Deliverer is required", ErrInvalidConfig)
	}
	if len(c.Brokers) == 0 && len(c.ClientOptions) == 0 {
		return fmt.Errorf("%w: router: Brokers (or ClientOptions with seed brokers) required", ErrInvalidConfig)
	}
	if c.Group == "" {
		c.Group = "herald-gateway"
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
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 200 * time.Millisecond
	}
	if c.MaxRetryBackoff < c.RetryBackoff {
		c.MaxRetryBackoff = max(10*time.Second, c.RetryBackoff)
	}
	c.Registerer = metrics.Or(c.Registerer)
	return nil
}

// Router consumes herald.deliveries for the gateway fleet: live delivery
// through the Deliverer, push jobs for offline users. It is at least once:
// a batch's offsets are committed only after every record was delivered
// and every push job acknowledged, so a crash replays (and may re-deliver)
// the uncommitted tail; clients dedupe by seq.
type Router struct {
	cfg   RouterConfig
	log   *slog.Logger
	cl    *kgo.Client
	codec Codec
	m     *routerMetrics
	group *membership

	lc        lifecycle.Lifecycle
	closeOnce sync.Once
}

// NewRouter validates cfg, fills its defaults and creates the Kafka client
// (which joins the group in the background).
func NewRouter(cfg RouterConfig) (*Router, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	reset := kgo.NewOffset().AtStart()
	if cfg.StartAtEnd {
		reset = kgo.NewOffset().AtEnd()
	}
	log := cfg.Logger.With("component", "router", "group", cfg.Group)
	group, err := newMembership("router", cfg.Group, cfg.InstanceID, log)
	if err != nil {
		return nil, err
	}
	opts := ClientOptions(cfg.Brokers, cfg.ClientOptions...)
	opts = append(opts, group.opts(nil, nil, nil)...)
	opts = append(opts,
		kgo.ConsumeTopics(cfg.Topics.Deliveries),
		// Deliveries are written in transactions: never show a client a
		// notification whose transaction aborted.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		// We commit after handling a batch; blocking rebalances while we
		// hold polled records ensures those commits are for partitions we
		// still own.
		kgo.BlockRebalanceOnPoll(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: router: %w", ErrInvalidConfig, err)
	}
	return &Router{
		cfg:   cfg,
		log:   log,
		group: group,
		cl:    cl,
		codec: NewCodec(cfg.Topics),
		m:     newRouterMetrics(cfg.Registerer),
	}, nil
}

// Close stops Run, waits for it to return and closes the client, leaving
// the group (a static member too: see "Leaving on a clean shutdown" in
// group.go) without committing what was not handled. It is idempotent and
// safe to call concurrently with Run.
func (r *Router) Close() {
	r.lc.Stop()
	r.closeClient()
}

func (r *Router) closeClient() {
	r.closeOnce.Do(func() {
		r.group.leave(r.cl)
		r.cl.Close()
	})
}

// Ready reports whether the Router is consuming: nil once Run is polling
// and the group assigned this member its partitions (or, with more
// gateways than partitions, none), else why not. It is cheap and never
// blocks, for a readiness probe.
func (r *Router) Ready() error { return r.group.ready() }

// Run consumes herald.deliveries until ctx is done or Close is called,
// then returns nil (ErrClosed if the client was closed under it). For each
// polled batch it handles every partition's records in order, on one
// goroutine per partition, produces the push jobs (acks=all), then commits
// the batch's offsets. A failing Deliver or push produce is retried with
// backoff, pausing consumption rather than skipping; undecodable records
// are logged, counted and skipped.
//
// On return Run has stopped polling and closed the client; offsets of a
// batch interrupted by shutdown are not committed. Run may be called once.
func (r *Router) Run(ctx context.Context) error {
	if err := begin(&r.lc); err != nil {
		return err
	}
	defer r.lc.End()
	defer r.closeClient() //nolint:contextcheck // closing outlives Run's context: leaving the group is bounded by its own timeout
	r.group.setRunning(true)
	defer r.group.setRunning(false)
	ctx, release := r.lc.Context(ctx)
	defer release()

	loop := pollLoop{
		poll:      r.cl.PollRecords,
		max:       r.cfg.MaxPollRecords,
		handle:    r.handle,
		afterPoll: r.cl.AllowRebalance,
		log:       r.log,
		backoff:   retry.Backoff{Min: r.cfg.RetryBackoff, Max: r.cfg.MaxRetryBackoff},
	}
	return loop.run(ctx)
}

// handle delivers a batch, produces its push jobs and commits its offsets.
// It returns an error only when ctx is done: only shutdown interrupts
// handling, and leaves the offsets for the next owner.
func (r *Router) handle(ctx context.Context, fetches kgo.Fetches) error {
	var parts [][]*kgo.Record
	fetches.EachPartition(func(p kgo.FetchTopicPartition) {
		if len(p.Records) > 0 {
			parts = append(parts, p.Records)
		}
	})
	jobs := make([][]*kgo.Record, len(parts))
	g, gctx := errgroup.WithContext(ctx)
	for i := range parts {
		g.Go(func() error {
			var err error
			jobs[i], err = r.handlePartition(gctx, parts[i])
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if err := r.producePush(ctx, slices.Concat(jobs...)); err != nil {
		return err
	}
	if err := r.cl.CommitRecords(ctx, fetches.Records()...); err != nil {
		// The records will be delivered again by whoever owns the
		// partition next: at least once.
		r.log.Warn("commit failed", "err", err)
	}
	return nil
}

// handlePartition delivers one partition's records in offset order, hence
// each user's notifications in seq order, and returns the push jobs to
// produce.
func (r *Router) handlePartition(ctx context.Context, recs []*kgo.Record) ([]*kgo.Record, error) {
	var jobs []*kgo.Record
	for _, rec := range recs {
		d, err := DecodeDelivery(rec)
		if err != nil {
			r.m.decodeErrors.Inc()
			r.log.Error("skipping undecodable deliveries record", "partition", rec.Partition, "offset", rec.Offset, "err", err)
			continue
		}
		online, err := r.deliver(ctx, d.UserID, d.Notification)
		if err != nil {
			return nil, err
		}
		if online {
			continue
		}
		job, reason := r.pushJob(&d)
		if job == nil {
			r.m.suppressed.WithLabelValues(reason).Inc()
			continue
		}
		jobs = append(jobs, job)
	}
	return jobs, nil
}

// deliver calls the Deliverer, retrying with backoff until it answers or
// ctx is done.
func (r *Router) deliver(ctx context.Context, userID string, n herald.Notification) (bool, error) {
	bo := retry.Backoff{Min: r.cfg.RetryBackoff, Max: r.cfg.MaxRetryBackoff}
	for {
		online, err := r.cfg.Deliverer.Deliver(ctx, userID, n)
		if err == nil {
			return online, nil
		}
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		d := bo.Next()
		r.log.Warn("deliver failed, retrying", "user", userID, "seq", n.Seq, "backoff", d, "err", err)
		if !retry.Sleep(ctx, d) {
			return false, ctx.Err()
		}
	}
}

// pushJob builds the push record for an offline user's notification, or
// returns nil and the suppression reason.
func (r *Router) pushJob(d *Delivery) (*kgo.Record, string) {
	if !d.PushKnown {
		// Missing or unknown: never push on a decision we cannot read.
		return nil, "unknown"
	}
	if d.Push != herald.PushAllowed {
		return nil, d.Push.String()
	}
	job := herald.PushJob{UserID: d.UserID, Notification: d.Notification, CollapseKey: d.CollapseKey}
	switch {
	case d.ExpiresAtErr != nil:
		r.log.Warn("ignoring a malformed expiry header", "user", d.UserID, "seq", d.Notification.Seq, "err", d.ExpiresAtErr)
	case d.ExpiresAt.IsZero():
	case r.cfg.Now().After(d.ExpiresAt):
		return nil, "expired"
	default:
		job.ExpiresAt = d.ExpiresAt
	}
	rec, err := r.codec.Push(&job)
	if err != nil { // only a notification with invalid raw Data; it decoded, so unreachable
		r.log.Error("cannot encode push job", "user", d.UserID, "seq", d.Notification.Seq, "err", err)
		return nil, "unknown"
	}
	return rec, ""
}

// producePush produces the batch's push jobs and waits for every ack,
// retrying the failed ones until they succeed or ctx is done.
func (r *Router) producePush(ctx context.Context, jobs []*kgo.Record) error {
	bo := retry.Backoff{Min: r.cfg.RetryBackoff, Max: r.cfg.MaxRetryBackoff}
	for len(jobs) > 0 {
		res := r.cl.ProduceSync(ctx, jobs...)
		var failed []*kgo.Record
		for _, pr := range res {
			if pr.Err != nil {
				pr.Record.Partition, pr.Record.Offset = 0, 0
				failed = append(failed, pr.Record)
			}
		}
		r.m.pushJobs.WithLabelValues("router").Add(float64(len(jobs) - len(failed)))
		if len(failed) == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		d := bo.Next()
		r.log.Warn("push job produce failed, retrying", "failed", len(failed), "backoff", d, "err", res.FirstErr())
		if !retry.Sleep(ctx, d) {
			return ctx.Err()
		}
		jobs = failed
	}
	return nil
}
