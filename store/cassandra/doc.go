// Package cassandra is Herald's production store: a store.Store on Apache
// Cassandra (5.0; 4.1 works, not 4.0: migration 0005 uses ALTER TABLE ...
// ADD IF NOT EXISTS) through github.com/apache/cassandra-gocql-driver/v2.
// The schema lives in package migrations; Open only checks that it is there.
//
// # One partition per user, one conditional batch per change
//
// Everything Append must change together lives in the user's partition of
// one table, inbox, distinguished by a "kind" clustering column:
//
//	inbox PRIMARY KEY ((user_id), kind, seq, event_key)
//	  kind 0  anchor        (0, 0, "")             no TTL
//	  kind 1  notification  (1, seq, "")           id, event_id, type, ..., data, created_at
//	  kind 2  unread marker (2, seq, "")           exists iff seq is unread (above read_upto)
//	  kind 3  event index   (3, 0, event_id)       target_seq: dedup by event id
//	  static  rev, last_seq, unread, read_upto, op (per-user state, no TTL)
//
// Cassandra applies a batch whose statements all target one partition
// atomically and in isolation, and a batch with a condition (IF ...) runs as
// one Paxos round: the condition is checked and the whole batch applied, or
// nothing is. So every change of a user's inbox is one conditional batch
// carrying
//
//	UPDATE inbox SET rev = r+1, last_seq = ..., unread = ..., read_upto = ..., op = <new id>
//	WHERE user_id = ? IF rev = r
//
// where r is the rev read at the start of the attempt (null for a new user).
// A concurrent change in between makes the condition fail, nothing is
// written, and the call starts over from a fresh read (a compare-and-set
// loop, bounded by Config.MaxCASAttempts, ErrContention beyond).
//
// Notes on the layout:
//   - The anchor row is the partition's first row and never expires, so
//     reading the statics is a point read of (0, 0, "") that touches no
//     other row, however many expired notifications precede it in storage.
//   - Seqs are dense: Append gives seq = last_seq+1, +2, ... in the same
//     batch that raises last_seq, so Prev = Seq-1 always and is not stored.
//   - Notification rows are immutable; the read flag is derived: seq is read
//     iff seq <= read_upto or it has no unread marker. MarkRead never
//     rewrites a notification (no read-before-write of large rows, and no
//     risk of resurrecting an expired row as a ghost by updating it).
//   - Every write to inbox goes through Paxos, so all its cells carry
//     ballot timestamps, monotonic per partition; mixing in plain writes
//     (client timestamps) is what makes LWT tables misbehave, and there are
//     none.
//   - claims, preferences, devices, device_owner and push_progress are
//     separate tables (see migrations); claims have a partition per (user,
//     event id) so claims never contend with each other.
//
// # Append: order of writes and crash safety
//
// For each user (users run in parallel, at most Config.AppendConcurrency),
// for each part of at most Config.MaxBatch of its notifications:
//
//  1. read, in one query (kind IN (0, 3) AND seq = 0 AND event_key IN
//     ("", ids...)), the anchor row with the statics (rev, last_seq, unread,
//     read_upto, op) and the event-index entries of the part's event ids:
//     one snapshot of the partition (a part of more than 100 ids reads the
//     rest right after, which only sees more recent state);
//  2. read the notifications the found entries point to (duplicates: they
//     are returned with Created=false, as stored);
//  3. build one batch: for each new event, the notification row at
//     last_seq+k, its unread marker and its event-index entry (all USING
//     TTL retention), the anchor for a new user, and the commit above with
//     last_seq+n, unread+n;
//  4. execute it conditionally (IF rev = r).
//
// There is no order of writes to get right because there is one write: the
// rows, the dedup entries and the counters become visible together or not
// at all. A crash (of the enricher, or a lost connection) at any point
// leaves either the whole part or nothing; a replay of the same records
// finds every event id of a committed part in the index and returns the
// stored copies with their original seqs, and assigns fresh seqs, starting
// at last_seq+1, to the rest, so no event gets two seqs and no seq is
// skipped. A concurrent second writer of the same user (a zombie enricher
// that lost its partition but still runs) cannot interleave: both read rev
// r, Paxos lets one commit, the other's condition fails and it re-reads
// (then finds the events already there). Because step 1 reads the dedup
// entries and rev in one snapshot, an attempt that misses an event also
// read a rev older than the commit that stored it, so its own commit fails.
//
// The one case the client cannot decide alone is a commit whose answer is
// lost (a timeout: Paxos may or may not have completed). Each attempt
// writes a fresh random op id in the statics; after such an error the loop
// re-reads the statics at SERIAL (LOCAL_SERIAL) consistency, which finishes
// any Paxos round in flight on the partition, and the commit happened iff
// op is the attempt's id. The call then returns what that attempt planned
// (Created=true), not a misleading Created=false. Claim needs no such step:
// re-running its INSERT ... IF NOT EXISTS finds its own token.
//
// Parts of one user are committed in order, and users independently, so an
// Append that fails half-way has stored a prefix of some users'
// notifications; the contract (replay returns the same seqs) holds because
// the replay finds each stored event by id.
//
// # Unread count: O(1) and idempotent
//
// UnreadCount is the unread static: one point read. It is never a Cassandra
// counter (counter updates are not idempotent: a retried increment may count
// twice, and they cannot take part in a conditional batch). It is a plain
// bigint set to an absolute value by the same conditional batch that changes
// the markers, so it always equals the number of live markers above
// read_upto, and a retried or replayed commit cannot apply twice (its
// condition no longer holds):
//   - Append: +n, with the n markers.
//   - MarkRead(seqs): reads which of seqs have a marker (IN query), deletes
//     those markers and sets unread - k. Read or unknown seqs cost one read
//     and no write.
//   - MarkAllRead: sets read_upto = last_seq and unread = 0; markers at or
//     below read_upto become moot without being deleted (no tombstones) and
//     expire with their notifications. O(1) whatever the number of unread.
//   - List(unreadOnly) walks markers from max(after, read_upto).
//
// The cost is contention: MarkRead from the API and Append from the
// enricher compete for the same rev, and a loser re-reads and retries (the
// herald_cassandra_cas_conflicts_total metric counts it). Each change is a
// Paxos round (about four replica round trips instead of one), which is the
// price of counters that are exact under retries, concurrent writers and
// crashes. Reads are plain LOCAL_QUORUM reads.
//
// # Retention (TTL)
//
// Notification rows, their unread markers and event-index entries are
// written USING TTL Config.Retention (default 90 days; the table's
// default_time_to_live is a safety net) and expire together. The statics
// and the anchor are written with TTL 0, so last_seq never resets: seqs
// keep increasing across expiry and a client's after=<seq> stays valid.
// What expiry does:
//   - The oldest retained notification has a Prev whose notification is
//     gone: a client listing from 0 sees a first "gap" that is retention.
//   - An unread notification that expires stays counted in unread until
//     the user's next MarkAllRead (which sets the count to 0): nothing
//     decrements a counter when a TTL fires. With a 90-day retention this
//     only affects users who leave notifications unread for 90 days.
//   - A replay of an event older than the retention is stored again as
//     new; Kafka retention is far shorter than the inbox's.
//   - Expired rows are tombstones until compaction purges them
//     (gc_grace_seconds after expiry); reads starting at the head of a long
//     inbox (List from 0) skip them. Reads by seq (resume, unread walk,
//     statics) start past them.
//
// # Device registry: one owner per token
//
// A token belongs to at most one user, and a token registered by another
// user moves (phones change accounts). That is a change of two users'
// partitions, which no single-partition transaction covers, so the truth
// lives in a third place, the token's own row:
//
//	device_owner PRIMARY KEY (device_token)
//	  user_id, gen, platform, app_id, created_at, registered_at, last_seen
//	devices      PRIMARY KEY ((user_id), device_token)   the index by user
//
// Every change of a device_owner row is a lightweight transaction
// conditioned on the (user_id, gen) read before it (UPDATE ... IF user_id
// = ? AND gen = ?, INSERT ... IF NOT EXISTS for a new token), and sets gen
// to nextGen: above the previous gen and at least the current time in
// microseconds. Paxos serialises them: of two users registering one token
// at once, one wins, the other's condition fails, it re-reads (at SERIAL)
// and moves the token from the winner on its next attempt, so the row
// always names the last registrant and gen strictly increases with each
// change. There are no plain writes to device_owner (no mixing of
// client and ballot timestamps on an LWT table). Deleting a token
// (DeleteDevice, DeleteDeviceIfStale) clears user_id and raises gen,
// keeping the row so gen keeps increasing if the token comes back; one
// small row stays per token ever registered.
//
// After its transaction, a call writes the index: the new owner's row, and
// the deletion of the previous owner's, in one logged batch, both stamped
// USING TIMESTAMP gen. The index writes of successive owners may reach
// the replicas in any order (a slow API instance, a driver retry), but
// Cassandra keeps the write with the highest timestamp, that is the one of
// the latest change: an old owner's insert arriving late cannot resurrect
// its row over a later deletion, and a late deletion cannot remove a row
// registered again since. gen being at least the wall clock also puts
// these writes above the rows that builds before migration 0005 wrote with
// client timestamps.
//
// Devices(user) reads the user's index, then the owner rows of those
// tokens (one IN query per 100), and lists a token only if its owner row
// names the user. So an index row left behind (a crash between the
// transaction and the index batch, or a lost batch) is never listed, and
// the moment a move's transaction commits the token disappears from the
// previous owner's list, whatever became of its index row. The one window
// the filter cannot hide is the reverse: a registration whose transaction
// committed but whose index batch was lost is not listed until the client
// retries the failed call (which it does: the call returned an error).
//
// DeleteDeviceIfStale judges the registered_at of the row its transaction
// is conditioned on: a registration landing in between changes gen, the
// transaction fails, and the new registration is judged (and kept) on the
// next attempt. TouchDevice reads the row and, only when last_seen is more
// than store.TouchInterval older than the sighting, runs UPDATE ... SET
// last_seen IF user_id = ? AND gen = ?: at most one Paxos round per device
// per hour, never recreating a deleted or moved device; a lost race is
// not retried (a sighting is advisory). Rows from builds before 0005 have
// null gen, data and times: they are conditioned on as null, their data is
// read from the index row, their last_seen reads as created_at and their
// missing registered_at as older than any feedback (the registration
// predates any pusher of this build).
//
// A device_owner transaction whose answer is lost (timeout) is not
// resolved in the call: it returns the error, and the caller's retry
// re-reads the row, recognises its own write by (user_id, gen) and
// completes the index. The driver may retry these transactions (they are
// marked idempotent) for the same reason: a retry of one that applied
// fails its condition and the re-read finds the call's own gen.
//
// # Push progress
//
//	push_progress PRIMARY KEY ((user_id, job_id), device_token)   sent_at
//
// MarkPushSent is one plain INSERT USING TTL the retention (or
// store.DefaultPushProgressTTL when the retention is forever): idempotent
// (a retry rewrites the same row) and retried by the driver. PushSent reads
// the (user, job) partition, a handful of rows. Nothing else touches the
// table; rows expire by TTL (the table's 90-day default_time_to_live is a
// safety net).
//
// # Driver settings
//
// Statements are constant strings with bind markers, prepared once per host
// by the driver and reused. Requests are routed token-aware (to a replica of
// the partition; DC-aware when Config.LocalDC is set), at
// Config.Consistency (default LOCAL_QUORUM) with lightweight transactions at
// Config.SerialConsistency (default LOCAL_SERIAL). Reads and plain writes
// are marked idempotent and retried by the driver with backoff
// (Config.MaxRetries); conditional batches are not (a retried commit is
// handled by the compare-and-set loop, see above), except Claim, whose retry
// is safe. Config.Timeout bounds each request.
//
// # Known limits
//
//   - One user's changes are serialised through Paxos on one partition: a
//     user receiving thousands of notifications per second, or reading
//     from many devices at once, is bounded by LWT throughput on one
//     replica set.
//   - A user's partition grows with retention (about 3 small rows per
//     notification plus its content); keep notifications small.
//   - Registering, deleting or moving a device token is a Paxos round on
//     the token's row plus a logged batch; listing a user's devices is two
//     reads (the index, then the owners). Fine for registrations (rare)
//     and for the pusher's one listing per job.
package cassandra
