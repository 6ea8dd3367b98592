package cassandra

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/lograte"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/heraldhq/herald/migrations"
	"github.com/heraldhq/herald/store"
)

// Sentinel errors.
var (
	// ErrNotMigrated is returned by Open when the keyspace or one of
	// Herald's tables is missing: run `herald migrate` (migrations.Apply).
	ErrNotMigrated = errors.New("cassandra: keyspace is not migrated")
	// ErrContention is returned when a call lost its compare-and-set to
	// concurrent changes of the same user Config.MaxCASAttempts times in a
	// row. Nothing of the failed part was written; the call may be retried.
	ErrContention = errors.New("cassandra: too much contention on the user's inbox")
	// ErrCorrupt is returned when the stored state of a user breaks an
	// invariant of the schema (see the package doc).
	ErrCorrupt = errors.New("cassandra: inconsistent stored state")
)

// tables Open requires; the migrations create them.
var requiredTables = []string{"inbox", "claims", "preferences", "devices", "device_owner", "push_progress", "writer_epochs",
	"policy_state", "policy_due", "policy_due_hours", "policy_cursor",
	"subscriptions_by_user", "subscriptions_by_topic", "subscription_counts",
	"feed_items", "feed_events", "feed_heads", "feed_cursors"}

// Store is a store.Store on Cassandra. It is safe for concurrent use.
//
// Every method blocks until Cassandra answers, bounded by ctx and by
// Config.Timeout per request; a cancelled ctx abandons the requests in
// flight. A write abandoned that way may still be applied: every write is
// idempotent on replay (see the package doc), except the member count's
// counter updates, which are never replayed (doc.go, "Subscriptions").
// Methods called after Close return store.ErrClosed.
type Store struct {
	cfg     settings
	session *gocql.Session
	log     *slog.Logger
	q       statements
	m       *storeMetrics
	// cache is the writers' cache of users' states (writercache.go); nil
	// when Config.WriterCacheIDs is negative.
	cache *writerCache
	// ring tells the host that coordinates a user's writes (ring.go).
	ring *ringCache

	// commitFn runs a conditional batch: s.commit, replaced by tests to
	// simulate commits whose outcome is lost.
	commitFn func(ctx context.Context, b *gocql.Batch) (bool, error)
	// execFn runs an append's plain batch: execBatch, replaced by tests to
	// hold a batch back and deliver it late.
	execFn func(ctx context.Context, b *gocql.Batch) error
	// lwtFn runs a single conditional statement (the subscription
	// transactions), filling prev when it did not apply: mapScanCAS,
	// replaced by tests to lose answers.
	lwtFn func(ctx context.Context, q *gocql.Query, prev map[string]any) (bool, error)

	closed    atomic.Bool
	closeOnce sync.Once
}

var _ store.Store = (*Store)(nil)

// Open connects to the cluster and checks that cfg.Keyspace is migrated. It
// does not change the schema: run migrations.Apply first (or use
// OpenAndMigrate). It blocks until connected, at most ctx's deadline and
// about Config.ConnectTimeout per contact point.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	st, err := cfg.settle()
	if err != nil {
		return nil, err
	}
	session, err := connect(ctx, st)
	if err != nil {
		return nil, err
	}
	s, err := newStore(ctx, st, session)
	if err != nil {
		session.Close()
		return nil, err
	}
	return s, nil
}

// OpenAndMigrate is Open after migrations.Run (creating the keyspace with
// cfg.Replication if missing), on one session. For tests and `herald dev`
// style single-command setups; production runs `herald migrate` once per
// deployment instead.
func OpenAndMigrate(ctx context.Context, cfg Config) (*Store, error) {
	st, err := cfg.settle()
	if err != nil {
		return nil, err
	}
	session, err := connect(ctx, st)
	if err != nil {
		return nil, err
	}
	err = migrations.Run(ctx, session, migrations.Config{
		Keyspace: st.Keyspace, Replication: st.Replication, Logger: st.Logger,
	})
	if err != nil {
		session.Close()
		return nil, err
	}
	s, err := newStore(ctx, st, session)
	if err != nil {
		session.Close()
		return nil, err
	}
	return s, nil
}

// connect creates the driver session. The driver's CreateSession takes no
// context, so it runs in a goroutine; if ctx ends first, that goroutine
// closes the session it eventually gets (CreateSession itself is bounded by
// the connect timeout).
func connect(ctx context.Context, st settings) (*gocql.Session, error) {
	c := gocql.NewCluster(st.Hosts...)
	c.Consistency = st.cons
	c.SerialConsistency = st.serial
	c.Timeout = st.Timeout
	c.WriteTimeout = st.Timeout
	c.ConnectTimeout = st.ConnectTimeout
	c.NumConns = st.NumConns
	// Rate-limited per message pattern: in an outage the driver logs every
	// reconnection attempt of every connection.
	c.Logger = driverLogger{lograte.Limited(st.Logger, "gocql", lograte.Config{})}
	c.RetryPolicy = &retryPolicy{retries: st.MaxRetries, backoff: retry.Backoff{Min: 50 * time.Millisecond, Max: 2 * time.Second}}
	c.ReconnectInterval = 10 * time.Second
	c.SocketKeepalive = 30 * time.Second
	fallback := gocql.RoundRobinHostPolicy()
	if st.LocalDC != "" {
		fallback = gocql.DCAwareRoundRobinPolicy(st.LocalDC)
	}
	// Token-aware: each request goes to a replica of its partition, which
	// saves a hop. Not shuffled: every process sends a given user's requests
	// to the same replica first, so the lightweight transactions of one
	// partition share a coordinator instead of racing Paxos ballots from
	// several (fewer contention retries, at the cost of less read spreading).
	c.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(fallback, gocql.DoNotShuffleReplicas())
	if st.Username != "" {
		c.Authenticator = gocql.PasswordAuthenticator{Username: st.Username, Password: st.Password}
	}
	if st.TLS != nil {
		c.SslOpts = &gocql.SslOptions{Config: st.TLS.Clone(), EnableHostVerification: !st.TLS.InsecureSkipVerify}
	}

	type result struct {
		s   *gocql.Session
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := c.CreateSession()
		done <- result{s, err}
	}()
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("cassandra: connect to %s: %w", strings.Join(st.Hosts, ","), r.err)
		}
		return r.s, nil
	case <-ctx.Done():
		go func() {
			if r := <-done; r.s != nil {
				r.s.Close()
			}
		}()
		return nil, fmt.Errorf("cassandra: connect to %s: %w", strings.Join(st.Hosts, ","), ctx.Err())
	}
}

// newStore checks the schema and builds the Store around session.
func newStore(ctx context.Context, st settings, session *gocql.Session) (*Store, error) {
	iter := session.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, st.Keyspace).
		Idempotent(true).IterContext(ctx)
	have := map[string]bool{}
	var name string
	for iter.Scan(&name) {
		have[name] = true
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("cassandra: read schema of keyspace %s: %w", st.Keyspace, err)
	}
	var missing []string
	for _, t := range requiredTables {
		if !have[t] {
			missing = append(missing, t)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: keyspace %s lacks tables %s; run `herald migrate`", ErrNotMigrated, st.Keyspace, strings.Join(missing, ", "))
	}
	s := &Store{cfg: st, session: session, log: st.Logger, q: newStatements(st.Keyspace), m: newStoreMetrics(st.Registerer), cache: newWriterCache(st.WriterCacheIDs),
		ring: &ringCache{read: sessionHosts(session), local: st.LocalDC}}
	s.commitFn = s.commit
	s.execFn = execBatch
	s.lwtFn = mapScanCAS
	s.log.Info("cassandra store opened", "hosts", st.Hosts, "keyspace", st.Keyspace,
		"consistency", st.cons.String(), "serial", st.serial.String(), "retention", st.Retention)
	return s, nil
}

// Close closes the session; requests in flight fail. It is idempotent.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.session.Close()
		s.log.Info("cassandra store closed", "keyspace", s.cfg.Keyspace)
	})
	return nil
}

// Ping reads the server's release version (SELECT release_version FROM
// system.local).
func (s *Store) Ping(ctx context.Context) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	var v string
	if err := s.read(s.q.ping).ScanContext(ctx, &v); err != nil {
		return s.fail("ping", err)
	}
	return nil
}

// begin rejects calls after Close and with a done context.
func (s *Store) begin(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// fail wraps an error of the driver, turning errors caused by Close into
// store.ErrClosed.
func (s *Store) fail(what string, err error) error {
	if errors.Is(err, gocql.ErrSessionClosed) || s.closed.Load() {
		return store.ErrClosed
	}
	return fmt.Errorf("cassandra: %s: %w", what, err)
}

// read is an idempotent statement, retried by the driver.
func (s *Store) read(stmt string, args ...any) *gocql.Query {
	return s.session.Query(stmt, args...).Idempotent(true)
}

// checkUserID rejects ids no user can have; the contract's alphabet is
// enforced at the edges (API, enricher), the store only refuses what would
// break its keys.
func checkUserID(userID string) error {
	if userID == "" {
		return &herald.ValidationError{Field: "user_id", Reason: "must not be empty"}
	}
	if len(userID) > maxKeyBytes {
		return &herald.ValidationError{Field: "user_id", Reason: fmt.Sprintf("is longer than %d bytes", maxKeyBytes)}
	}
	return nil
}

// maxKeyBytes bounds ids used in keys; Cassandra's limit is 64 KiB, the
// contract's 128 characters.
const maxKeyBytes = 1024
