package prefcache

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/conn"
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/heraldhq/herald/internal/redisguard"
	"github.com/heraldhq/herald/store"
)

// DefaultKeyPrefix prefixes the cache's Redis keys.
const DefaultKeyPrefix = redisguard.DefaultPrefix

// leaseTTL bounds how long a missing reader's lease blocks other fills; a
// reader slower than that just does not fill.
const leaseTTL = 10 * time.Second

const leaseMark = "lease:"

// ErrInvalidConfig wraps every reason New refuses a Config.
var ErrInvalidConfig = errors.New("prefcache: invalid config")

// Config configures a Store. Zero values mean the documented default.
type Config struct {
	// Store is the store of record. Required.
	Store store.Store
	// Redis is the cache; the caller owns it (Close does not close it).
	// Give it ContextTimeoutEnabled so that Timeout bounds a stalled read.
	// One of Redis, Conn.URL or URL is required.
	Redis *redis.Client
	// Conn (URL, password, TLS) is used when Redis is nil: the Store
	// creates its own client with Conn.Client and closes it in Close.
	Conn conn.Redis
	// URL ("redis://host:port/db") is shorthand for Conn.URL, used when
	// Conn.URL is empty.
	URL string
	// TTL is how long a cached entry lives; 0 means 5 minutes.
	TTL time.Duration
	// KeyPrefix prefixes the keys; "" means DefaultKeyPrefix.
	KeyPrefix string
	// Timeout bounds each Redis call, after which the inner store is used;
	// 0 means 250 ms.
	Timeout time.Duration
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Registerer receives the cache's collectors; nil means
	// metrics.Registry. Collectors already registered there by another
	// component are shared, not duplicated.
	Registerer prometheus.Registerer
}

// cacheMetrics are the cache's collectors, registered on
// Config.Registerer (reused when already registered there).
type cacheMetrics struct {
	// herald_prefcache_requests_total{result}
	hits, misses, readErrors, bypass prometheus.Counter
	invalidateErrors                 prometheus.Counter
}

func newCacheMetrics(reg prometheus.Registerer) *cacheMetrics {
	requests := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Subsystem: "prefcache", Name: "requests_total",
		Help: "Preference reads through the cache, by result (hit, miss, error, bypass: Redis skipped for a second after an error).",
	}, []string{"result"}))
	return &cacheMetrics{
		hits:       requests.WithLabelValues("hit"),
		misses:     requests.WithLabelValues("miss"),
		readErrors: requests.WithLabelValues("error"),
		bypass:     requests.WithLabelValues("bypass"),
		invalidateErrors: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "prefcache", Name: "invalidate_errors_total",
			Help: "Preference writes whose cache entry could not be deleted (stale until its TTL).",
		})),
	}
}

// Store is a store.Store whose preference reads are cached in Redis. Every
// other method is the inner store's. It is safe for concurrent use.
type Store struct {
	store.Store
	cfg        Config
	log        *slog.Logger
	m          *cacheMetrics
	rdb        *redis.Client
	ownsClient bool
	prefix     redisguard.Prefix
	errLog     redisguard.LogLimiter
	// down: after a Redis error, reads skip Redis for a second, so a Redis
	// that hangs costs one Timeout per second rather than one per read.
	down redisguard.Cooldown
}

var _ store.Store = (*Store)(nil)

// New validates cfg and fills its defaults. It does no I/O.
func New(cfg Config) (*Store, error) {
	if cfg.Store == nil {
		return nil, fmt.Errorf("%w: Store is required", ErrInvalidConfig)
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 5 * time.Minute
	}
	if cfg.TTL < time.Millisecond {
		return nil, fmt.Errorf("%w: TTL %v is below Redis's millisecond resolution", ErrInvalidConfig, cfg.TTL)
	}
	prefix := redisguard.Prefix(cfg.KeyPrefix)
	cfg.KeyPrefix = prefix.String()
	if cfg.Timeout <= 0 {
		cfg.Timeout = 250 * time.Millisecond
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	s := &Store{Store: cfg.Store, cfg: cfg, log: cfg.Logger.With("component", "prefcache"),
		m: newCacheMetrics(cfg.Registerer), rdb: cfg.Redis, prefix: prefix}
	if s.rdb == nil {
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
		s.rdb, s.ownsClient = rdb, true
	}
	return s, nil
}

func (s *Store) key(userID string) string { return s.prefix.Key("prefs", userID) }

// GetPreferences returns the cached preferences, or reads the inner store
// (and caches what it read, see the package doc). It waits at most
// Timeout per Redis call; a Redis error falls back to the inner store, and
// so do the reads of the following second, without trying Redis.
func (s *Store) GetPreferences(ctx context.Context, userID string) (herald.Preferences, error) {
	if s.down.Active() {
		s.m.bypass.Inc()
		return s.Store.GetPreferences(ctx, userID)
	}
	key := s.key(userID)
	v, err := s.redisGet(ctx, key)
	if err != nil && !errors.Is(err, redis.Nil) {
		s.m.readErrors.Inc()
		s.redisFailed("get", err)
		return s.Store.GetPreferences(ctx, userID)
	}
	return s.settle(ctx, userID, key, v, err == nil)
}

// settle turns what Redis held for key (found: v is set) into userID's
// preferences: a cached value is decoded; anything else is read from the
// inner store, and a plain miss fills the cache under a lease.
func (s *Store) settle(ctx context.Context, userID, key, v string, found bool) (herald.Preferences, error) {
	switch {
	case found && strings.HasPrefix(v, "{"):
		var p herald.Preferences
		if err := json.Unmarshal([]byte(v), &p); err == nil {
			s.m.hits.Inc()
			return p, nil
		}
		s.dropCorrupt(ctx, key, v)
		s.m.misses.Inc()
		return s.Store.GetPreferences(ctx, userID)
	case found && strings.HasPrefix(v, leaseMark):
		s.m.misses.Inc() // another reader is filling
		return s.Store.GetPreferences(ctx, userID)
	case found:
		s.dropCorrupt(ctx, key, v)
		s.m.misses.Inc()
		return s.Store.GetPreferences(ctx, userID)
	}
	s.m.misses.Inc()
	lease, ok := s.takeLease(ctx, key)
	p, err := s.Store.GetPreferences(ctx, userID)
	if !ok {
		return p, err
	}
	if err != nil {
		s.release(ctx, key, lease)
		return p, err
	}
	s.fill(ctx, key, lease, p)
	return p, nil
}

// CachedPreferences returns the preferences of those of userIDs that the
// cache holds, read with one MGET; the others (not cached, being filled,
// unreadable) are left out, to be read with GetPreferences, which fills
// the cache. It never fails: with Redis down or failing it returns an
// empty map. The enricher reads a batch's users this way, one round trip
// instead of one per user.
func (s *Store) CachedPreferences(ctx context.Context, userIDs []string) map[string]herald.Preferences {
	out := make(map[string]herald.Preferences, len(userIDs))
	if len(userIDs) == 0 || s.down.Active() {
		return out
	}
	keys := make([]string, len(userIDs))
	for i, u := range userIDs {
		keys[i] = s.key(u)
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	vals, err := s.rdb.MGet(rctx, keys...).Result()
	cancel()
	if err != nil {
		s.m.readErrors.Inc()
		s.redisFailed("mget", err)
		return out
	}
	for i, u := range userIDs {
		v, ok := vals[i].(string)
		if !ok || !strings.HasPrefix(v, "{") {
			continue
		}
		var p herald.Preferences
		if json.Unmarshal([]byte(v), &p) == nil {
			s.m.hits.Inc()
			out[u] = p
		}
	}
	return out
}

// PutPreferences writes the inner store, then deletes the cached entry
// (and any reader's lease), even during a read cooldown. A failed delete
// is logged and counted, not returned: the write itself succeeded.
func (s *Store) PutPreferences(ctx context.Context, userID string, p herald.Preferences) error {
	if err := s.Store.PutPreferences(ctx, userID, p); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.rdb.Del(rctx, s.key(userID)).Err(); err != nil {
		s.down.Trip()
		s.m.invalidateErrors.Inc()
		s.log.Warn("could not invalidate cached preferences; the old ones may be served until the entry expires",
			"user", userID, "ttl", s.cfg.TTL, "err", err)
	}
	return nil
}

// Close closes the inner store, then the Redis client if the Store
// created it. It returns the inner store's error first.
func (s *Store) Close() error {
	err := s.Store.Close()
	if s.ownsClient {
		if cerr := s.rdb.Close(); cerr != nil && !errors.Is(cerr, redis.ErrClosed) && err == nil {
			err = cerr
		}
	}
	return err
}

func (s *Store) redisGet(ctx context.Context, key string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	return s.rdb.Get(ctx, key).Result()
}

// takeLease claims the right to fill key.
func (s *Store) takeLease(ctx context.Context, key string) (string, bool) {
	var b [12]byte
	_, _ = rand.Read(b[:])
	lease := leaseMark + hex.EncodeToString(b[:])
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	ok, err := s.rdb.SetNX(ctx, key, lease, leaseTTL).Result()
	if err != nil {
		s.redisFailed("lease", err)
		return "", false
	}
	return lease, ok
}

// fillScript sets KEYS[1] to ARGV[2] for ARGV[3] ms if it still holds the
// lease ARGV[1]; with ARGV[2] empty it deletes it instead.
var fillScript = redis.NewScript(`
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if ARGV[2] == '' then redis.call('DEL', KEYS[1]) else redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3]) end
return 1
`)

// fill caches p under key if lease is still held.
func (s *Store) fill(ctx context.Context, key, lease string, p herald.Preferences) {
	v, err := json.Marshal(p)
	if err != nil { // plain data: unreachable
		s.release(ctx, key, lease)
		return
	}
	s.runFill(ctx, key, lease, string(v))
}

// release gives up a lease without filling.
func (s *Store) release(ctx context.Context, key, lease string) {
	s.runFill(ctx, key, lease, "")
}

func (s *Store) runFill(ctx context.Context, key, lease, value string) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := fillScript.Run(ctx, s.rdb, []string{key}, lease, value, s.cfg.TTL.Milliseconds()).Err(); err != nil {
		s.redisFailed("fill", err)
	}
}

// dropCorrupt deletes an entry that is neither preferences nor a lease,
// so that the next reader fills it.
func (s *Store) dropCorrupt(ctx context.Context, key, v string) {
	s.log.Warn("dropping an unreadable cache entry", "key", key, "bytes", len(v))
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	_ = s.rdb.Del(ctx, key).Err()
}

// redisFailed starts a cooldown and logs a Redis error, at most once per
// redisguard.DefaultLogEvery.
func (s *Store) redisFailed(op string, err error) {
	s.down.Trip()
	if n, ok := s.errLog.Allow(); ok {
		s.log.Warn("redis unavailable, reading preferences from the store", "op", op, "err", err, "suppressed", n)
	}
}
