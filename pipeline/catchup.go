package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// A CatchUpRequester asks the fan-out stage to take the broadcasts a
// member has not taken yet into their inbox (fanout_feed.go): the API
// calls it when a member reads their inbox, the gateways when a member's
// first connection opens. It compares the member's cursors with the heads
// of their topics' feeds and produces one catch-up record per topic that
// is ahead, keyed by the member's user id; nothing when all are taken,
// which is the common case, so a read costs two small store reads (the
// member's topics and cursors; heads are cached).
//
// It keeps, bounded by MaxUsers, when each member last requested, and
// asks again for a member no more often than MinInterval: a client that
// polls its inbox costs one check a second at most.

// CatchUpStore is what a CatchUpRequester reads.
type CatchUpStore interface {
	Topics(ctx context.Context, userID string) ([]store.Subscription, error)
	FeedCursors(ctx context.Context, userID string) (map[string]int64, error)
	FeedHead(ctx context.Context, topic string) (int64, error)
}

var _ CatchUpStore = store.Store(nil)

// CatchUpConfig configures a CatchUpRequester. Producer and Store are
// required.
type CatchUpConfig struct {
	// Producer produces the catch-up records (the process's client).
	Producer Producer
	// Topics are the topic names. Zero value: topics.WithPrefix("").
	Topics topics.Names
	// Store holds the subscriptions, cursors and feeds.
	Store CatchUpStore
	// Trigger labels the requests (TriggerRead or TriggerConnect). Zero
	// value: TriggerRead.
	Trigger string
	// Logger, Registerer: zero values slog.Default(), metrics.Registry.
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock. Zero value: time.Now.
	Now func() time.Time
	// MinInterval is the least time between two requests for one member
	// (later ones return at once). Zero value: 1 s.
	MinInterval time.Duration
	// HeadTTL is how long a feed head read is used. Zero value: 1 s.
	HeadTTL time.Duration
	// MaxUsers bounds the members whose last request is remembered, and
	// the feed heads cached. Zero value: 100,000.
	MaxUsers int
}

// CatchUpRequester produces catch-up requests. Safe for concurrent use.
type CatchUpRequester struct {
	cfg   CatchUpConfig
	codec Codec
	m     *catchUpMetrics

	mu    sync.Mutex // guards users and heads; a leaf
	users generations[time.Time]
	heads generations[headAt]
}

type headAt struct {
	pos int64
	at  time.Time
}

// NewCatchUpRequester validates cfg.
func NewCatchUpRequester(cfg CatchUpConfig) (*CatchUpRequester, error) {
	switch {
	case cfg.Producer == nil:
		return nil, fmt.Errorf("%w: catch-up: Producer is required", ErrInvalidConfig)
	case cfg.Store == nil:
		return nil, fmt.Errorf("%w: catch-up: Store is required", ErrInvalidConfig)
	}
	if cfg.Topics.IsZero() {
		cfg.Topics = topics.WithPrefix("")
	}
	switch cfg.Trigger {
	case "":
		cfg.Trigger = TriggerRead
	case TriggerRead, TriggerConnect:
	default:
		return nil, fmt.Errorf("%w: catch-up: Trigger %q is not read or connect", ErrInvalidConfig, cfg.Trigger)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MinInterval <= 0 {
		cfg.MinInterval = time.Second
	}
	if cfg.HeadTTL <= 0 {
		cfg.HeadTTL = time.Second
	}
	if cfg.MaxUsers <= 0 {
		cfg.MaxUsers = 100_000
	}
	cfg.Registerer = metrics.Or(cfg.Registerer)
	return &CatchUpRequester{
		cfg: cfg, codec: NewCodec(cfg.Topics), m: newCatchUpMetrics(cfg.Registerer),
		users: newGenerations[time.Time](cfg.MaxUsers),
		heads: newGenerations[headAt](cfg.MaxUsers),
	}, nil
}

// Request asks for the catch-up of userID on each of their topics whose
// feed is ahead of their cursor, and returns once the requests are
// acknowledged by Kafka (or ctx is done). It returns nil at once when
// userID asked less than MinInterval ago.
func (r *CatchUpRequester) Request(ctx context.Context, userID string) error {
	now := r.cfg.Now()
	r.mu.Lock()
	last, ok := r.users.get(userID)
	r.mu.Unlock()
	if ok && now.Sub(last) < r.cfg.MinInterval {
		return nil
	}
	recs, err := r.pending(ctx, userID, now)
	if err == nil {
		err = produceWithin(ctx, r.cfg.Producer, recs)
	}
	if err != nil {
		r.m.requests.WithLabelValues("error").Inc()
		return fmt.Errorf("catch-up of %s: %w", userID, err)
	}
	r.mu.Lock()
	r.users.put(userID, now)
	r.mu.Unlock()
	if len(recs) == 0 {
		r.m.requests.WithLabelValues("none").Inc()
	} else {
		r.m.requests.WithLabelValues("requested").Inc()
	}
	return nil
}

// pending returns the catch-up records of userID's topics that are ahead.
func (r *CatchUpRequester) pending(ctx context.Context, userID string, now time.Time) ([]*kgo.Record, error) {
	subs, err := r.cfg.Store.Topics(ctx, userID)
	if err != nil || len(subs) == 0 {
		return nil, err
	}
	cursors, err := r.cfg.Store.FeedCursors(ctx, userID)
	if err != nil {
		return nil, err
	}
	var out []*kgo.Record
	for _, s := range subs {
		head, err := r.head(ctx, s.Topic, now)
		if err != nil {
			return nil, err
		}
		if head <= cursors[s.Topic] {
			continue
		}
		rec, err := r.codec.Fanout(&FanoutRecord{CatchUp: &CatchUpRecord{Topic: s.Topic, Users: []string{userID}, Trigger: r.cfg.Trigger}})
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// head is topic's feed head, read at most once per HeadTTL.
func (r *CatchUpRequester) head(ctx context.Context, topic string, now time.Time) (int64, error) {
	r.mu.Lock()
	h, ok := r.heads.get(topic)
	r.mu.Unlock()
	if ok && now.Sub(h.at) < r.cfg.HeadTTL {
		return h.pos, nil
	}
	pos, err := r.cfg.Store.FeedHead(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("feed head of %s: %w", topic, err)
	}
	r.mu.Lock()
	r.heads.put(topic, headAt{pos, now})
	r.mu.Unlock()
	return pos, nil
}

// generations is a map bounded by two generations of max/2 entries: when
// the current one is full, it becomes the old one and the old one is
// dropped, so the entries used recently stay and memory stays bounded.
type generations[V any] struct {
	half     int
	cur, old map[string]V
}

func newGenerations[V any](maxEntries int) generations[V] {
	half := max(1, maxEntries/2)
	return generations[V]{half: half, cur: map[string]V{}, old: map[string]V{}}
}

func (g *generations[V]) get(k string) (V, bool) {
	if v, ok := g.cur[k]; ok {
		return v, true
	}
	v, ok := g.old[k]
	return v, ok
}

func (g *generations[V]) put(k string, v V) {
	if _, ok := g.cur[k]; !ok && len(g.cur) >= g.half {
		g.old, g.cur = g.cur, make(map[string]V, g.half)
	}
	g.cur[k] = v
}

type catchUpMetrics struct {
	requests *prometheus.CounterVec
}

func newCatchUpMetrics(reg prometheus.Registerer) *catchUpMetrics {
	return &catchUpMetrics{requests: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Subsystem: "fanout", Name: "catchup_requests_total",
		Help: "Catch-up checks of a member who read their inbox or connected, by result: requested (some feed was ahead: catch-up records produced), none (all taken), error (the store or Kafka failed; the next read asks again).",
	}, []string{"result"}))}
}
