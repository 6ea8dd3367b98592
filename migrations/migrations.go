package migrations

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"regexp"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// Sentinel errors of Run.
var (
	// ErrChecksumMismatch means a file recorded as applied has changed since
	// (or the database was migrated by a build with a different file of the
	// same name). Nothing is applied.
	ErrChecksumMismatch = errors.New("migrations: an applied migration file has changed")
	// ErrLockLost means the migration lock expired (Config.LockTTL) or was
	// taken over while this migrator held it; the migration in progress was
	// interrupted between two idempotent statements and is re-run next time.
	ErrLockLost = errors.New("migrations: lost the migration lock")
	// ErrBadKeyspace is returned for a keyspace name that is not a plain CQL
	// identifier.
	ErrBadKeyspace = errors.New("migrations: bad keyspace name")
)

// Defaults of Config.
const (
	DefaultLockTTL  = time.Minute
	DefaultLockPoll = time.Second
)

// lockName is the key of the one lock row.
const lockName = "migrate"

var keyspaceName = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9_]{0,47}$`)

// ValidKeyspace reports whether ks can be used unquoted as a keyspace name
// (a letter, then up to 47 letters, digits or underscores).
func ValidKeyspace(ks string) error {
	if !keyspaceName.MatchString(ks) {
		return fmt.Errorf("%w: %q (a letter then up to 47 letters, digits or underscores)", ErrBadKeyspace, ks)
	}
	return nil
}

// Config configures Run.
type Config struct {
	// Keyspace to migrate; required. Created if missing.
	Keyspace string
	// Replication of the keyspace when it is created; the zero value is
	// SimpleStrategy with factor 1. Ignored for an existing keyspace.
	Replication Replication
	// Files holds the NNNN_name.cql files; nil means the embedded ones.
	Files fs.FS
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// LockTTL is how long the lock outlives a migrator that stopped
	// renewing it (it is renewed before every statement, so it must exceed
	// the longest statement plus its schema agreement). Zero means
	// DefaultLockTTL.
	LockTTL time.Duration
	// LockPoll is how often a migrator waiting for the lock retries. Zero
	// means DefaultLockPoll.
	LockPoll time.Duration
	// Owner identifies this migrator in the lock row and in applied_by;
	// "" means host/pid/random.
	Owner string
}

// Apply migrates keyspace with the embedded files, creating the keyspace with
// the default replication (SimpleStrategy, factor 1) if it does not exist.
// See Run.
func Apply(ctx context.Context, session *gocql.Session, keyspace string, logger *slog.Logger) error {
	return Run(ctx, session, Config{Keyspace: keyspace, Logger: logger})
}

// Run creates cfg.Keyspace if needed and applies, in version order, every
// migration file not yet recorded in it. It returns ErrChecksumMismatch
// (before changing anything) when a recorded file has changed.
//
// Run blocks while another migrator holds the lock, and until every schema
// change has reached agreement; ctx bounds the whole call. When ctx ends
// mid-way, the statements already run stay applied and the file in progress
// is re-run by the next call. session needs no keyspace.
func Run(ctx context.Context, session *gocql.Session, cfg Config) error {
	if session == nil {
		return errors.New("migrations: nil session")
	}
	if err := ValidKeyspace(cfg.Keyspace); err != nil {
		return err
	}
	replication, err := cfg.Replication.CQL()
	if err != nil {
		return err
	}
	if cfg.Files == nil {
		cfg.Files = embedded
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.LockTTL <= 0 {
		cfg.LockTTL = DefaultLockTTL
	}
	if cfg.LockTTL < time.Second {
		cfg.LockTTL = time.Second
	}
	if cfg.LockPoll <= 0 {
		cfg.LockPoll = DefaultLockPoll
	}
	if cfg.Owner == "" {
		cfg.Owner = defaultOwner()
	}
	migs, err := Load(cfg.Files)
	if err != nil {
		return err
	}
	m := &migrator{s: session, cfg: cfg, ks: cfg.Keyspace, log: cfg.Logger.With("keyspace", cfg.Keyspace)}
	if err := m.ensureKeyspace(ctx, replication); err != nil {
		return err
	}
	if err := m.ensureBookkeeping(ctx); err != nil {
		return err
	}

	// Fast path: nothing pending, no lock.
	recorded, err := m.recorded(ctx)
	if err != nil {
		return err
	}
	pending, err := m.pending(migs, recorded)
	if err != nil || len(pending) == 0 {
		if err == nil {
			m.log.Debug("schema up to date", "migrations", len(migs))
		}
		return err
	}

	release, err := m.lock(ctx)
	if err != nil {
		return err
	}
	defer release()

	// Re-read under the lock, serially: another migrator may have applied
	// some files while this one waited.
	var todo []Migration
	for _, mig := range pending {
		sum, found, err := m.recordedOne(ctx, mig.Name)
		if err != nil {
			return err
		}
		switch {
		case !found:
			todo = append(todo, mig)
		case sum != mig.Checksum:
			return fmt.Errorf("%w: %s recorded with checksum %s, the file has %s", ErrChecksumMismatch, mig.Name, sum, mig.Checksum)
		}
	}
	for _, mig := range todo {
		if err := m.apply(ctx, mig); err != nil {
			return err
		}
	}
	return nil
}

type migrator struct {
	s   *gocql.Session
	cfg Config
	ks  string
	log *slog.Logger
}

func defaultOwner() string {
	host, _ := os.Hostname()
	var b [4]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

// query builds a statement; run it with the *Context methods (ExecContext,
// ScanContext, IterContext, MapScanCASContext) so the caller's ctx bounds it.
func (m *migrator) query(stmt string, args ...any) *gocql.Query {
	return m.s.Query(stmt, args...)
}

// lwt is a lightweight transaction at SERIAL (not LOCAL_SERIAL): the schema
// is cluster-wide, so migrators in different datacenters must agree.
func (m *migrator) lwt(stmt string, args ...any) *gocql.Query {
	return m.query(stmt, args...).SerialConsistency(gocql.Serial)
}

// ddl runs one schema statement and waits for schema agreement.
func (m *migrator) ddl(ctx context.Context, stmt string) error {
	// Idempotent: every migration statement must be (see the package doc),
	// so the driver may retry it on a timeout.
	if err := m.query(stmt).Idempotent(true).ExecContext(ctx); err != nil {
		return err
	}
	if err := m.s.AwaitSchemaAgreement(ctx); err != nil {
		return fmt.Errorf("migrations: waiting for schema agreement: %w", err)
	}
	return nil
}

// ensureKeyspace creates the keyspace if needed. The CREATE ... IF NOT
// EXISTS runs even when system_schema already lists the keyspace: a node
// publishes system_schema slightly before the keyspace becomes usable, and a
// schema statement on the same node waits for any change in progress, so
// after it the keyspace is usable by the next statement.
func (m *migrator) ensureKeyspace(ctx context.Context, replication string) error {
	var got map[string]string
	err := m.query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?`, m.ks).
		Idempotent(true).ScanContext(ctx, &got)
	exists := err == nil
	if err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return fmt.Errorf("migrations: read keyspace %s: %w", m.ks, err)
	}
	if exists && !m.cfg.Replication.matches(got) {
		m.log.Warn("keyspace exists with another replication than configured; leaving it as is",
			"replication", got, "configured", m.cfg.Replication.String())
	}
	stmt := fmt.Sprintf("CREATE KEYSPACE IF NOT EXISTS %s WITH replication = %s AND durable_writes = true", m.ks, replication)
	if err := m.ddl(ctx, stmt); err != nil {
		return fmt.Errorf("migrations: create keyspace %s: %w", m.ks, err)
	}
	if !exists {
		m.log.Info("keyspace created", "replication", replication)
	}
	return nil
}

// ensureBookkeeping creates the two bookkeeping tables; like ensureKeyspace
// it always runs the (no-op when present) CREATE ... IF NOT EXISTS.
func (m *migrator) ensureBookkeeping(ctx context.Context) error {
	tables := []struct{ name, ddl string }{
		{"schema_migrations", `CREATE TABLE IF NOT EXISTS %s.schema_migrations (
			name text PRIMARY KEY, version int, checksum text, applied_at timestamp, applied_by text
		) WITH comment = 'herald: applied migration files'`},
		{"schema_migrations_lock", `CREATE TABLE IF NOT EXISTS %s.schema_migrations_lock (
			name text PRIMARY KEY, owner text, locked_at timestamp
		) WITH comment = 'herald: migration lock (LWT + TTL)'`},
	}
	for _, t := range tables {
		if err := m.ddl(ctx, fmt.Sprintf(t.ddl, m.ks)); err != nil {
			return fmt.Errorf("migrations: create %s.%s: %w", m.ks, t.name, err)
		}
	}
	return nil
}

// recorded reads every applied file's checksum (a quorum read, for the
// lock-free fast path).
func (m *migrator) recorded(ctx context.Context) (map[string]string, error) {
	iter := m.query(fmt.Sprintf(`SELECT name, checksum FROM %s.schema_migrations`, m.ks)).Idempotent(true).IterContext(ctx)
	out := map[string]string{}
	var name, sum string
	for iter.Scan(&name, &sum) {
		out[name] = sum
	}
	if err := iter.Close(); err != nil {
		return nil, fmt.Errorf("migrations: read schema_migrations: %w", err)
	}
	return out, nil
}

// recordedOne reads one record at SERIAL consistency, so it sees any record
// committed by another migrator's lightweight transaction.
func (m *migrator) recordedOne(ctx context.Context, name string) (sum string, found bool, err error) {
	err = m.query(fmt.Sprintf(`SELECT checksum FROM %s.schema_migrations WHERE name = ?`, m.ks), name).
		Consistency(gocql.Serial).Idempotent(true).ScanContext(ctx, &sum)
	if errors.Is(err, gocql.ErrNotFound) {
		return "", false, nil
	}
	if err != nil {
		return "", false, fmt.Errorf("migrations: read schema_migrations: %w", err)
	}
	return sum, true, nil
}

// pending checks recorded against the files and returns the files to apply.
func (m *migrator) pending(migs []Migration, recorded map[string]string) ([]Migration, error) {
	known := make(map[string]bool, len(migs))
	var out []Migration
	for _, mig := range migs {
		known[mig.Name] = true
		sum, ok := recorded[mig.Name]
		switch {
		case !ok:
			out = append(out, mig)
		case sum != mig.Checksum:
			return nil, fmt.Errorf("%w: %s recorded with checksum %s, the file has %s", ErrChecksumMismatch, mig.Name, sum, mig.Checksum)
		}
	}
	for name := range recorded {
		if !known[name] {
			m.log.Warn("keyspace has a migration this build does not know (applied by a newer build?)", "name", name)
		}
	}
	return out, nil
}

// lock takes the migration lock, waiting while another migrator holds it.
// release frees it (best effort: the TTL frees it otherwise).
func (m *migrator) lock(ctx context.Context) (release func(), err error) {
	ttl := int(m.cfg.LockTTL / time.Second)
	stmt := fmt.Sprintf(`INSERT INTO %s.schema_migrations_lock (name, owner, locked_at) VALUES (?, ?, ?) IF NOT EXISTS USING TTL ?`, m.ks)
	logged := false
	for {
		got := map[string]any{}
		applied, err := m.lwt(stmt, lockName, m.cfg.Owner, time.Now(), ttl).MapScanCASContext(ctx, got)
		if err != nil {
			return nil, fmt.Errorf("migrations: take lock: %w", err)
		}
		holder, _ := got["owner"].(string)
		if applied || holder == m.cfg.Owner { // the latter: our own earlier attempt went through
			m.log.Debug("migration lock taken", "owner", m.cfg.Owner)
			break
		}
		if !logged {
			m.log.Info("waiting for the migration lock", "holder", holder)
			logged = true
		}
		t := time.NewTimer(m.cfg.LockPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, fmt.Errorf("migrations: waiting for the lock held by %q: %w", holder, ctx.Err())
		case <-t.C:
		}
	}
	return func() {
		// The caller's ctx may be done; release on a short context of our own.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		del := fmt.Sprintf(`DELETE FROM %s.schema_migrations_lock WHERE name = ? IF owner = ?`, m.ks)
		if _, err := m.lwt(del, lockName, m.cfg.Owner).MapScanCASContext(rctx, map[string]any{}); err != nil {
			m.log.Warn("releasing the migration lock failed; it expires by itself", "ttl", m.cfg.LockTTL, "err", err)
		}
	}, nil
}

// renew extends the lock; ErrLockLost if it is no longer ours.
func (m *migrator) renew(ctx context.Context) error {
	stmt := fmt.Sprintf(`UPDATE %s.schema_migrations_lock USING TTL ? SET owner = ?, locked_at = ? WHERE name = ? IF owner = ?`, m.ks)
	applied, err := m.lwt(stmt, int(m.cfg.LockTTL/time.Second), m.cfg.Owner, time.Now(), lockName, m.cfg.Owner).
		MapScanCASContext(ctx, map[string]any{})
	if err != nil {
		return fmt.Errorf("migrations: renew lock: %w", err)
	}
	if !applied {
		return ErrLockLost
	}
	return nil
}

func (m *migrator) apply(ctx context.Context, mig Migration) error {
	start := time.Now()
	for i, stmt := range mig.Bound(m.ks) {
		if err := m.renew(ctx); err != nil {
			return fmt.Errorf("migrations: %s: %w", mig.Name, err)
		}
		if err := m.ddl(ctx, stmt); err != nil {
			return fmt.Errorf("migrations: %s statement %d: %w", mig.Name, i+1, err)
		}
	}
	rec := fmt.Sprintf(`INSERT INTO %s.schema_migrations (name, version, checksum, applied_at, applied_by) VALUES (?, ?, ?, ?, ?) IF NOT EXISTS`, m.ks)
	got := map[string]any{}
	applied, err := m.lwt(rec, mig.Name, mig.Version, mig.Checksum, time.Now(), m.cfg.Owner).MapScanCASContext(ctx, got)
	if err != nil {
		return fmt.Errorf("migrations: record %s: %w", mig.Name, err)
	}
	if !applied {
		// Only possible if the lock was lost; the record must still agree.
		if sum, _ := got["checksum"].(string); sum != mig.Checksum {
			return fmt.Errorf("%w: %s recorded concurrently with checksum %s, the file has %s", ErrChecksumMismatch, mig.Name, sum, mig.Checksum)
		}
	}
	m.log.Info("migration applied", "name", mig.Name, "statements", len(mig.Statements), "took", time.Since(start).Round(time.Millisecond))
	return nil
}
