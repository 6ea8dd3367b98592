//go:build integration

package migrations

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/heraldhq/herald/internal/stacktest"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// session connects to the integration Cassandra with the stack's settings
// (internal/stacktest: HERALD_CASSANDRA_* or .stack/herald.env, default
// 127.0.0.1:9042). An unreachable Cassandra fails the test: the
// integration suite never skips.
func session(t *testing.T) *gocql.Session {
	t.Helper()
	c := stacktest.CassandraCluster()
	c.Consistency = gocql.LocalQuorum
	c.Timeout = 30 * time.Second // DDL on a loaded 2-core machine
	c.ConnectTimeout = 10 * time.Second
	s, err := c.CreateSession()
	if err != nil {
		t.Fatalf("Cassandra is unreachable (%v): start it with `bash scripts/stack/stack.sh up` "+
			"or point HERALD_CASSANDRA_HOSTS (and its user, password, TLS) at one; settings: %s", err, stacktest.Describe())
	}
	t.Cleanup(s.Close)
	return s
}

// freshKeyspace returns a keyspace name unique to this test, dropped at the end.
func freshKeyspace(t *testing.T, s *gocql.Session) string {
	t.Helper()
	var b [5]byte
	_, _ = rand.Read(b[:])
	ks := "herald_test_" + hex.EncodeToString(b[:])
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := s.Query("DROP KEYSPACE IF EXISTS " + ks).ExecContext(ctx); err != nil {
			t.Logf("drop keyspace %s: %v", ks, err)
		}
	})
	return ks
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func recordedRows(t *testing.T, s *gocql.Session, ks string) map[string]string {
	t.Helper()
	iter := s.Query("SELECT name, checksum FROM " + ks + ".schema_migrations").Iter()
	out := map[string]string{}
	var name, sum string
	for iter.Scan(&name, &sum) {
		out[name] = sum
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("read schema_migrations: %v", err)
	}
	return out
}

func tablesOf(t *testing.T, s *gocql.Session, ks string) map[string]bool {
	t.Helper()
	iter := s.Query(`SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?`, ks).Iter()
	out := map[string]bool{}
	var name string
	for iter.Scan(&name) {
		out[name] = true
	}
	if err := iter.Close(); err != nil {
		t.Fatalf("read tables: %v", err)
	}
	return out
}

// withDetector is the embedded files plus one whose statement is not
// idempotent (a counter increment): it counts how often files are applied.
func withDetector(t *testing.T) fs.FS {
	t.Helper()
	m := fstest.MapFS{}
	migs, err := fs.ReadDir(Files(), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range migs {
		b, err := fs.ReadFile(Files(), e.Name())
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = &fstest.MapFile{Data: b}
	}
	m["0900_detector_table.cql"] = &fstest.MapFile{Data: []byte(
		"CREATE TABLE IF NOT EXISTS ${keyspace}.detector (k int PRIMARY KEY, n counter);")}
	m["0901_detector_hit.cql"] = &fstest.MapFile{Data: []byte(
		"-- deliberately not idempotent: counts applications\nUPDATE ${keyspace}.detector SET n = n + 1 WHERE k = 1;")}
	return m
}

func detectorHits(t *testing.T, s *gocql.Session, ks string) int64 {
	t.Helper()
	var n int64
	if err := s.Query("SELECT n FROM " + ks + ".detector WHERE k = 1").Scan(&n); err != nil {
		t.Fatalf("read detector: %v", err)
	}
	return n
}

func TestApplyTwice(t *testing.T) {
	s := session(t)
	ks := freshKeyspace(t, s)
	ctx := testCtx(t)
	if err := Apply(ctx, s, ks, quiet); err != nil {
		t.Fatalf("first Apply: %v", err)
	}
	migs, _ := Load(Files())
	rec := recordedRows(t, s, ks)
	if len(rec) != len(migs) {
		t.Fatalf("schema_migrations has %d rows, want %d", len(rec), len(migs))
	}
	for _, m := range migs {
		if rec[m.Name] != m.Checksum {
			t.Fatalf("%s recorded with checksum %q, want %q", m.Name, rec[m.Name], m.Checksum)
		}
	}
	tables := tablesOf(t, s, ks)
	for _, want := range []string{"inbox", "claims", "preferences", "devices", "device_owner", "push_progress", "writer_epochs",
		"policy_state", "policy_due", "policy_cursor",
		"subscriptions_by_user", "subscriptions_by_topic", "subscription_counts",
		"feed_items", "feed_events", "feed_heads", "feed_cursors", "schema_migrations", "schema_migrations_lock"} {
		if !tables[want] {
			t.Fatalf("table %s missing after Apply (have %v)", want, tables)
		}
	}
	var replication map[string]string
	if err := s.Query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?`, ks).Scan(&replication); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(replication["class"], "SimpleStrategy") || replication["replication_factor"] != "1" {
		t.Fatalf("keyspace replication %v, want SimpleStrategy rf 1", replication)
	}
	if err := Apply(ctx, s, ks, quiet); err != nil {
		t.Fatalf("second Apply: %v", err)
	}
	if got := recordedRows(t, s, ks); len(got) != len(migs) {
		t.Fatalf("after second Apply: %d rows", len(got))
	}
}

func TestApplyConcurrent(t *testing.T) {
	s := session(t)
	ks := freshKeyspace(t, s)
	ctx := testCtx(t)
	files := withDetector(t)
	// Each migrator has its own session, as separate processes would.
	sessions := []*gocql.Session{s, session(t), session(t)}
	var wg sync.WaitGroup
	errs := make([]error, len(sessions))
	for i, ss := range sessions {
		wg.Go(func() {
			errs[i] = Run(ctx, ss, Config{Keyspace: ks, Files: files, Logger: quiet, LockPoll: 100 * time.Millisecond})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("migrator %d: %v", i, err)
		}
	}
	if n := detectorHits(t, s, ks); n != 1 {
		t.Fatalf("the non-idempotent migration ran %d times, want once", n)
	}
	migs, _ := Load(files)
	if rec := recordedRows(t, s, ks); len(rec) != len(migs) {
		t.Fatalf("schema_migrations has %d rows, want %d", len(rec), len(migs))
	}
	// And a later run changes nothing.
	if err := Run(ctx, s, Config{Keyspace: ks, Files: files, Logger: quiet}); err != nil {
		t.Fatalf("later Run: %v", err)
	}
	if n := detectorHits(t, s, ks); n != 1 {
		t.Fatalf("after a later run the detector counts %d", n)
	}
	// The lock was released.
	var owner string
	err := s.Query("SELECT owner FROM "+ks+".schema_migrations_lock WHERE name = ?", lockName).Consistency(gocql.Serial).Scan(&owner)
	if !errors.Is(err, gocql.ErrNotFound) {
		t.Fatalf("lock row after the runs: owner %q, err %v; want no row", owner, err)
	}
}

func TestChecksumMismatch(t *testing.T) {
	s := session(t)
	ks := freshKeyspace(t, s)
	ctx := testCtx(t)
	v1 := fstest.MapFS{"0001_t.cql": {Data: []byte("CREATE TABLE IF NOT EXISTS ${keyspace}.t (k int PRIMARY KEY);")}}
	if err := Run(ctx, s, Config{Keyspace: ks, Files: v1, Logger: quiet}); err != nil {
		t.Fatalf("Run v1: %v", err)
	}
	edited := fstest.MapFS{
		"0001_t.cql": {Data: []byte("CREATE TABLE IF NOT EXISTS ${keyspace}.t (k int PRIMARY KEY, v text);")},
		"0002_u.cql": {Data: []byte("CREATE TABLE IF NOT EXISTS ${keyspace}.u (k int PRIMARY KEY);")},
	}
	err := Run(ctx, s, Config{Keyspace: ks, Files: edited, Logger: quiet})
	if !errors.Is(err, ErrChecksumMismatch) {
		t.Fatalf("Run with an edited applied file = %v, want ErrChecksumMismatch", err)
	}
	if tablesOf(t, s, ks)["u"] {
		t.Fatal("a checksum mismatch still applied the next file")
	}
	// Adding a file (without editing) applies just it.
	added := fstest.MapFS{"0001_t.cql": v1["0001_t.cql"], "0002_u.cql": edited["0002_u.cql"]}
	if err := Run(ctx, s, Config{Keyspace: ks, Files: added, Logger: quiet}); err != nil {
		t.Fatalf("Run with an added file: %v", err)
	}
	if !tablesOf(t, s, ks)["u"] {
		t.Fatal("the added file was not applied")
	}
	if got := recordedRows(t, s, ks); len(got) != 2 {
		t.Fatalf("recorded %v", got)
	}
}

// TestStaleLockExpires: a migrator that died holding the lock blocks others
// only until the lock's TTL ends.
func TestStaleLockExpires(t *testing.T) {
	s := session(t)
	ks := freshKeyspace(t, s)
	ctx := testCtx(t)
	base := fstest.MapFS{"0001_t.cql": {Data: []byte("CREATE TABLE IF NOT EXISTS ${keyspace}.t (k int PRIMARY KEY);")}}
	if err := Run(ctx, s, Config{Keyspace: ks, Files: base, Logger: quiet}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// A dead migrator's lock, two seconds left to live.
	if err := s.Query("INSERT INTO "+ks+".schema_migrations_lock (name, owner, locked_at) VALUES (?, ?, ?) USING TTL 2",
		lockName, "dead-migrator", time.Now()).Exec(); err != nil {
		t.Fatal(err)
	}
	more := fstest.MapFS{"0001_t.cql": base["0001_t.cql"], "0002_u.cql": {Data: []byte("CREATE TABLE IF NOT EXISTS ${keyspace}.u (k int PRIMARY KEY);")}}
	if err := Run(ctx, s, Config{Keyspace: ks, Files: more, Logger: quiet, LockPoll: 200 * time.Millisecond}); err != nil {
		t.Fatalf("Run behind a stale lock: %v", err)
	}
	if !tablesOf(t, s, ks)["u"] {
		t.Fatal("file not applied after the stale lock expired")
	}

	// While a live lock is held, a migrator with pending work waits until its
	// context ends.
	if err := s.Query("INSERT INTO "+ks+".schema_migrations_lock (name, owner, locked_at) VALUES (?, ?, ?) USING TTL 60",
		lockName, "busy-migrator", time.Now()).Exec(); err != nil {
		t.Fatal(err)
	}
	third := fstest.MapFS{"0001_t.cql": more["0001_t.cql"], "0002_u.cql": more["0002_u.cql"],
		"0003_v.cql": {Data: []byte("CREATE TABLE IF NOT EXISTS ${keyspace}.v (k int PRIMARY KEY);")}}
	short, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	err := Run(short, s, Config{Keyspace: ks, Files: third, Logger: quiet, LockPoll: 100 * time.Millisecond})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Run while the lock is held = %v, want a context deadline error", err)
	}
	if tablesOf(t, s, ks)["v"] {
		t.Fatal("applied a file without the lock")
	}
}

func TestNetworkTopologyKeyspace(t *testing.T) {
	s := session(t)
	ks := freshKeyspace(t, s)
	ctx := testCtx(t)
	var dc string
	if err := s.Query("SELECT data_center FROM system.local").Scan(&dc); err != nil {
		t.Fatal(err)
	}
	r, err := ParseReplication(dc + "=1")
	if err != nil {
		t.Fatal(err)
	}
	one := fstest.MapFS{"0001_t.cql": {Data: []byte("CREATE TABLE IF NOT EXISTS ${keyspace}.t (k int PRIMARY KEY);")}}
	if err := Run(ctx, s, Config{Keyspace: ks, Files: one, Replication: r, Logger: quiet}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	var replication map[string]string
	if err := s.Query(`SELECT replication FROM system_schema.keyspaces WHERE keyspace_name = ?`, ks).Scan(&replication); err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(replication["class"], "NetworkTopologyStrategy") || replication[dc] != "1" {
		t.Fatalf("replication %v, want NetworkTopologyStrategy %s=1", replication, dc)
	}
	if !r.matches(replication) {
		t.Fatalf("matches(%v) = false for %v", replication, r)
	}
}

// TestPolicySchema: 0007's due index expires by TTL (30 days, the
// store's PolicyDueRetention) under time-window compaction in 1-day
// windows, and its times are bigint microseconds, not millisecond
// timestamps.
func TestPolicySchema(t *testing.T) {
	s := session(t)
	ks := freshKeyspace(t, s)
	ctx := testCtx(t)
	if err := Apply(ctx, s, ks, quiet); err != nil {
		t.Fatalf("Apply: %v", err)
	}
	var (
		ttl        int
		compaction map[string]string
	)
	if err := s.Query(`SELECT default_time_to_live, compaction FROM system_schema.tables WHERE keyspace_name = ? AND table_name = 'policy_due'`, ks).
		ScanContext(ctx, &ttl, &compaction); err != nil {
		t.Fatal(err)
	}
	if ttl != 30*24*3600 {
		t.Errorf("policy_due default_time_to_live = %d, want 30 days", ttl)
	}
	if !strings.HasSuffix(compaction["class"], "TimeWindowCompactionStrategy") ||
		compaction["compaction_window_unit"] != "DAYS" || compaction["compaction_window_size"] != "1" {
		t.Errorf("policy_due compaction = %v, want TWCS with 1-day windows", compaction)
	}
	for _, table := range []string{"policy_due", "policy_cursor"} {
		var typ string
		if err := s.Query(`SELECT type FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ? AND column_name = 'at_us'`, ks, table).
			ScanContext(ctx, &typ); err != nil {
			t.Fatalf("%s.at_us: %v", table, err)
		}
		if typ != "bigint" {
			t.Errorf("%s.at_us is %s, want bigint (unix microseconds)", table, typ)
		}
	}
}
