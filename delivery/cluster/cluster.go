package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery"
	"github.com/heraldhq/herald/internal/conn"
	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/internal/redisguard"
)

// DefaultKeyPrefix prefixes every Redis key the cluster uses. With it the
// gateway channels are exactly gw:<id>; with any other prefix they are
// <prefix>gw:<id>, so that deployments sharing a Redis stay apart.
const DefaultKeyPrefix = redisguard.DefaultPrefix

// Local is this process's gateway as the cluster uses it;
// *delivery.Gateway implements it.
type Local interface {
	// Deliver queues n to the user's connections here without blocking.
	Deliver(ctx context.Context, userID string, n herald.Notification) (online bool, err error)
	// PublishUnread queues an unread count to the user's connections here.
	PublishUnread(ctx context.Context, userID string, unread int64)
	// Present reports whether the user has a registered connection here.
	Present(userID string) bool
	// LocalUsers calls fn for every present user, holding no lock.
	LocalUsers(fn func(userID string))
}

var (
	_ Local                    = (*delivery.Gateway)(nil)
	_ delivery.PresenceHook    = (*Cluster)(nil)
	_ delivery.UnreadPublisher = (*Cluster)(nil)
)

// Config configures a Cluster. Zero values mean the documented default.
type Config struct {
	// Redis is the client to use; the caller owns it (Close does not close
	// it). Give it ContextTimeoutEnabled so that Timeout also bounds a
	// stalled read. One of Redis, Conn.URL or URL is required.
	Redis *redis.Client
	// Conn (URL, password, TLS) is used when Redis is nil: the Cluster
	// creates its own client with Conn.Client and closes it in Close.
	Conn conn.Redis
	// URL ("redis://[:password@]host:port/db") is shorthand for Conn.URL,
	// used when Conn.URL is empty.
	URL string
	// GatewayID names this gateway in presence entries and its channel
	// gw:<id>. Required: 1-128 characters of A-Z a-z 0-9 . _ : @ -, unique
	// in the fleet (two gateways sharing an id would erase each other's
	// presence).
	GatewayID string
	// Local is this process's gateway. nil means none (an API process that
	// only publishes unread counts), or one bound later with Attach: the
	// gateway needs the Cluster in its own Config first.
	Local Local
	// KeyPrefix prefixes the Redis keys; "" means DefaultKeyPrefix. Every
	// gateway of a fleet must use the same.
	KeyPrefix string
	// PresenceTTL is how long a presence entry outlives its last refresh,
	// hence how long a crashed gateway may still be listed as holding its
	// users; 0 means 30 s. Every gateway of a fleet should use the same.
	PresenceTTL time.Duration
	// Heartbeat is how often every local user's presence entry is
	// refreshed, and how long the subscription may stay silent before it is
	// pinged; 0 means 10 s. It must be shorter than PresenceTTL; the
	// difference is the clock skew tolerated between gateways.
	Heartbeat time.Duration
	// Timeout bounds each Redis call (a route in Deliver or PublishUnread,
	// one presence pipeline); 0 means 1 s.
	Timeout time.Duration
	// MaxPending bounds the users whose presence change waits to be written
	// to Redis; past it changes are dropped, a full re-announce follows,
	// and departures expire by PresenceTTL. 0 means 65536.
	MaxPending int
	// BatchSize is how many users one presence pipeline carries; 0 means
	// 500.
	BatchSize int
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the cluster's collectors; nil means
	// metrics.Registry. Collectors already registered there by another
	// component are shared, not duplicated.
	Registerer prometheus.Registerer
}

// Errors of the Cluster.
var (
	// ErrInvalidConfig wraps every reason New refuses a Config.
	ErrInvalidConfig = errors.New("cluster: invalid config")
	// ErrClosed is returned by Run after Close; it wraps
	// lifecycle.ErrClosed.
	ErrClosed = fmt.Errorf("cluster: %w", lifecycle.ErrClosed)
	// ErrRunning is returned by a second call to Run; it wraps
	// lifecycle.ErrRunning.
	ErrRunning = fmt.Errorf("cluster: Run called twice: %w", lifecycle.ErrRunning)
	// ErrNoLocal is returned by Run when no gateway is attached.
	ErrNoLocal = errors.New("cluster: no local gateway (Config.Local or Attach)")
	// ErrAttached is returned by Attach when a gateway is already set.
	ErrAttached = errors.New("cluster: a local gateway is already attached")
)

// Cluster connects a gateway to the rest of the fleet through Redis: it
// registers the gateway's users in the presence registry, routes
// notifications and unread counts to the gateways holding a user, and
// receives those routed to this one. It implements pipeline.Deliverer,
// api.UnreadPublisher, delivery.UnreadPublisher, delivery.PresenceHook and
// delivery.MembershipHook, and mirrors the gateway's memberships for
// OnlineMembers (memberships.go).
//
// Locks: pmu (pending presence changes), psMu (the current subscription)
// and wmu (the membership entries written) are leaves; no code path holds
// two of them. The Run/Close
// protocol is life's (internal/lifecycle), which takes no lock of ours.
type Cluster struct {
	cfg        Config
	log        *slog.Logger
	m          *clusterMetrics
	rdb        *redis.Client
	ownsClient bool
	prefix     redisguard.Prefix
	channel    string // this gateway's channel
	bcChannel  string // every gateway's: live broadcasts (broadcast.go)
	chanPrefix string // channel of gateway X = chanPrefix + X
	local      atomic.Pointer[localRef]

	// Pending presence changes, written to Redis by the presence loop.
	pmu     sync.Mutex
	dirty   map[string]struct{}
	pclosed bool
	wake    chan struct{}      // cap 1: dirty is not empty
	resync  chan struct{}      // cap 1: re-announce every local user
	syncReq chan chan struct{} // flush dirty now and answer (tests)
	// hbFailed: the last heartbeat did not refresh every user, whose
	// entries may expire before the next; that one asks for position
	// checks as a re-announce does. Only the presence loop uses it.
	hbFailed bool

	psMu sync.Mutex
	ps   *redis.PubSub

	// written: per local user, the topics whose membership entry this
	// gateway last wrote (memberships.go), so that a topic dropped or a
	// user gone can be removed.
	wmu     sync.Mutex
	written map[string][]string
	reads   atomic.Uint64 // OnlineMembers calls, to prune now and then

	life      lifecycle.Lifecycle // Run once; Close stops it
	closeOnce sync.Once
	closeErr  error

	// routeDown: after a failed route, Deliver and PublishUnread skip
	// Redis for a second, so that a Redis that hangs costs the router one
	// Timeout per second, not one per record.
	routeDown redisguard.Cooldown

	redisLog   redisguard.LogLimiter
	messageLog redisguard.LogLimiter
}

type localRef struct{ Local }

// New validates cfg and fills its defaults. It does no I/O: a Redis that
// is down is found (and retried) by Run, Deliver and PublishUnread.
func New(cfg Config) (*Cluster, error) {
	if err := ValidGatewayID(cfg.GatewayID); err != nil {
		return nil, err
	}
	prefix := redisguard.Prefix(cfg.KeyPrefix)
	cfg.KeyPrefix = prefix.String()
	if cfg.PresenceTTL <= 0 {
		cfg.PresenceTTL = 30 * time.Second
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = min(10*time.Second, cfg.PresenceTTL/3)
	}
	if cfg.Heartbeat >= cfg.PresenceTTL {
		return nil, fmt.Errorf("%w: Heartbeat %v must be shorter than PresenceTTL %v", ErrInvalidConfig, cfg.Heartbeat, cfg.PresenceTTL)
	}
	if cfg.PresenceTTL < time.Millisecond {
		return nil, fmt.Errorf("%w: PresenceTTL %v is below Redis's millisecond resolution", ErrInvalidConfig, cfg.PresenceTTL)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 65536
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 500
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &Cluster{
		cfg:     cfg,
		log:     cfg.Logger.With("component", "cluster", "gateway", cfg.GatewayID),
		m:       newClusterMetrics(cfg.Registerer),
		rdb:     cfg.Redis,
		prefix:  prefix,
		dirty:   map[string]struct{}{},
		written: map[string][]string{},
		wake:    make(chan struct{}, 1),
		resync:  make(chan struct{}, 1),
		syncReq: make(chan chan struct{}),
	}
	if c.rdb == nil {
		rc := cfg.Conn
		if rc.URL == "" {
			rc.URL = cfg.URL
		}
		if rc.URL == "" {
			return nil, fmt.Errorf("%w: Redis or URL is required", ErrInvalidConfig)
		}
		rdb, err := rc.Client()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
		}
		c.rdb, c.ownsClient = rdb, true
	}
	c.chanPrefix = "gw:"
	if !prefix.Default() {
		c.chanPrefix = prefix.String() + "gw:"
	}
	c.channel = c.chanPrefix + cfg.GatewayID
	c.bcChannel = "broadcasts"
	if !prefix.Default() {
		c.bcChannel = prefix.String() + "broadcasts"
	}
	if cfg.Local != nil {
		c.local.Store(&localRef{cfg.Local})
	}
	return c, nil
}

// ValidGatewayID reports whether id can be a Config.GatewayID: 1-128
// characters of A-Z a-z 0-9 . _ : @ -. The error wraps ErrInvalidConfig.
func ValidGatewayID(id string) error {
	if id == "" || len(id) > 128 {
		return fmt.Errorf("%w: GatewayID must be 1-128 characters, got %q", ErrInvalidConfig, id)
	}
	for i := 0; i < len(id); i++ {
		switch b := id[i]; {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9',
			b == '.', b == '_', b == ':', b == '@', b == '-':
		default:
			return fmt.Errorf("%w: GatewayID may only contain A-Z a-z 0-9 . _ : @ -, found %q", ErrInvalidConfig, b)
		}
	}
	return nil
}

// Attach binds this process's gateway when it could not be given in
// Config.Local (the gateway's Config needs the Cluster first). Call it
// before Run and before the router starts delivering.
func (c *Cluster) Attach(l Local) error {
	if l == nil {
		return ErrNoLocal
	}
	if !c.local.CompareAndSwap(nil, &localRef{l}) {
		return ErrAttached
	}
	return nil
}

func (c *Cluster) localOf() Local {
	if r := c.local.Load(); r != nil {
		return r.Local
	}
	return nil
}

// Channel is this gateway's Redis channel (gw:<id>).
func (c *Cluster) Channel() string { return c.channel }

// Ping reports whether Redis answers, for /readyz.
func (c *Cluster) Ping(ctx context.Context) error {
	return c.rdb.Ping(ctx).Err()
}

// Run keeps this gateway's presence entries and its subscription until ctx
// is done or Close is called, then returns nil. Two goroutines, both
// exited when Run returns: the subscriber, which hands every message on
// gw:<id> to the local gateway, and the presence loop, which writes the
// gateway's presence changes to Redis as they happen and refreshes every
// local user's entry each Heartbeat. Both survive Redis outages: the
// subscription is re-established (and presence re-announced) when Redis is
// back. Run returns ErrNoLocal without a gateway, ErrClosed after Close
// and ErrRunning if it was called before.
//
// Returning from Run does not remove the presence entries (they expire
// after PresenceTTL); Close does.
func (c *Cluster) Run(ctx context.Context) error {
	l := c.localOf()
	if l == nil {
		return ErrNoLocal
	}
	if err := c.life.Begin(); err != nil {
		if c.closed() {
			return ErrClosed
		}
		return ErrRunning // this Run's first call has returned or is running
	}
	defer c.life.End()
	ctx, release := c.life.Context(ctx) // Close cancels it
	defer release()

	// Presence is announced only once the subscription is confirmed: a
	// gateway listed before it can receive would make every routed
	// notification for its users count as offline.
	subscribed := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		c.subscribeLoop(ctx, l, subscribed)
	}()
	go func() {
		defer wg.Done()
		c.presenceLoop(ctx, l, subscribed)
	}()
	<-ctx.Done()
	c.closePubSub() // unblocks the subscriber's read
	wg.Wait()
	return nil
}

// Close stops Run and waits for it, removes this gateway's presence
// entries for the users still connected here or with a change pending
// (best effort: each batch bounded by Timeout; an entry left behind
// expires after PresenceTTL), and closes the Redis client if the Cluster
// created it. Presence changes reported after Close are ignored, and
// Deliver and PublishUnread only reach the local gateway. Close is
// idempotent and safe to call concurrently; it returns the first call's
// error.
func (c *Cluster) Close() error {
	c.closeOnce.Do(func() {
		c.life.Stop() // Run returns; a later Run fails with ErrClosed

		c.pmu.Lock()
		c.pclosed = true
		users := make(map[string]struct{}, len(c.dirty))
		for u := range c.dirty {
			users[u] = struct{}{}
		}
		c.dirty = nil
		c.pmu.Unlock()
		if l := c.localOf(); l != nil {
			l.LocalUsers(func(u string) { users[u] = struct{}{} })
		}
		c.closeErr = c.leave(users)
		if err := c.leaveMembers(); err != nil && c.closeErr == nil {
			c.closeErr = err
		}
		if c.ownsClient {
			if err := c.rdb.Close(); err != nil && c.closeErr == nil {
				c.closeErr = err
			}
		}
	})
	return c.closeErr
}

// Deliver implements pipeline.Deliverer: it queues n to the user's
// connections on this gateway, then publishes it to every other gateway
// listed as holding the user, in one Redis round trip (bounded by
// Timeout). online is true if the user has a connection here or a listed
// gateway was subscribed to its channel when the message was published.
//
// A Redis failure is logged (rate-limited) and counted, routing skips
// Redis for the next second (so a hung Redis costs the router one Timeout
// per second, not one per record), and Deliver returns online=local with a
// nil error: retrying would stall the Kafka
// partition behind Redis, while the fallback only degrades — a user
// connected elsewhere is reported offline (the router pushes to their
// phone) and their socket there fills the gap from the inbox on its next
// notification or reconnect. The error is non-nil only when the local
// gateway's is (n cannot be encoded).
func (c *Cluster) Deliver(ctx context.Context, userID string, n herald.Notification) (online bool, err error) {
	if l := c.localOf(); l != nil {
		if online, err = l.Deliver(ctx, userID, n); err != nil {
			return online, err
		}
	}
	if c.closed() {
		return online, nil
	}
	payload, err := encodeNotification(userID, &n)
	if err != nil {
		return online, fmt.Errorf("cluster: encode notification %d of %s: %w", n.Seq, userID, err)
	}
	remote, err := c.route(ctx, userID, payload, c.m.forwardedNotifications)
	if err != nil {
		c.routeFailed(ctx, err, "user", userID, "seq", n.Seq)
		return online, nil
	}
	return online || remote, nil
}

// PublishUnread implements api.UnreadPublisher and
// delivery.UnreadPublisher: it queues the count to the user's connections
// here and publishes it to the other gateways holding the user. It blocks
// for at most Timeout on Redis; failures are logged and counted (the
// user's other devices see the right count on their next read or
// reconnect).
func (c *Cluster) PublishUnread(ctx context.Context, userID string, unread int64) {
	if l := c.localOf(); l != nil {
		l.PublishUnread(ctx, userID, unread)
	}
	if c.closed() {
		return
	}
	payload, err := encodeUnread(userID, unread)
	if err != nil { // an int64 and a string: unreachable
		c.log.Error("cannot encode an unread message", "user", userID, "err", err)
		return
	}
	if _, err := c.route(ctx, userID, payload, c.m.forwardedUnread); err != nil {
		c.routeFailed(ctx, err, "user", userID)
	}
}

// errRouteSkipped is route's answer during the cooldown after a failure.
var errRouteSkipped = errors.New("cluster: routing paused after a Redis failure")

// routeFailed records a failed route; failures caused by the caller's
// context are not Redis's fault and do not start a cooldown.
func (c *Cluster) routeFailed(ctx context.Context, err error, args ...any) {
	switch {
	case errors.Is(err, errRouteSkipped):
		c.m.routeSkipped.Inc()
	case ctx.Err() == nil:
		c.routeDown.Trip()
		c.redisFailed("route", err, args...)
	}
}

// routeScript publishes ARGV[4] to the channel (ARGV[3] .. id) of every
// gateway id listed in the presence set KEYS[1] with an expiry score at or
// after ARGV[1] (now, ms), except ARGV[2] (this gateway). It returns id,
// receivers, id, receivers, … so the caller can tell a live gateway from a
// stale entry. One round trip instead of a lookup then publishes.
var routeScript = redis.NewScript(`
local out = {}
for _, gw in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  if gw ~= ARGV[2] then
    out[#out + 1] = gw
    out[#out + 1] = redis.call('PUBLISH', ARGV[3] .. gw, ARGV[4])
  end
end
return out
`)

// route publishes payload to every other live gateway of userID and
// reports whether one of them had a subscriber.
func (c *Cluster) route(ctx context.Context, userID string, payload []byte, fwd prometheus.Counter) (bool, error) {
	if c.routeDown.Active() {
		return false, errRouteSkipped
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	res, err := routeScript.Run(ctx, c.rdb, []string{c.presenceKey(userID)},
		time.Now().UnixMilli(), c.cfg.GatewayID, c.chanPrefix, payload).Slice()
	if err != nil {
		return false, err
	}
	online := false
	for i := 0; i+1 < len(res); i += 2 {
		if n, _ := res[i+1].(int64); n > 0 {
			online = true
			fwd.Inc()
			continue
		}
		// Listed but not subscribed: crashed, or reconnecting to Redis.
		// Not online: the router pushes instead. Its entry expires.
		c.m.stale.Inc()
		c.log.Debug("gateway listed in presence has no subscriber", "user", userID, "to", res[i])
	}
	return online, nil
}

func (c *Cluster) presenceKey(userID string) string {
	return c.prefix.Key("presence", userID)
}

// closed reports whether Close was called.
func (c *Cluster) closed() bool {
	select {
	case <-c.life.Stopping():
		return true
	default:
		return false
	}
}

// redisFailed counts a failed Redis operation and logs it, at most once per
// redisguard.DefaultLogEvery.
func (c *Cluster) redisFailed(op string, err error, args ...any) {
	c.m.redisErrors.WithLabelValues(op).Inc()
	if n, ok := c.redisLog.Allow(); ok {
		c.log.Warn("redis operation failed", append([]any{"op", op, "err", err, "suppressed", n}, args...)...)
	}
}
