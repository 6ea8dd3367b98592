package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/errclass"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/heraldhq/herald/policy"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/time/rate"
)

// The fan-out stage expands a multi-recipient event (user_ids, or an
// audience: the members of a topic) into one event per recipient, keyed by
// the recipient's user id in herald.events, where the enricher treats
// each like any event: per recipient preferences, policy, dedup by (user,
// event id), seqs, push. It is its own topic (herald.fanout) and consumer
// group rather than a stage of the enricher, so that a broadcast never
// holds up a batch of ordinary events: the enricher only forwards the
// event, and the recipients reach herald.events at a bounded rate
// (Config.Rate), interleaved with ordinary traffic.
//
// Exactly once, page by page: a herald.fanout record is one page of
// recipients (PageSize: the next ones of user_ids, or the audience's
// members after the last user id done). Its transaction produces the
// page's events, the continuation record (the same event, the position
// after the page) while recipients remain, and the consumed offset. A crash
// anywhere aborts the transaction and the page is expanded again from the
// same position, to the same recipients; a page that committed is never
// expanded again. The enricher deduplicates by (user, event id) anyway,
// so even a page expanded twice by a replayed upstream duplicate reaches
// each recipient once.
//
// An audience's members are read at expansion time, page by page in user
// id order, and only members who subscribed at or before the event's
// created_at receive it (store.Subscription.SubscribedAt), so a user who
// subscribes during a broadcast does not get it, whatever page they fall
// in. A member who unsubscribes before their page is reached does not
// get it either.

// FanoutStore is what the fan-out stage needs from the store: the
// audiences' members and their feeds.
type FanoutStore interface {
	store.Subscriptions
	store.Feeds
}

// OnlineMembers lists the members of a topic connected to a gateway now
// (delivery.Gateway in one process, delivery/cluster.Cluster across
// gateways): the live path of a large audience.
type OnlineMembers interface {
	OnlineMembers(ctx context.Context, topic string) ([]string, error)
}

// FanoutDevices is where the fan-out stage finds which members of a large
// audience have a device to push to; store.Devices satisfies it.
type FanoutDevices interface {
	Devices(ctx context.Context, userID string) ([]herald.Device, error)
}

var (
	_ FanoutStore   = store.Store(nil)
	_ FanoutDevices = store.Devices(nil)
)

// FanoutConfig configures a Fanout. Store, TransactionalID and a way to
// reach the brokers are required.
type FanoutConfig struct {
	// Brokers are the seed brokers; may be empty if ClientOptions has them.
	Brokers []string
	// ClientOptions are extra franz-go options (TLS, SASL, timeouts).
	ClientOptions []kgo.Opt
	// Group is the consumer group. Zero value: "herald-fanout".
	Group string
	// TransactionalID identifies this instance's transactional producer:
	// unique per live instance, stable across its restarts (the enricher
	// role uses its own id + "-fanout"). Required.
	TransactionalID string
	// InstanceID makes the member static (see EnricherConfig). Zero
	// value: dynamic membership.
	InstanceID string
	// Topics are the topic names. Zero value: topics.WithPrefix("").
	Topics topics.Names
	// Store holds the audiences' members and feeds. Required.
	Store FanoutStore
	// Threshold is the member count from which an audience's event takes
	// the large-audience path (fanout_feed.go). Zero value: 10,000.
	Threshold int64
	// Online lists the connected members of a topic, who take a large
	// audience's broadcast at once. nil: none are known, and connected
	// members take it when they next read or connect.
	Online OnlineMembers
	// Broadcasts, when set, is given each large audience's broadcast once
	// it is in the feed, to send it live to the connected members who
	// asked for it, ahead of their inbox copies (fanout_live.go). nil: no
	// live broadcasts.
	Broadcasts LiveBroadcaster
	// LiveHold is how long the catch-up of a large audience's connected
	// members waits once its broadcast was sent live (Broadcasts reached
	// a gateway), so that the gateways write the broadcast frames before
	// the members' inbox copies take the machine: the batch's transaction
	// commits, and its catch-up records reach the members, that much
	// later, and those inbox copies come that much later (a connected
	// member who did not ask for live broadcasts waits as long). One wait
	// per batch, whatever its broadcasts; Close or the end of Run's
	// context ends it at once (the batch then commits, or is cut off and
	// expanded again, as any batch at a shutdown). Zero value: 1 s;
	// negative: no wait.
	LiveHold time.Duration
	// Policy is the notification policy in force (the enricher's): a
	// broadcast whose type it governs is not sent live, since the policy
	// decides per member. nil: no policy.
	Policy func() *policy.Policy
	// Devices, when set, makes a large audience's broadcast page through
	// the members (reads only) and take it into the inbox of each member
	// with a device, who is pushed to as for any notification. nil: no
	// push of large-audience broadcasts.
	Devices FanoutDevices
	// Concurrency bounds the store calls in flight for one batch's
	// catch-ups and device lookups. Zero value: 16.
	Concurrency int
	// Logger, Registerer: as the Enricher's. Zero values: slog.Default(),
	// metrics.Registry.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock of the lag metric. Zero value: time.Now.
	Now func() time.Time
	// PageSize is the most recipients one record expands (one store read
	// of members, one transaction). Zero value: 500.
	PageSize int
	// Rate bounds the recipients produced per second, across pages and
	// broadcasts (bursts of one page). Zero value: 2000.
	Rate float64
	// MaxPollRecords bounds the records (pages) of one transaction. Zero
	// value: 8.
	MaxPollRecords int
	// RetryBackoff, MaxRetryBackoff, EndTimeout: as the Enricher's. Zero
	// values: 200ms, 10s, 30s.
	RetryBackoff, MaxRetryBackoff, EndTimeout time.Duration

	// beforeEnd, for tests, runs after a batch's records were produced,
	// right before the commit; an error aborts the batch.
	beforeEnd func(ctx context.Context) error
}

func (c *FanoutConfig) setDefaults() error {
	switch {
	case c.Store == nil:
		return fmt.Errorf("%w: fan-out: Store is required", ErrInvalidConfig)
	case c.TransactionalID == "":
		return fmt.Errorf("%w: fan-out: TransactionalID is required", ErrInvalidConfig)
	case len(c.Brokers) == 0 && len(c.ClientOptions) == 0:
		return fmt.Errorf("%w: fan-out: Brokers (or ClientOptions with seed brokers) required", ErrInvalidConfig)
	}
	if c.Group == "" {
		c.Group = "herald-fanout"
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
	if c.PageSize <= 0 {
		c.PageSize = 500
	}
	if c.Threshold <= 0 {
		c.Threshold = 10_000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 16
	}
	if c.LiveHold == 0 {
		c.LiveHold = time.Second
	}
	if c.Rate <= 0 {
		c.Rate = 2000
	}
	if c.MaxPollRecords <= 0 {
		c.MaxPollRecords = 8
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
	c.Registerer = metrics.Or(c.Registerer)
	return nil
}

// Fanout is the fan-out stage: a transactional consumer of herald.fanout.
type Fanout struct {
	cfg     FanoutConfig
	log     *slog.Logger
	sess    *kgo.GroupTransactSession
	codec   Codec
	group   *membership
	limiter *rate.Limiter
	m       *fanoutMetrics

	closeOnce sync.Once
	closing   chan struct{} // closed by Close: ends a LiveHold at once
	running   sync.Mutex    // held by Run
}

// NewFanout validates cfg and creates the transactional client.
func NewFanout(cfg FanoutConfig) (*Fanout, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	log := cfg.Logger.With("component", "fanout", "group", cfg.Group, "txn_id", cfg.TransactionalID)
	group, err := newMembership("fanout", cfg.Group, cfg.InstanceID, log)
	if err != nil {
		return nil, err
	}
	opts := ClientOptions(cfg.Brokers, cfg.ClientOptions...)
	opts = append(opts, group.opts(nil, nil, nil)...)
	opts = append(opts,
		kgo.RecordPartitioner(eventsPartitioner),
		kgo.ConsumeTopics(cfg.Topics.Fanout),
		kgo.TransactionalID(cfg.TransactionalID),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return nil, fmt.Errorf("%w: fan-out: %w", ErrInvalidConfig, err)
	}
	return &Fanout{
		cfg: cfg, log: log, sess: sess, codec: NewCodec(cfg.Topics), group: group,
		limiter: rate.NewLimiter(rate.Limit(cfg.Rate), cfg.PageSize),
		m:       newFanoutMetrics(cfg.Registerer), closing: make(chan struct{}),
	}, nil
}

// Ready reports whether the stage is consuming (as Enricher.Ready).
func (f *Fanout) Ready() error { return f.group.ready() }

// Close stops Run and closes the client, leaving the group. Idempotent.
func (f *Fanout) Close() {
	f.closeOnce.Do(func() {
		close(f.closing)
		f.group.leave(f.sess.Client())
		f.sess.Close()
	})
}

// Run consumes herald.fanout until ctx is done or Close is called (nil),
// or a fatal Kafka error (returned; build a new Fanout). Run may be
// called once.
func (f *Fanout) Run(ctx context.Context) error {
	if !f.running.TryLock() {
		return ErrRunning
	}
	defer f.running.Unlock()
	defer f.Close() //nolint:contextcheck // closing outlives Run's context: leaving the group is bounded by its own timeout
	f.group.setRunning(true)
	defer f.group.setRunning(false)
	registerProducer(ctx, f.sess, f.log)
	loop := pollLoop{
		poll: f.sess.PollRecords,
		max:  f.cfg.MaxPollRecords,
		handle: func(ctx context.Context, fetches kgo.Fetches) error {
			return f.runBatch(ctx, fetches.Records())
		},
		log:     f.log,
		backoff: retry.Backoff{Min: f.cfg.RetryBackoff, Max: f.cfg.MaxRetryBackoff},
	}
	err := loop.run(ctx)
	if errors.Is(err, ErrClosed) {
		return nil
	}
	if errclass.IsFatal(err) {
		f.log.Error("fan-out stopping on a Kafka transaction error", "err", err)
		return fmt.Errorf("pipeline: fan-out: %w", err)
	}
	return err
}

// page is what one herald.fanout record expanded to.
type page struct {
	recipients int
	done       bool // the last page: the broadcast is complete
	feed       bool // the first record of a large audience: put in its feed
	created    time.Time
	hold       time.Time // sent live: the batch commits no sooner (LiveHold)
}

// runBatch expands each record's page and runs the batch's catch-ups in
// one transaction; the catch-ups' cursors advance once it committed.
func (f *Fanout) runBatch(ctx context.Context, recs []*kgo.Record) error {
	if err := f.sess.Begin(); err != nil {
		return errclass.Fatal(fmt.Errorf("begin transaction: %w", err))
	}
	var out []*kgo.Record
	var pages []page
	var catchUps []*CatchUpRecord
	var rejected int
	var err error
	for _, r := range recs {
		fr, derr := DecodeFanoutRecord(r)
		if derr != nil {
			// An undecodable record is dead-lettered, as received.
			out = append(out, f.codec.EventDLQ(r, derr))
			rejected++
			continue
		}
		if fr.CatchUp != nil {
			catchUps = append(catchUps, fr.CatchUp)
			continue
		}
		var rs []*kgo.Record
		var pg page
		if rs, pg, err = f.expand(ctx, fr); err != nil {
			break
		}
		out = append(out, rs...)
		pages = append(pages, pg)
	}
	if err == nil {
		f.holdFor(ctx, pages)
	}
	var cb *catchUpBatch
	if err == nil && len(catchUps) > 0 {
		cb, err = f.catchUp(ctx, catchUps)
		if err == nil {
			out = append(out, cb.out...)
		}
	}
	if err == nil {
		err = produceFlush(ctx, f.sess, out)
	}
	if err == nil && f.cfg.beforeEnd != nil {
		err = f.cfg.beforeEnd(ctx)
	}
	committed, err := endTxn(ctx, f.sess, f.cfg.EndTimeout, err)
	if err != nil {
		return err
	}
	if !committed {
		f.log.Info("transaction aborted by a rebalance; pages will be expanded again", "records", len(recs))
		return nil
	}
	now := f.cfg.Now()
	for _, pg := range pages {
		f.m.pages.Inc()
		f.m.recipients.Add(float64(pg.recipients))
		if pg.feed {
			f.m.feedItems.Inc()
		}
		if pg.done {
			f.m.lag.Observe(now.Sub(pg.created).Seconds())
			f.m.broadcasts.Inc()
		}
	}
	if rejected > 0 {
		f.m.rejected.Add(float64(rejected))
	}
	if cb != nil {
		f.committed(ctx, cb, now)
	}
	return nil
}

// expand returns the records of fr's page: one event per recipient and,
// unless it is the last page, the continuation. A large audience's event
// goes to its feed instead (fanout_feed.go).
func (f *Fanout) expand(ctx context.Context, fr FanoutRecord) ([]*kgo.Record, page, error) {
	ev := fr.Event
	if ev.Audience != "" {
		if fr.Feed > 0 {
			return f.pushPage(ctx, fr)
		}
		if fr.After == "" && fr.Sent == 0 {
			n, err := f.cfg.Store.MemberCount(ctx, ev.Audience)
			if err != nil {
				return nil, page{}, fmt.Errorf("member count of %s: %w", ev.Audience, err)
			}
			if n >= f.cfg.Threshold {
				return f.toFeed(ctx, fr)
			}
		}
	}
	next := fr
	var ids []string
	var done bool
	if len(ev.UserIDs) > 0 {
		end := min(fr.Next+f.cfg.PageSize, len(ev.UserIDs))
		ids = ev.UserIDs[fr.Next:end]
		next.Next = end
		done = end == len(ev.UserIDs)
	} else {
		ms, err := f.cfg.Store.Members(ctx, ev.Audience, fr.After, f.cfg.PageSize)
		if err != nil {
			return nil, page{}, fmt.Errorf("members of %s after %q: %w", ev.Audience, fr.After, err)
		}
		for _, m := range ms {
			if !m.SubscribedAt.After(ev.CreatedAt) {
				ids = append(ids, m.UserID)
			}
		}
		if len(ms) > 0 {
			next.After = ms[len(ms)-1].UserID
		}
		done = len(ms) < f.cfg.PageSize
	}
	if err := f.limiter.WaitN(ctx, max(1, len(ids))); err != nil {
		return nil, page{}, err
	}
	out := make([]*kgo.Record, 0, len(ids)+1)
	for _, id := range ids {
		one := ev
		one.UserID, one.UserIDs, one.Audience = id, nil, ""
		rec, err := f.codec.Event(&one, time.Time{})
		if err != nil {
			return nil, page{}, err
		}
		out = append(out, rec)
	}
	if !done {
		next.Sent = fr.Sent + int64(len(ids))
		rec, err := f.codec.Fanout(&next)
		if err != nil {
			return nil, page{}, err
		}
		out = append(out, rec)
	}
	return out, page{recipients: len(ids), done: done, created: ev.CreatedAt}, nil
}

// produceFlush produces rs in the session's open transaction and waits
// for every acknowledgement (as Enricher.produce).
func produceFlush(ctx context.Context, sess *kgo.GroupTransactSession, rs []*kgo.Record) error {
	if len(rs) == 0 {
		return nil
	}
	var mu sync.Mutex
	var first error
	for _, r := range rs {
		sess.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	if err := sess.Client().Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if first != nil {
		return fmt.Errorf("produce: %w", first)
	}
	return nil
}

// fanoutMetrics are the fan-out stage's series, counted once committed.
type fanoutMetrics struct {
	recipients, pages, broadcasts, rejected prometheus.Counter
	lag                                     prometheus.Histogram
	feedItems, materialized                 prometheus.Counter
	cursorFailures                          prometheus.Counter
	catchUps                                *prometheus.CounterVec
	deliveryLag                             *prometheus.HistogramVec
	livePublished                           *prometheus.CounterVec
	// liveDelay is observed at the publish, not at the commit.
	liveDelay prometheus.Histogram
	liveHeld  prometheus.Histogram
}

func newFanoutMetrics(reg prometheus.Registerer) *fanoutMetrics {
	c := func(name, help string) prometheus.Counter {
		return metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{Namespace: "herald", Subsystem: "fanout", Name: name, Help: help}))
	}
	return &fanoutMetrics{
		recipients:     c("recipients_total", "Recipients a multi-recipient event was expanded to (one event each in herald.events)."),
		pages:          c("pages_total", "Pages of recipients expanded (one herald.fanout record each)."),
		broadcasts:     c("events_total", "Multi-recipient events whose last page was expanded."),
		rejected:       c("rejected_total", "herald.fanout records that could not be decoded, dead-lettered to herald.events.dlq."),
		feedItems:      c("feed_items_total", "Broadcasts to a large audience written to its topic's feed (once each) instead of fanned out on write."),
		materialized:   c("materialized_total", "Broadcasts of a feed taken into a member's inbox by a catch-up (one event each in herald.events)."),
		cursorFailures: c("cursor_failures_total", "Feed cursors that could not be advanced after a catch-up committed (harmless: the next catch-up produces those broadcasts again and the inbox drops the duplicates)."),
		catchUps: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "fanout", Name: "catchups_total",
			Help: "Catch-ups of a member on one feed, by trigger: live (a large broadcast, connected member), push (a large broadcast, member with a device), read (the member read their inbox), connect (the member connected).",
		}, []string{"trigger"})),
		deliveryLag: metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "fanout", Name: "broadcast_delivery_lag_seconds",
			Help:    "Time from a large-audience broadcast's created_at to the commit of its event for one member, by trigger (live: connected members; read and connect: members who came back later).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 26),
		}, []string{"trigger"})),
		livePublished: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "fanout", Name: "broadcasts_published_total",
			Help: "Large-audience broadcasts offered for live delivery once in their feed, by result (published; governed: the policy governs the type, not sent live; error: the publish failed, members take it from their inbox).",
		}, []string{"result"})),
		liveDelay: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "fanout", Name: "broadcast_publish_delay_seconds",
			Help:    "Time from a large-audience broadcast's created_at to its live publish to the gateways having returned (intake, enricher, fan-out, feed write and the publish).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		})),
		liveHeld: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "fanout", Name: "live_hold_seconds",
			Help:    "How long a batch with a broadcast sent live waited before its commit, so that the broadcast frames go out ahead of the connected members' inbox copies (--fanout-live-hold).",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 12),
		})),
		lag: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "fanout", Name: "lag_seconds",
			Help:    "Time from a multi-recipient event's created_at to the commit of its last page: how long its last recipient waited for the fan-out.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 16),
		})),
	}
}
