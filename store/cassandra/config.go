package cassandra

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/migrations"
)

// Defaults of Config.
const (
	DefaultKeyspace          = "herald"
	DefaultConsistency       = "LOCAL_QUORUM"
	DefaultSerialConsistency = "LOCAL_SERIAL"
	DefaultTimeout           = 5 * time.Second
	DefaultConnectTimeout    = 10 * time.Second
	DefaultNumConns          = 2
	DefaultRetention         = 90 * 24 * time.Hour
	DefaultAppendConcurrency = 16
	DefaultMaxBatch          = 100
	DefaultGroupUsers        = 10
	DefaultGroupBytes        = 5000
	DefaultMaxRetries        = 3
	DefaultMaxCASAttempts    = 50
	DefaultWriterCacheIDs    = 1_000_000
)

// Config configures Open. The zero value of every field but Hosts is usable.
type Config struct {
	// Hosts are the contact points, "host" or "host:port" (port 9042 when
	// omitted); at least one is required. The rest of the ring is discovered.
	Hosts []string
	// Keyspace holding Herald's tables; "" means DefaultKeyspace. It must
	// exist and be migrated (migrations.Apply) before Open.
	Keyspace string
	// Consistency of reads and writes; "" means LOCAL_QUORUM. Parsed
	// case-insensitively (ONE, LOCAL_ONE, QUORUM, LOCAL_QUORUM, ...).
	Consistency string
	// SerialConsistency of the lightweight transactions; "" means
	// LOCAL_SERIAL. SERIAL or LOCAL_SERIAL.
	SerialConsistency string
	// LocalDC, when set, keeps requests in that datacenter (token-aware
	// routing over DC-aware round robin); "" means token-aware over plain
	// round robin, right for one datacenter.
	LocalDC string
	// Timeout bounds each request on the client side; zero means
	// DefaultTimeout. Keep it above the server's write_request_timeout and
	// cas_contention_timeout.
	Timeout time.Duration
	// ConnectTimeout bounds dialling and the connection handshake; zero
	// means DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// NumConns is the number of connections per host; zero means
	// DefaultNumConns.
	NumConns int
	// Username and Password enable PasswordAuthenticator when Username is set.
	Username, Password string
	// TLS, when non-nil, encrypts connections with this configuration.
	TLS *tls.Config
	// Retention is how long a notification (with its unread marker and its
	// event-id dedup entry) and a claim are kept: they are written with
	// USING TTL. Zero means DefaultRetention; negative means forever.
	// Per-user counters never expire (see the package doc).
	Retention time.Duration
	// AppendConcurrency bounds how many users one Append writes in
	// parallel; zero means DefaultAppendConcurrency.
	AppendConcurrency int
	// MaxBatch is the most notifications of one user committed by one
	// conditional batch (a larger Append of one user is split, each part
	// atomic); zero means DefaultMaxBatch.
	MaxBatch int
	// GroupUsers is the most users whose parts one Append writes in one
	// request (an unlogged batch of several partitions, grouped by the
	// host that coordinates them: doc.go, "Several users per request");
	// zero means DefaultGroupUsers, the default of Cassandra's
	// unlogged_batch_across_partitions_warn_threshold (above it the node
	// warns once a minute and answers every such batch with a client
	// warning); 1 or less writes each user alone.
	GroupUsers int
	// GroupBytes bounds the estimated size of such a request (an estimate
	// above the size Cassandra counts: append.go, mutationSize); zero
	// means DefaultGroupBytes, 5,000, under Cassandra's default
	// batch_size_warn_threshold of 5 KiB, above which the node logs a
	// warning for every batch of several partitions, and far under
	// batch_size_fail_threshold, 50 KiB, above which it refuses it. Raise
	// it with those thresholds. One user's part larger than this is
	// written alone (a single-partition batch is not held to them).
	GroupBytes int
	// MaxRetries is how often the driver retries an idempotent request
	// that failed (timeout, unavailable, overloaded), with exponential
	// backoff; zero means DefaultMaxRetries, negative means none.
	MaxRetries int
	// MaxCASAttempts bounds the compare-and-set loop of one call (per user
	// and batch part) when concurrent writers keep winning; zero means
	// DefaultMaxCASAttempts. Exceeding it returns ErrContention.
	MaxCASAttempts int
	// WriterCacheIDs bounds the event ids the store's writers keep in
	// memory, for all users together (about 40 bytes each), so that an
	// append of new events to a user already seen by the writer skips the
	// read of the user's partition (doc.go, "The writer's cache"); a user
	// whose index holds more than WriterCacheIDs/64 entries is not cached.
	// Zero means DefaultWriterCacheIDs (about 40 MB), negative turns the
	// cache off (every append part reads first).
	WriterCacheIDs int
	// Logger; nil means slog.Default(). The driver's own messages go to it
	// too, at warning level and above.
	Logger *slog.Logger
	// Registerer receives the store's collectors; nil means
	// metrics.Registry. Collectors already registered there by another
	// Store are shared, not duplicated.
	Registerer prometheus.Registerer

	// Replication is used by OpenAndMigrate to create a missing keyspace;
	// ignored by Open.
	Replication migrations.Replication
}

// ErrConfig is wrapped by Open for an invalid Config.
var ErrConfig = errors.New("cassandra: invalid config")

// ParseConsistency parses a consistency level name, case-insensitively.
// "" is DefaultConsistency.
func ParseConsistency(s string) (gocql.Consistency, error) {
	if s == "" {
		s = DefaultConsistency
	}
	var c gocql.Consistency
	if err := c.UnmarshalText([]byte(strings.ToUpper(strings.TrimSpace(s)))); err != nil {
		return 0, fmt.Errorf("%w: consistency %q", ErrConfig, s)
	}
	if c == gocql.Serial || c == gocql.LocalSerial || c == gocql.Any {
		return 0, fmt.Errorf("%w: consistency %q cannot be used for both reads and writes", ErrConfig, s)
	}
	return c, nil
}

// ParseSerialConsistency parses SERIAL or LOCAL_SERIAL, case-insensitively.
// "" is DefaultSerialConsistency.
func ParseSerialConsistency(s string) (gocql.Consistency, error) {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "", "LOCAL_SERIAL":
		return gocql.LocalSerial, nil
	case "SERIAL":
		return gocql.Serial, nil
	}
	return 0, fmt.Errorf("%w: serial consistency %q (SERIAL or LOCAL_SERIAL)", ErrConfig, s)
}

// settings is Config validated, with defaults filled in.
type settings struct {
	Config
	cons, serial gocql.Consistency
	ttl          int // seconds, 0 = no expiry
}

func (cfg Config) settle() (settings, error) {
	s := settings{Config: cfg}
	if len(cfg.Hosts) == 0 {
		return s, fmt.Errorf("%w: no Hosts", ErrConfig)
	}
	for _, h := range cfg.Hosts {
		if strings.TrimSpace(h) == "" {
			return s, fmt.Errorf("%w: empty host in %q", ErrConfig, cfg.Hosts)
		}
	}
	if s.Keyspace == "" {
		s.Keyspace = DefaultKeyspace
	}
	if err := migrations.ValidKeyspace(s.Keyspace); err != nil {
		return s, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	var err error
	if s.cons, err = ParseConsistency(cfg.Consistency); err != nil {
		return s, err
	}
	if s.serial, err = ParseSerialConsistency(cfg.SerialConsistency); err != nil {
		return s, err
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.ConnectTimeout <= 0 {
		s.ConnectTimeout = DefaultConnectTimeout
	}
	if s.NumConns <= 0 {
		s.NumConns = DefaultNumConns
	}
	switch {
	case s.Retention == 0:
		s.Retention = DefaultRetention
		s.ttl = int(DefaultRetention / time.Second)
	case s.Retention < 0:
		s.ttl = 0
	case s.Retention < time.Second:
		return s, fmt.Errorf("%w: Retention %v is under a second", ErrConfig, s.Retention)
	case s.Retention > 20*365*24*time.Hour: // Cassandra caps TTL at 20 years
		return s, fmt.Errorf("%w: Retention %v is over Cassandra's 20-year TTL limit", ErrConfig, s.Retention)
	default:
		s.ttl = int(s.Retention / time.Second)
	}
	if s.AppendConcurrency <= 0 {
		s.AppendConcurrency = DefaultAppendConcurrency
	}
	if s.MaxBatch <= 0 {
		s.MaxBatch = DefaultMaxBatch
	}
	switch {
	case s.GroupUsers == 0:
		s.GroupUsers = DefaultGroupUsers
	case s.GroupUsers < 1:
		s.GroupUsers = 1
	}
	if s.GroupBytes <= 0 {
		s.GroupBytes = DefaultGroupBytes
	}
	switch {
	case s.MaxRetries == 0:
		s.MaxRetries = DefaultMaxRetries
	case s.MaxRetries < 0:
		s.MaxRetries = 0
	}
	if s.MaxCASAttempts <= 0 {
		s.MaxCASAttempts = DefaultMaxCASAttempts
	}
	if s.WriterCacheIDs == 0 {
		s.WriterCacheIDs = DefaultWriterCacheIDs
	}
	if s.Logger == nil {
		s.Logger = slog.Default()
	}
	return s, nil
}
