package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// EnricherStore is what the Enricher needs from the store; every
// store.Store satisfies it.
type EnricherStore interface {
	store.Inbox
	store.Preferences
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
	// preferences and claiming event ids, across users; calls for one user
	// stay sequential. Zero value: 8.
	StoreConcurrency int
	// RetryBackoff is the first delay before a batch that failed (store or
	// produce error) is retried; it doubles up to MaxRetryBackoff.
	// Zero values: 200ms and 10s.
	RetryBackoff    time.Duration
	MaxRetryBackoff time.Duration
	// EndTimeout bounds ending a transaction (commit or abort), which is
	// never interrupted by Run's context: a half-ended transaction would
	// leave the client unusable. Zero value: 30s.
	EndTimeout time.Duration

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
		c.StoreConcurrency = 8
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
	return nil
}

// Enricher turns herald.events into inbox notifications and
// herald.deliveries records, exactly once per valid event.
type Enricher struct {
	cfg  EnricherConfig
	log  *slog.Logger
	sess *kgo.GroupTransactSession

	lc        lifecycle
	closeOnce sync.Once
}

// NewEnricher validates cfg, fills its defaults and creates the
// transactional Kafka client (which joins the group in the background).
// Call Run to start consuming and Close to release it.
func NewEnricher(cfg EnricherConfig) (*Enricher, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	opts := ClientOptions(cfg.Brokers, cfg.ClientOptions...)
	opts = append(opts,
		kgo.ConsumerGroup(cfg.Group),
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
	return &Enricher{
		cfg:  cfg,
		log:  cfg.Logger.With("component", "enricher", "group", cfg.Group, "txn_id", cfg.TransactionalID),
		sess: sess,
		lc:   newLifecycle(),
	}, nil
}

// Close stops Run (aborting its open transaction, if any), waits for it to
// return, and closes the Kafka client, leaving the group. It is idempotent
// and safe to call concurrently with Run.
func (e *Enricher) Close() {
	e.lc.stop()
	e.closeClient()
}

func (e *Enricher) closeClient() { e.closeOnce.Do(e.sess.Close) }

// Run consumes herald.events until ctx is done, Close is called or a
// fatal Kafka error occurs, and returns nil in the first two cases. A fatal
// error (the transactional producer was fenced or failed to end a
// transaction) is returned; the Enricher is then closed and the caller
// should exit or build a new one: nothing is lost, uncommitted batches are
// replayed. Each
// polled batch is one transaction: DLQ records, deliveries and push jobs are
// produced and the consumed offsets committed atomically. A batch that hits
// a store or produce error is aborted (the session rewinds to the last
// committed offsets) and retried after a backoff; valid events are never
// skipped.
//
// On return Run has stopped polling, ended (committed or aborted) the
// transaction in progress and closed the client. Run may be called once.
func (e *Enricher) Run(ctx context.Context) error {
	if err := e.lc.begin(); err != nil {
		return err
	}
	defer e.lc.end()
	defer e.closeClient()
	ctx, release := e.lc.runContext(ctx)
	defer release()

	bo := retry.Backoff{Min: e.cfg.RetryBackoff, Max: e.cfg.MaxRetryBackoff}
	for {
		fetches := e.sess.PollRecords(ctx, e.cfg.MaxPollRecords)
		if fetches.IsClientClosed() {
			return ErrClosed
		}
		if ctx.Err() != nil {
			return nil
		}
		var fetchErr error
		fetches.EachError(func(t string, p int32, err error) {
			fetchErr = err
			e.log.Warn("fetch error", "topic", t, "partition", p, "err", err)
		})
		recs := fetches.Records()
		if len(recs) == 0 {
			if fetchErr != nil && !retry.Sleep(ctx, bo.Next()) {
				return nil
			}
			continue
		}

		err := e.runBatch(ctx, recs)
		var fatal *fatalError
		switch {
		case err == nil:
			bo.Reset()
		case errors.As(err, &fatal):
			e.log.Error("enricher stopping on a Kafka transaction error", "err", fatal.err)
			return fmt.Errorf("pipeline: enricher: %w", fatal.err)
		case ctx.Err() != nil:
			return nil
		default:
			d := bo.Next()
			e.log.Warn("batch aborted, retrying from the last committed offsets", "records", len(recs), "backoff", d, "err", err)
			if !retry.Sleep(ctx, d) {
				return nil
			}
		}
	}
}

// fatalError marks errors after which the transactional client cannot go on.
type fatalError struct{ err error }

func (f *fatalError) Error() string { return f.err.Error() }
func (f *fatalError) Unwrap() error { return f.err }

// runBatch enriches recs in one transaction. A non-fatal error means the
// transaction was aborted and the session rewound.
func (e *Enricher) runBatch(ctx context.Context, recs []*kgo.Record) error {
	start := time.Now()
	if err := e.sess.Begin(); err != nil {
		return &fatalError{fmt.Errorf("begin transaction: %w", err)}
	}
	st, err := e.process(ctx, recs)
	if err == nil && e.cfg.beforeEnd != nil {
		err = e.cfg.beforeEnd(ctx)
	}

	// Ending is not interrupted by Run's context (see EndTimeout).
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), e.cfg.EndTimeout)
	defer cancel()
	if err != nil {
		if _, aerr := e.sess.End(endCtx, kgo.TryAbort); aerr != nil {
			return &fatalError{fmt.Errorf("abort transaction after %w: %w", err, aerr)}
		}
		return err
	}
	committed, err := e.sess.End(endCtx, kgo.TryCommit)
	if err != nil {
		return &fatalError{fmt.Errorf("end transaction: %w", err)}
	}
	if !committed {
		// A rebalance revoked partitions mid-batch: the session aborted and
		// rewound. Whoever owns the records now replays them; the store
		// writes already made are idempotent.
		e.log.Info("transaction aborted by a rebalance; batch will be re-consumed", "records", len(recs))
		return nil
	}
	st.publish(time.Since(start), time.Now(), recs)
	return nil
}

// batchStats are the metrics of one batch, published only once its
// transaction committed so that replays are not counted twice.
type batchStats struct {
	rejected, muted, duplicate, noChannel, expired, out, push int
}

func (st *batchStats) publish(took time.Duration, committedAt time.Time, recs []*kgo.Record) {
	metrics.EventsIn.WithLabelValues("kafka").Add(float64(len(recs)))
	add := func(c interface{ Add(float64) }, n int) {
		if n > 0 {
			c.Add(float64(n))
		}
	}
	add(metrics.EventsRejected.WithLabelValues("kafka"), st.rejected)
	add(metrics.EventsDropped.WithLabelValues("muted"), st.muted)
	add(metrics.EventsDropped.WithLabelValues("duplicate"), st.duplicate)
	add(metrics.EventsDropped.WithLabelValues("no_channel"), st.noChannel)
	add(metrics.PushSuppressed.WithLabelValues("expired"), st.expired)
	add(metrics.NotificationsOut, st.out)
	add(metrics.PushJobs.WithLabelValues("enricher"), st.push)
	metrics.EnrichBatchSeconds.Observe(took.Seconds())
	for _, r := range recs {
		metrics.EnrichLatencySeconds.Observe(committedAt.Sub(r.Timestamp).Seconds())
	}
}

// item is one valid event of a batch.
type item struct {
	rec   *kgo.Record
	ev    herald.Event
	route herald.Route
	keep  bool // survives routing: claim it, then store or push it
}

// process does the work of one batch inside the open transaction: decode,
// route, claim, append, produce and flush. It returns on the first error.
func (e *Enricher) process(ctx context.Context, recs []*kgo.Record) (batchStats, error) {
	var st batchStats
	now := e.cfg.Now()
	out := make([]*kgo.Record, 0, len(recs))

	items := make([]item, 0, len(recs))
	prefs := map[string]*herald.Preferences{}
	for _, r := range recs {
		ev, err := herald.DecodeEvent(r.Value, r.Timestamp)
		if err != nil {
			st.rejected++
			out = append(out, e.dlqRecord(r, err))
			continue
		}
		items = append(items, item{rec: r, ev: ev})
		prefs[ev.UserID] = nil
	}

	users := make([]string, 0, len(prefs))
	for u := range prefs {
		users = append(users, u)
	}
	loaded := make([]herald.Preferences, len(users))
	err := forEachGroup(ctx, e.cfg.StoreConcurrency, len(users), func(ctx context.Context, i int) error {
		p, err := e.cfg.Store.GetPreferences(ctx, users[i])
		if err != nil {
			return fmt.Errorf("get preferences of %s: %w", users[i], err)
		}
		loaded[i] = p
		return nil
	})
	if err != nil {
		return st, err
	}
	for i, u := range users {
		prefs[u] = &loaded[i]
	}

	// Route; keep what survives, grouped by user for the claims.
	var byUser [][]int
	userIdx := map[string]int{}
	for i := range items {
		it := &items[i]
		p := prefs[it.ev.UserID]
		it.route = p.Route(&it.ev, now)
		switch {
		case it.route.Drop && p.Muted(it.ev.Type):
			st.muted++
			continue
		case it.route.Drop:
			st.noChannel++
			continue
		case !it.route.InApp && expired(&it.ev, now):
			// Push-only and already past its TTL: nothing to do.
			st.expired++
			continue
		}
		it.keep = true
		g, ok := userIdx[it.ev.UserID]
		if !ok {
			g = len(byUser)
			userIdx[it.ev.UserID] = g
			byUser = append(byUser, nil)
		}
		byUser[g] = append(byUser[g], i)
	}

	// Push-only events never reach the inbox, so their dedup is a claim of
	// the event id by this record: a replay of the same record (after an
	// abort or a crash) gets its claim back, another record with the same
	// event id is a duplicate. Inbox events need no claim (one round-trip
	// less per event): see the Append below.
	claimed := make([]bool, len(items))
	err = forEachGroup(ctx, e.cfg.StoreConcurrency, len(byUser), func(ctx context.Context, g int) error {
		for _, i := range byUser[g] {
			it := &items[i]
			if it.route.InApp {
				claimed[i] = true
				continue
			}
			ok, err := e.cfg.Store.Claim(ctx, it.ev.UserID, it.ev.ID, sourceToken(it.rec))
			if err != nil {
				return fmt.Errorf("claim %s/%s: %w", it.ev.UserID, it.ev.ID, err)
			}
			claimed[i] = ok
		}
		return nil
	})
	if err != nil {
		return st, err
	}

	var ns []herald.Notification
	var nsItem []int
	for i := range items {
		it := &items[i]
		if !it.keep {
			continue
		}
		if !claimed[i] {
			st.duplicate++
			continue
		}
		if it.route.InApp {
			n := herald.NewNotification(&it.ev)
			n.ID = herald.SourceID(it.ev.CreatedAt, sourceToken(it.rec))
			ns = append(ns, n)
			nsItem = append(nsItem, i)
			continue
		}
		r, err := e.pushRecord(&it.ev)
		if err != nil {
			return st, err
		}
		out = append(out, r)
		st.push++
	}

	if len(ns) > 0 {
		res, err := e.cfg.Store.Append(ctx, ns)
		if err != nil {
			return st, fmt.Errorf("append %d notifications: %w", len(ns), err)
		}
		if len(res) != len(ns) {
			return st, fmt.Errorf("append returned %d results for %d notifications", len(res), len(ns))
		}
		for j, r := range res {
			// The stored copy carries the ID of the record that created it.
			// Created=false with our ID: a previous attempt of this very
			// record stored it and its transaction did not commit, so
			// producing it again is what makes delivery exactly once.
			// Another ID: a different record with the same event id, a
			// duplicate.
			if !r.Created && r.Notification.ID != ns[j].ID {
				st.duplicate++
				continue
			}
			rec, err := e.deliveryRecord(r.Notification, &items[nsItem[j]])
			if err != nil {
				return st, err
			}
			out = append(out, rec)
			st.out++
		}
	}

	if err := e.produce(ctx, out); err != nil {
		return st, err
	}
	return st, nil
}

// produce sends rs in the open transaction and waits until every one is
// acknowledged (Flush skips the linger).
func (e *Enricher) produce(ctx context.Context, rs []*kgo.Record) error {
	if len(rs) == 0 {
		return nil
	}
	var mu sync.Mutex
	var first error
	for _, r := range rs {
		e.sess.Produce(ctx, r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	if err := e.sess.Client().Flush(ctx); err != nil {
		return fmt.Errorf("flush: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if first != nil {
		return fmt.Errorf("produce: %w", first)
	}
	return nil
}

func expired(ev *herald.Event, now time.Time) bool {
	exp := ev.ExpiresAt()
	return !exp.IsZero() && now.After(exp)
}

// sourceToken identifies a record for Claim: replays of one record share it.
func sourceToken(r *kgo.Record) string {
	return r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
}

// dlqRecord is r as received, plus the reason and its origin.
func (e *Enricher) dlqRecord(r *kgo.Record, reason error) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(r.Headers)+4)
	h = append(h, r.Headers...)
	h = append(h,
		kgo.RecordHeader{Key: HeaderError, Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
	)
	return &kgo.Record{Topic: e.cfg.Topics.EventsDLQ, Key: r.Key, Value: r.Value, Headers: h}
}

func (e *Enricher) deliveryRecord(n herald.Notification, it *item) (*kgo.Record, error) {
	v, err := json.Marshal(n)
	if err != nil {
		return nil, fmt.Errorf("encode notification %s/%d: %w", it.ev.UserID, n.Seq, err)
	}
	h := make([]kgo.RecordHeader, 1, 3)
	h[0] = kgo.RecordHeader{Key: HeaderPush, Value: []byte(it.route.Push.String())}
	if it.ev.CollapseKey != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderCollapseKey, Value: []byte(it.ev.CollapseKey)})
	}
	if exp := it.ev.ExpiresAt(); !exp.IsZero() {
		h = append(h, kgo.RecordHeader{Key: HeaderExpiresAt, Value: []byte(exp.Format(time.RFC3339))})
	}
	return &kgo.Record{Topic: e.cfg.Topics.Deliveries, Key: []byte(it.ev.UserID), Value: v, Headers: h}, nil
}

// pushRecord is the push job of a push-only event (in-app off): it has no
// inbox entry, hence no seq.
func (e *Enricher) pushRecord(ev *herald.Event) (*kgo.Record, error) {
	job := herald.PushJob{
		UserID:       ev.UserID,
		Notification: herald.NewNotification(ev),
		CollapseKey:  ev.CollapseKey,
		ExpiresAt:    ev.ExpiresAt(),
	}
	v, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("encode push job %s/%s: %w", ev.UserID, ev.ID, err)
	}
	return &kgo.Record{Topic: e.cfg.Topics.Push, Key: []byte(ev.UserID), Value: v}, nil
}

// forEachGroup runs fn(ctx, 0..n-1) on up to limit goroutines and returns
// the first error; the others see their context canceled. It returns once
// every call has returned.
func forEachGroup(ctx context.Context, limit, n int, fn func(context.Context, int) error) error {
	if n == 0 {
		return nil
	}
	if limit <= 1 || n == 1 {
		for i := 0; i < n; i++ {
			if err := fn(ctx, i); err != nil {
				return err
			}
		}
		return nil
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(limit, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				if err := fn(ctx, i); err != nil {
					cancel(err)
				}
			}
		}()
	}
feed:
	for i := 0; i < n; i++ {
		select {
		case work <- i:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}
