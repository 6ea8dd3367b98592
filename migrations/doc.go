// Package migrations holds Herald's Cassandra schema as numbered CQL files
// (NNNN_name.cql, embedded in the binary) and applies them in order: `herald
// migrate` calls Apply (or Run), and so do the tests of store/cassandra.
//
// Files. Each file is a list of statements separated by semicolons; `--`,
// `//` and `/* */` comments are ignored. Every statement names its tables as
// ${keyspace}.table: the placeholder is replaced by the target keyspace, so
// the same files build any keyspace (a test run creates a throwaway one).
// Every statement must be idempotent (CREATE ... IF NOT EXISTS, ALTER ...
// IF EXISTS, ...): a migrator that dies half-way through a file re-runs the
// whole file, since only complete files are recorded. An applied file must
// never be edited: add a new file instead. Its checksum is recorded and a
// change is reported as ErrChecksumMismatch.
//
// The keyspace itself is created by the migrator, not by a file, because its
// replication is a deployment choice (Config.Replication): SimpleStrategy
// with replication factor 1 for development and CI, NetworkTopologyStrategy
// with per-datacenter factors in production. An existing keyspace is never
// altered; a replication that differs from the configured one is logged.
//
// Bookkeeping. Applied files are recorded in ${keyspace}.schema_migrations
// (name, version, checksum, applied_at, applied_by), written with a
// lightweight transaction (INSERT ... IF NOT EXISTS).
//
// Concurrency. Several processes may run migrations at once (every replica of
// a deployment at start-up). They serialise on a lock row in
// ${keyspace}.schema_migrations_lock, taken with INSERT ... IF NOT EXISTS
// USING TTL (Config.LockTTL) and renewed with a conditional UPDATE before each
// statement; the TTL frees the lock of a migrator that died. A lock rather
// than relying on IF NOT EXISTS alone, because Cassandra before 5.1 does not
// serialise schema changes: the same CREATE TABLE IF NOT EXISTS run at the
// same moment through two coordinators can create the table twice with two
// different table ids, a schema disagreement that needs manual repair. The
// statements are still idempotent, which makes re-running a file after a
// crash (or after losing the lock) safe. Only the keyspace and the two
// bookkeeping tables are created before the lock exists (once in a
// keyspace's life; later runs issue the same CREATE ... IF NOT EXISTS, a
// no-op that also waits for a concurrent creation to be usable). A migrator
// that finds nothing pending never takes the lock, so a fleet restarting on
// an up-to-date schema costs three no-op statements and a few reads.
//
// After every schema change the migrator waits for schema agreement
// (Session.AwaitSchemaAgreement) before the next statement, so a table
// exists on every node before anything uses it.
package migrations
