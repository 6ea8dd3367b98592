package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/errclass"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/heraldhq/herald/policy"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnricherStore is what the Enricher needs from the store; every
// store.Store satisfies it. Its errors are sorted by errclass.Of: one that
// is permanent for a user (marked with errclass.Permanent, or a
// *herald.ValidationError) dead-letters that user's records of the batch;
// a fatal one ends Run; any other aborts the batch, which is retried.
type EnricherStore interface {
	store.Inbox
	store.Preferences
	store.Policies
}

// EnricherConfig configures an Enricher. Only Store and a way to reach the
// brokers are required.
type EnricherConfig struct {
	// Brokers are the seed brokers. May be empty if ClientOptions carries
	// kgo.SeedBrokers.
	Brokers []string
	// ClientOptions are extra franz-go options (TLS, SASL, timeouts)
	// appended after Herald's; later options win. Options that would break
	// the transactional loop (group, topics, transactional id, isolation
	// level) are set by the Enricher after these.
	ClientOptions []kgo.Opt
	// Group is the consumer group. Zero value: "herald-enricher".
	Group string
	// TransactionalID identifies this instance's transactional producer.
	// Zero value: "herald-enricher-" + os.Hostname().
	//
	// It must be unique per running instance (two live instances with the
	// same id fence each other in turn) and stable across restarts of the
	// same instance (a StatefulSet pod name, a host name): when an
	// instance restarts, its new producer's InitProducerID aborts the
	// transaction the crashed one left open, so read_committed readers of
	// herald.deliveries resume at once instead of stalling until the
	// broker's transaction timeout, and the old incarnation is fenced if it
	// is in fact still alive.
	TransactionalID string
	// InstanceID makes the Enricher a static member of Group
	// (group.instance.id; see "Static membership" in group.go): a
	// restarted instance takes its partitions back without a rebalance,
	// within the session timeout. Like TransactionalID it must be unique
	// per live instance (two live processes with one id fence each other
	// out of the group, logged at error level) and stable across its
	// restarts; Herald's enricher role uses the TransactionalID. Zero
	// value: dynamic membership.
	InstanceID string
	// Topics are the topic names. Zero value: topics.WithPrefix("").
	Topics topics.Names
	// Store holds inboxes and preferences. Required.
	Store EnricherStore
	// Logger receives operational logs. Zero value: slog.Default().
	Logger *slog.Logger
	// Registerer receives the Enricher's collectors; collectors already
	// registered there with the same options (another component of the
	// process) are shared. Zero value: metrics.Registry.
	Registerer prometheus.Registerer
	// Now is the clock used for quiet hours and expiry. Zero value: time.Now.
	Now func() time.Time
	// MaxPollRecords bounds the records of one batch (one transaction, one
	// inbox Append). Zero value: 1000.
	MaxPollRecords int
	// StoreConcurrency bounds the store calls in flight while loading
	// preferences and claiming event ids (and appending user by user after
	// a permanent store error), across users; calls for one user stay
	// sequential. Zero value: 64 (the calls are small point reads: a batch of a thousand users waits on round trips, not on the servers).
	StoreConcurrency int
	// RetryBackoff is the first delay before a batch that failed (a
	// transient store or produce error) is retried; it doubles up to
	// MaxRetryBackoff.
	// Zero values: 200ms and 10s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// EndTimeout bounds ending a transaction (commit or abort), which is
	// never interrupted by Run's context: a half-ended transaction would
	// leave the client unusable. Zero value: 30s.
	EndTimeout time.Duration
	// Live, when set, is handed the notifications of each committed batch,
	// after the commit, for the users' live connections (the direct path,
	// live.go): live delivery then waits neither for a router's poll nor
	// for a crashed gateway's delivery partitions to move. Best effort; the
	// routers deliver everything anyway. Zero value: no direct path.
	Live LivePublisher
	// LiveQueue bounds the committed batches waiting for Live; a batch
	// that finds it full is left to the routers (counted in
	// herald_enricher_live_dropped_total). Zero value: 64.
	LiveQueue int
	// LiveTimeout bounds one PublishLive call. Zero value: 1s.
	LiveTimeout time.Duration
	// Policy returns the notification policy in force (digests, rate
	// limits, daily caps: package policy, policy.go); it is called once
	// per batch, so a reload takes effect at the next batch. Zero value,
	// or a nil result: no policy (every event is delivered as is; digest
	// windows already open still close).
	Policy func() *policy.Policy
	// PolicyTick is how often the due index of each partition this member
	// owns is scanned for digest windows to close (policy_due.go). Zero
	// value: 1s.
	PolicyTick time.Duration

	// beforeEnd, for tests, runs after a batch was stored and produced
	// (flushed), right before the transaction is committed. An error
	// aborts the batch as a store error would.
	beforeEnd func(ctx context.Context) error
}

func (c *EnricherConfig) setDefaults() error {
	if c.Store == nil {
		return fmt.Errorf("%w: enricher: Store is required", ErrInvalidConfig)
	}
	if len(c.Brokers) == 0 && len(c.ClientOptions) == 0 {
		return fmt.Errorf("%w: enricher: Brokers (or ClientOptions with seed brokers) required", ErrInvalidConfig)
	}
	if c.Group == "" {
		c.Group = "herald-enricher"
	}
	if c.TransactionalID == "" {
		host, err := os.Hostname()
		if err == nil && host == "" {
			err = errors.New("empty hostname")
		}
		if err != nil {
			return fmt.Errorf("%w: enricher: TransactionalID unset and no hostname to derive it from (%w)", ErrInvalidConfig, err)
		}
		c.TransactionalID = "herald-enricher-" + host
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
		c.MaxPollRecords = 1000
	}
	if c.StoreConcurrency <= 0 {
		c.StoreConcurrency = 64
	}
	if c.RetryBackoff <= 0 {
		c.RetryBackoff = 200 * time.Millisecond
	}
	if c.MaxRetryBackoff < c.RetryBackoff {
		c.MaxRetryBackoff = max(10*time.Second, c.RetryBackoff)
	}
	if c.EndTimeout <= 0 {
		c.EndTimeout = 30 * time.Second
	}
	if c.LiveQueue <= 0 {
		c.LiveQueue = 64
	}
	if c.LiveTimeout <= 0 {
		c.LiveTimeout = time.Second
	}
	if c.PolicyTick <= 0 {
		c.PolicyTick = time.Second
	}
	c.Registerer = metrics.Or(c.Registerer)
	return nil
}

// Enricher turns herald.events into inbox notifications and
// herald.deliveries records, exactly once per valid event.
type Enricher struct {
	cfg   EnricherConfig
	log   *slog.Logger
	sess  *kgo.GroupTransactSession
	codec Codec
	m     *enricherMetrics
	// writers are the store Writers of the partitions this member owns.
	writers *writers
	// counts are the partition counts of the consumed topics (forward.go).
	counts *partitionCounts
	// group is the group membership: Ready, the leave of Close.
	group *membership
	// live is the direct path to the gateways; nil without Config.Live.
	live *livePath
	// due scans the due index and produces the ticks (policy_due.go).
	due *dueScanner

	lc        lifecycle.Lifecycle
	closeOnce sync.Once
}

// NewEnricher validates cfg, fills its defaults and creates the
// transactional Kafka client (which joins the group in the background).
// Call Run to start consuming and Close to release it.
func NewEnricher(cfg EnricherConfig) (*Enricher, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	ws := newWriters(cfg.Store)
	counts := &partitionCounts{}
	forget := func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
		ws.forget(ctx, cl, parts)
		counts.forget(ctx, cl, parts)
	}
	log := cfg.Logger.With("component", "enricher", "group", cfg.Group, "txn_id", cfg.TransactionalID)
	group, err := newMembership("enricher", cfg.Group, cfg.InstanceID, log)
	if err != nil {
		return nil, err
	}
	opts := ClientOptions(cfg.Brokers, cfg.ClientOptions...)
	// Writers of partitions this member loses are forgotten, so that a
	// partition that comes back is fenced anew.
	opts = append(opts, group.opts(ws.assign, forget, forget)...)
	opts = append(opts,
		// Forwards to a user's partition rely on this partitioner (see
		// forward.go).
		kgo.RecordPartitioner(eventsPartitioner),
		kgo.ConsumeTopics(cfg.Topics.Events),
		kgo.TransactionalID(cfg.TransactionalID),
		// Skip aborted upstream transactions. RequireStableFetchOffsets
		// (KIP-447) is always on in franz-go >= 1.20 (the option is a
		// deprecated no-op): a new owner of a partition waits for our
		// pending offset commit to resolve before fetching.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// A new group starts at the beginning: events produced before the
		// first enricher started must not be skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: enricher: %w", ErrInvalidConfig, err)
	}
	counts.cl = sess.Client()
	m := newEnricherMetrics(cfg.Registerer)
	due, err := newDueScanner(&cfg, ws, log, m)
	if err != nil {
		sess.Close()
		return nil, err
	}
	return &Enricher{
		due:     due,
		live:    newLivePath(cfg.Live, cfg.LiveQueue, cfg.LiveTimeout, log, m),
		writers: ws,
		counts:  counts,
		group:   group,
		cfg:     cfg,
		log:     log,
		sess:    sess,
		codec:   NewCodec(cfg.Topics),
		m:       m,
	}, nil
}

// Close stops Run (aborting its open transaction, if any), waits for it to
// return, and closes the Kafka client, leaving the group (a static member
// too: see "Leaving on a clean shutdown" in group.go). It is idempotent
// and safe to call concurrently with Run.
func (e *Enricher) Close() {
	e.lc.Stop()
	e.closeClient()
}

func (e *Enricher) closeClient() {
	e.closeOnce.Do(func() {
		e.group.leave(e.sess.Client())
		e.sess.Close()
		e.due.close()
	})
}

// Ready reports whether the Enricher is consuming: nil once Run is polling
// and the group assigned this member its partitions (or, with more
// members than partitions, none), else why not ("joining group …: no
// assignment yet", "fenced: …", "stopped"). It is cheap and never blocks,
// for a readiness probe.
func (e *Enricher) Ready() error { return e.group.ready() }

// Run consumes herald.events until ctx is done, Close is called or a
// fatal Kafka error occurs, and returns nil in the first two cases. A fatal
// error (errclass.ClassFatal: the transactional producer was fenced or
// failed to end a transaction) is returned; the Enricher is then closed and
// the caller should exit or build a new one: nothing is lost, uncommitted
// batches are replayed.
//
// Each polled batch is one transaction: DLQ records, deliveries and push
// jobs are produced and the consumed offsets committed atomically. A batch
// that hits a transient store or produce error is aborted (the session
// rewinds to the last committed offsets) and retried after a backoff;
// valid events are never skipped. A permanent store error for one user
// (errclass.ClassPermanent, e.g. the store rejects that user's
// notification) sends that user's records of the batch to herald.events.dlq
// with the reason, and the rest of the batch goes on.
//
// On return Run has stopped polling, ended (committed or aborted) the
// transaction in progress and closed the client. Run may be called once.
func (e *Enricher) Run(ctx context.Context) error {
	if err := begin(&e.lc); err != nil {
		return err
	}
	defer e.lc.End()
	defer e.closeClient() //nolint:contextcheck // closing outlives Run's context: leaving the group is bounded by its own timeout
	e.group.setRunning(true)
	defer e.group.setRunning(false)
	ctx, release := e.lc.Context(ctx)
	defer release()
	if e.live != nil {
		// The direct path's publisher is owned by Run: it ends with Run's
		// context, and Run waits for it.
		liveCtx, stopLive := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); e.live.run(liveCtx) }()
		defer func() { stopLive(); <-done }()
	}

	registerProducer(ctx, e.sess, e.log)

	// The due scanner is owned by Run like the direct path.
	dueCtx, stopDue := context.WithCancel(ctx)
	dueDone := make(chan struct{})
	go func() { defer close(dueDone); e.due.run(dueCtx) }()
	defer func() { stopDue(); <-dueDone }()

	loop := pollLoop{
		poll: e.sess.PollRecords,
		max:  e.cfg.MaxPollRecords,
		handle: func(ctx context.Context, fetches kgo.Fetches) error {
			return e.runBatch(ctx, fetches.Records())
		},
		log:     e.log,
		backoff: retry.Backoff{Min: e.cfg.RetryBackoff, Max: e.cfg.MaxRetryBackoff},
	}
	err := loop.run(ctx)
	if errclass.IsFatal(err) {
		e.log.Error("enricher stopping on a Kafka transaction error", "err", err)
		return fmt.Errorf("pipeline: enricher: %w", err)
	}
	return err
}

// runBatch enriches recs in one transaction. A non-fatal error means the
// transaction was aborted and the session rewound.
func (e *Enricher) runBatch(ctx context.Context, recs []*kgo.Record) error {
	start := time.Now()
	if err := e.sess.Begin(); err != nil {
		return errclass.Fatal(fmt.Errorf("begin transaction: %w", err))
	}
	b := e.newBatch(recs)
	err := b.run(ctx)
	if err == nil {
		err = e.produce(ctx, b.out)
		b.lap("produce")
	}
	if err == nil && e.cfg.beforeEnd != nil {
		err = e.cfg.beforeEnd(ctx)
	}

	committed, err := endTxn(ctx, e.sess, e.cfg.EndTimeout, err)
	if err != nil {
		return err
	}
	b.lap("commit")
	if !committed {
		// A rebalance revoked partitions mid-batch: the session aborted and
		// rewound. Whoever owns the records now replays them; the store
		// writes already made are idempotent.
		e.log.Info("transaction aborted by a rebalance; batch will be re-consumed", "records", len(recs))
		// After a broker crash the client may have dropped its producer
		// id: re-register it now, as at start (registerProducer), or the
		// broker's pending copy of this transaction holds back the offsets
		// of our own next poll until its timeout.
		registerProducer(ctx, e.sess, e.log)
		return nil
	}
	b.st.publish(e.m, time.Since(start), time.Now(), recs)
	e.live.offer(b.live)
	return nil
}

// endTxn ends the session's open transaction, whatever Run's context
// says (a half-ended transaction would leave the client unusable; timeout
// bounds it): it aborts it after a failed batch (batchErr) and returns
// that error, transient for the poll loop to retry unless fatal (the
// batch is replayed from the last committed offsets: permanent errors of
// single records were handled by the batch itself); else it commits it,
// and committed is false when a rebalance aborted it meanwhile (the
// session rewound; whoever owns the records now replays them).
func endTxn(ctx context.Context, sess *kgo.GroupTransactSession, timeout time.Duration, batchErr error) (committed bool, err error) {
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	if batchErr != nil {
		if _, aerr := sess.End(endCtx, kgo.TryAbort); aerr != nil {
			return false, errclass.Fatal(fmt.Errorf("abort transaction after %w: %w", batchErr, aerr))
		}
		if errclass.IsFatal(batchErr) {
			return false, batchErr
		}
		return false, errclass.Transient(batchErr)
	}
	committed, err = sess.End(endCtx, kgo.TryCommit)
	if err != nil {
		return false, errclass.Fatal(fmt.Errorf("end transaction: %w", err))
	}
	return committed, nil
}

// registerProducer makes the transactional producer known to the broker
// (InitProducerID) before the first poll. That is what aborts the
// transaction a crashed predecessor with the same transactional id left
// open; franz-go would only do it at the first produce, and the first
// produce waits for the first batch, which waits for the group's offsets,
// which the broker holds back while that transaction is pending (KIP-447):
// the restarted process would sit idle until the broker's transaction
// timeout (about 45 s here) instead of resuming at once. An error is
// logged and left to the first produce to surface again.
func registerProducer(ctx context.Context, sess *kgo.GroupTransactSession, log *slog.Logger) {
	if _, _, err := sess.Client().ProducerID(ctx); err != nil && ctx.Err() == nil {
		log.Warn("registering the transactional producer failed; retried at the first produce", "err", err)
	}
}

// produce sends rs in the open transaction and waits until every one is
// acknowledged (Flush skips the linger).
func (e *Enricher) produce(ctx context.Context, rs []*kgo.Record) error {
	return produceFlush(ctx, e.sess, rs)
}

// batchStats are the metrics of one batch, published only once its
// transaction committed so that replays are not counted twice.
type batchStats struct {
	rejected, muted, duplicate, noChannel, expired, out, push, forwarded, fanout int
	// policy counts herald_policy_total (policy.go).
	policy map[policyAction]int
}

func (st *batchStats) publish(m *enricherMetrics, took time.Duration, committedAt time.Time, recs []*kgo.Record) {
	m.in.WithLabelValues("kafka").Add(float64(len(recs)))
	add := func(c prometheus.Counter, n int) {
		if n > 0 {
			c.Add(float64(n))
		}
	}
	add(m.rejected.WithLabelValues("kafka"), st.rejected)
	add(m.dropped.WithLabelValues(herald.DropMuted.String()), st.muted)
	add(m.dropped.WithLabelValues("duplicate"), st.duplicate)
	add(m.dropped.WithLabelValues(herald.DropNoChannel.String()), st.noChannel)
	add(m.suppressed.WithLabelValues("expired"), st.expired)
	add(m.out, st.out)
	add(m.forwarded, st.forwarded)
	add(m.toFanout, st.fanout)
	add(m.pushJobs.WithLabelValues("enricher"), st.push)
	for a, n := range st.policy {
		m.policy.WithLabelValues(a.typ, a.action).Add(float64(n))
	}
	m.batchSeconds.Observe(took.Seconds())
	for _, r := range recs {
		m.latencySeconds.Observe(committedAt.Sub(r.Timestamp).Seconds())
	}
}

// noPolicy governs nothing: the policy when Config.Policy has none.
var noPolicy = func() *policy.Policy {
	p, err := policy.New(policy.Config{})
	if err != nil {
		panic(err)
	}
	return p
}()

// policy is the policy in force for the next batch, never nil.
func (e *Enricher) policy() *policy.Policy {
	if e.cfg.Policy != nil {
		if p := e.cfg.Policy(); p != nil {
			return p
		}
	}
	return noPolicy
}
