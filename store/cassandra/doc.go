// Package cassandra is Herald's production store: a store.Store on Apache
// Cassandra (5.0; 4.1 works, not 4.0: migration 0005 uses ALTER TABLE ...
// ADD IF NOT EXISTS) through github.com/apache/cassandra-gocql-driver/v2.
// The schema lives in package migrations; Open only checks that it is there.
//
// # One partition per user: fenced writes for appends, transactions for reads
//
// Everything Append must change together lives in the user's partition of
// one table, inbox, distinguished by a "kind" clustering column:
//
//	inbox PRIMARY KEY ((user_id), kind, seq, event_key)
//	  kind 0  anchor        (0, 0, "")             no TTL
//	  kind 1  notification  (1, seq, "")           id, event_id, type, ..., data, created_at
//	  kind 3  event index   (3, 0, event_id)       target_seq: dedup by event id
//	  kind 4  read marker   (4, seq, "")           exists iff seq was marked read singly
//	  static  last_seq                            the writer's
//	  static  rev, read_upto, read_above, op      the readers'
//
// (kind 2, the unread markers of builds before migration 0006, is no
// longer read or written.) Cassandra applies a batch whose statements all
// target one partition atomically and in isolation on each replica, with
// or without a condition. The cells of the partition have two owners that
// never write each other's cells:
//
//   - The writer (the enricher owning the user's Kafka partition) writes
//     notification rows, event-index entries, the anchor and last_seq,
//     with plain batches (one per user per part of a poll, no Paxos),
//     stamped with timestamps of its epoch (next section).
//   - The readers (MarkRead, MarkAllRead from the API) write rev, read_upto,
//     read_above, op and the read markers with one conditional batch per
//     change, UPDATE ... SET rev = r+1, ... IF rev = r: a compare-and-set
//     loop, as in every build before.
//
// No cell is thus ordered both by Paxos ballots and by the writer's
// timestamps, which is what makes plain and conditional writes safe side
// by side in one partition (mixing them on the same cells is what breaks
// LWT tables).
//
// Seqs are dense: Append gives seq = last_seq+1, +2, ... in the same batch
// that raises last_seq, so Prev = Seq-1 always and is not stored. A seq is
// read iff seq <= read_upto or it has a read marker; read_above is the
// number of read markers above read_upto, so the unread count is
// last_seq - read_upto - read_above, one point read. Notification rows are
// immutable and MarkRead never rewrites one.
//
// # Fencing: one transaction per partition assignment, not one per user
//
// A writer is handed out by Fence(scope), where the enricher's scope is
// the source partition ("herald.events/3"). Fence runs one lightweight
// transaction on the scope's row of writer_epochs:
//
//	writer_epochs PRIMARY KEY (scope)   epoch, base, op, claimed_at
//	UPDATE ... SET epoch = e+1, base = max(now_us, base + 2^32) ... IF epoch = e
//
// The writer of epoch e stamps its batches USING TIMESTAMP base_e + 1,
// base_e + 2, ... (one per batch, at most 2^32 - 1 of them), so every
// timestamp of epoch e is below base_{e+1} and hence below every timestamp
// of epoch e+1. Cassandra resolves each cell by its timestamp, so on every
// cell both wrote, the newer epoch wins whatever the order in which the
// writes reach the replicas. That is the whole fence: a zombie enricher
// (paused past its session, its partition given to another member) whose
// batches land late cannot overwrite anything its successor wrote.
//
// What a late write of epoch e can still leave is cells the successor has
// not written (yet): rows and index entries at seqs past the successor's
// last_seq, and index entries of events the successor never stored. Those
// are never read as data:
//
//   - readers list rows only up to last_seq (it comes with every listed row
//     as a static), so a row past it does not exist for them; when the
//     successor reaches that seq it writes the whole row (every column,
//     nulls included) with a higher timestamp;
//   - an event-index entry counts only if it points at or below last_seq
//     and the row there holds that event id; otherwise the event is new;
//   - last_seq itself is written by every batch, so the successor's value
//     wins from its first write on.
//
// A late write that lands before the successor's first read of that user
// is simply the state the successor starts from: a whole batch (atomic per
// partition), consistent, of the same source records (the successor
// replays them from the last committed offset and finds them stored, with
// the IDs derived from the records, Created=false, and delivers them).
// The one interleaving a reader can observe is a late batch that lands
// between the successor's read and write of one user: for those few
// milliseconds List shows the late batch's rows, then the successor's
// write replaces last_seq and they disappear again (and the successor
// stores the same records at the same seqs unless their routing changed).
// None of it is ever delivered: the zombie's Kafka transaction cannot
// commit, so its deliveries never reach read_committed consumers.
//
// Each Append also reads the scope's epoch first and returns
// store.ErrFenced if it moved on, so a zombie stops at its next call; the
// timestamps are what makes the calls already past that check harmless.
//
// Correctness of the counters and seqs rests on one writer per user at a
// time, which the epoch provides across processes and the Writer's
// per-user lock within one; and on every user of a scope being written
// only through that scope (the enricher's scope is the record's partition,
// and Kafka keys events by user id: producers must use one partitioner,
// see docs/ARCHITECTURE.md). Fence's base is at least the client's clock,
// which keeps the new plain writes above the transaction-stamped last_seq
// of builds before 0006 (clocks of the enricher and Cassandra within a few
// seconds of each other).
//
// # Append: order of writes and crash safety
//
// An Append runs in rounds. Each round takes the next part (at most
// Config.MaxBatch notifications) of every user that has one, and for each
// (users in parallel, at most Config.AppendConcurrency):
//
//  1. read, in one query (kind IN (0, 3) AND seq = 0 AND event_key IN
//     ("", ids...)), the anchor row with the statics and the event-index
//     entries of the part's event ids, unless the writer's cache (next
//     section) knows every one of the ids to be new;
//  2. read the notifications the valid entries point to (duplicates: they
//     are returned with Created=false, as stored);
//  3. plan the part's writes: for each new event, the notification row at
//     last_seq+k and its event-index entry (USING TTL retention), the
//     anchor for a new user, and last_seq = last_seq+n;
//
// then writes the round's parts, several users' parts per request (see
// "Several users per request"), each request stamped with the epoch's
// next timestamp. One user's part is in one request, and Cassandra applies
// the writes of one request to one partition as one mutation.
//
// There is no order of writes to get right because there is one write: the
// rows, the dedup entries and last_seq become visible together or not at
// all. A crash (of the enricher, or a lost connection) at any point leaves
// either the whole part or nothing; a replay of the same records finds
// every event id of a stored part in the index and returns the stored
// copies with their original seqs, and assigns fresh seqs, starting at
// last_seq+1, to the rest, so no event gets two seqs and no seq is
// skipped. The batch is idempotent (the same cells, the same timestamp),
// so the driver retries it; a batch whose answer was lost and that landed
// after all is, for the next attempt (a fresh read, a later timestamp),
// either already visible (its events are found) or overwritten, exactly
// like a zombie's.
//
// Parts of one user are written in order (in successive rounds, each
// with a later timestamp), and users independently, so an Append that
// fails half-way has stored a prefix of some users' notifications; the
// contract (replay returns the same seqs) holds because the replay finds
// each stored event by id.
//
// # Several users per request
//
// A request costs the node about as much again as the rows it writes
// (here, 190-320 µs of Cassandra CPU for one user's part of two
// notifications, and 130-170 µs a part when 8-32 users' parts share an
// unlogged batch; the client's cost per part halves), so a round's parts
// go out several to a request: up to Config.GroupUsers (10) users and
// Config.GroupBytes (5,000 estimated bytes). A batch of several
// partitions is not atomic across them, and none of this needs it: each
// user's part is one partition's mutation, applied whole or not at all,
// exactly like the single-user batch it replaces; the fencing argument
// is per cell and timestamp, and a request's one timestamp is above every
// earlier request's. A request that fails (or whose answer is lost) may
// have landed for some of its users and not others; all of them are then
// treated like a failed single-user batch: the Append fails, their cached
// states are dropped, and the replay reads them.
//
// On a cluster, such a batch is coordinated by a replica of its first
// statement's partition (token-aware routing, not shuffled), which
// forwards the other partitions' mutations to their replicas: an extra
// hop per partition unless every partition shares that coordinator. So
// parts are grouped by owner: the first host of the local datacenter
// clockwise from the partition's Murmur3 token (ring.go), which is a
// replica under SimpleStrategy and NetworkTopologyStrategy and is where
// the driver sends the batch. The ring is computed from the hosts' tokens
// the driver knows, again every 10 s; with another partitioner, or no
// tokens known, each user is written alone, as with GroupUsers 1.
//
// The limits are Cassandra's defaults for such batches: above
// unlogged_batch_across_partitions_warn_threshold (10 partitions) the
// node warns, and above batch_size_warn_threshold (5 KiB) it logs a
// warning for every batch, and refuses one above batch_size_fail_threshold
// (50 KiB); a single user's part is exempt from both, so one larger than
// GroupBytes goes alone. The byte estimate is above what the node counts.
//
// # The writer's cache: one write per user per poll, not a read and a write
//
// The read of step 1 is half of an append's requests and exists only to
// learn last_seq and which of the part's event ids are stored. Both are
// cells the writer of the epoch owns: nothing else writes last_seq or the
// event index. So each writer keeps, per user it has appended to, last_seq,
// the anchor, and a 64-bit hash (maphash, random seed) of every event id in
// the user's index, and writes a part whose ids are all absent from that
// set straight away, with seqs after the known last_seq: one batch, no
// read. A part with an id whose hash is present (a replay, an upstream
// duplicate, or a hash collision), and every part of a user whose index
// held more than Config.WriterCacheIDs/64 entries when loaded, go the
// uncached way: the read of step 1, whose answer is the truth, and after
// which the state follows the batch written.
//
// Why "absent" can be trusted. The state is loaded, once per user and
// epoch, by one paged read of the anchor with the statics and the whole
// event index (kind IN (0, 3) AND seq = 0), in place of the first part's
// read; from then on every entry the user's partition gains is written by
// this writer, which adds its hash. Entries only disappear (TTL), so the
// set is a superset of the stored index; an expired entry only turns a new
// event into a "maybe", which the uncached read then finds absent. The one
// other source of entries is a fenced writer's late batch (see "Fencing"):
// its entries are never data unless they point at or below the current
// last_seq at a row holding that event, and they can only be that before
// this writer's first batch for the user, which replaces last_seq. Those
// late batches carry the zombie's records after the last committed offset,
// which this writer replays: when the successor appends them without a
// read, it writes each at the seq it would have found by reading (the
// zombie started from the same last_seq, or from an earlier one if the
// late batch landed before the load, in which case the load saw it and the
// ids read as "maybe"), with every column and a higher timestamp, so the
// result is the one the uncached append gives. The cached last_seq is
// therefore exact for the writer from its first write on, and before it
// is what the load read, the same base the uncached read would give.
//
// States are per writer: a new epoch (Fence) starts empty, and a state is
// used only by the writer that put it, so nothing learnt in one epoch is
// trusted in the next. A user's state is taken out of the cache for the
// duration of its append (under the writer's per-user lock) and put back
// only if every part succeeded: after a failed or lost batch (an error
// whose batch may still land) the next append loads the user again and
// learns what actually landed, as the uncached way does. The budget
// (Config.WriterCacheIDs, 1,000,000 ids, about 40 MB, for all writers of
// the Store) is kept by two generations of states: when the current one
// holds half of it, it becomes the old one and the old one is dropped; a
// state found in the old generation moves back to the current one. An
// evicted user costs one load at their next append, which is the read the
// uncached append would make anyway.
//
// # Read state: O(1) and idempotent
//
// The count is never a Cassandra counter (counter updates are not
// idempotent: a retried increment may count twice, and they cannot take
// part in a conditional batch). read_above is a plain bigint set to an
// absolute value by the same conditional batch that writes the markers,
// and a retried or replayed commit cannot apply twice (its condition no
// longer holds). A commit whose answer is lost (a timeout: Paxos may or
// may not have completed) is settled by re-reading the statics at SERIAL
// (LOCAL_SERIAL), which finishes any round in flight: it happened iff op
// is the attempt's random id.
//   - MarkRead(seqs): reads which of seqs in (read_upto, last_seq] have a
//     marker (only when read_above > 0), writes markers for the others and
//     sets read_above + k. Read or unknown seqs cost one read, no write.
//   - MarkAllRead: sets read_upto = last_seq and read_above = 0; markers at
//     or below read_upto become moot without being deleted (no
//     tombstones) and expire with their notifications. O(1).
//   - List reads its page with the statics; it reads the markers of the
//     page's range only when read_above > 0. List(unreadOnly) reads the
//     read_above markers above read_upto and walks the rows from
//     max(after, read_upto), skipping them.
//
// A MarkRead reads last_seq with a plain quorum read: a seq appended a
// moment ago may not be seen and is then ignored as unknown, but a client
// only learns a seq from a delivery, which the enricher produces after the
// append's quorum write, so the seqs clients send are always seen. MarkRead
// from two devices at once compete for rev; the loser re-reads and
// retries (herald_cassandra_cas_conflicts_total). Appends never compete
// with them.
//
// # Retention (TTL)
//
// Notification rows, read markers and event-index entries are
// written USING TTL Config.Retention (default 90 days; the table's
// default_time_to_live is a safety net) and expire together. The statics
// and the anchor are written with TTL 0, so last_seq never resets: seqs
// keep increasing across expiry and a client's after=<seq> stays valid.
// What expiry does:
//   - The oldest retained notification has a Prev whose notification is
//     gone: a client listing from 0 sees a first "gap" that is retention.
//   - An unread notification that expires stays counted as unread until
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
// # Policy state
//
// The enricher's notification policy (digest windows, rate logs, daily
// caps: package policy) keeps four tables, all written only through the
// fenced Writer of the scope and all with plain writes stamped with the
// epoch's timestamps, like the inbox's writer cells:
//
//	policy_state     PRIMARY KEY (user_id)          state blob
//	policy_due       PRIMARY KEY ((scope, hour), at_us, user_id, key)
//	policy_due_hours PRIMARY KEY ((scope), hour)    hours with entries
//	policy_cursor    PRIMARY KEY (scope)            at_us, user_id, key
//
// Times are bigint unix microseconds, not Cassandra timestamps (which keep
// milliseconds): the enricher matches a tick to its window by the due
// entry's At at microsecond precision. Keys are blobs (opaque bytes,
// ordered bytewise like PolicyDue.Less). hour is floor(at_us / 3.6e9):
// the due index of a scope is one partition per hour, listed in
// policy_due_hours, so the every-second scan ("what is due up to now,
// after the cursor") reads the list of hours in range and then only the
// hours that have entries: usually two small partitions, however far
// behind the cursor is. Due rows are never updated or deleted: the cursor
// moves past them and they expire by TTL, at least
// store.PolicyDueRetention after both their write and their At
// (TimeWindowCompactionStrategy drops each day's SSTable whole once it
// expired: no tombstones to compact); an hour's row in policy_due_hours
// lives as long as an entry due at the end of that hour would.
//
// PutPolicy reads the scope's epoch (store.ErrFenced if it moved on, as
// Append), then writes the hours of its due entries to policy_due_hours
// (one batch), the due entries (one single-partition batch per hour),
// then the state row (INSERT, or DELETE for an empty state),
// all USING TIMESTAMP one timestamp of the epoch; calls for one user
// through one Writer are serialised, so the later call has the higher
// timestamp and wins. SetPolicyCursor reads the epoch and the stored
// cursor and writes the new one only if it is after (PolicyDue.Less),
// with the epoch's next timestamp.
//
// A fenced writer's call already past its epoch check can land late; what
// it can do is bounded the same way as a late append:
//
//   - The state row is one cell per user, replaced whole (a blob: a reader
//     sees the old or the new state, never a mix). On a user the successor
//     has written (an INSERT or a DELETE, whose tombstone carries its
//     timestamp), the successor's timestamp is higher and wins whatever
//     the arrival order: a late write can neither override the successor's
//     state nor resurrect one it deleted, and a late DELETE cannot remove
//     it. On a user the successor has not written yet, the late state is
//     what the successor starts from: the state after some prefix of the
//     same source records (the successor replays them from the last
//     committed offset), with the decisions of those records recorded
//     (policy.State.Decisions), so the replay reuses them instead of
//     counting them twice; the zombie's deliveries never committed, the
//     successor's replay makes them. The successor's next write of that
//     user replaces it.
//   - Due entries (and their hours) are only ever added, and an entry is
//     harmless whatever wrote it: a tick closes a window only if the
//     user's state has it open with a due time at or before the entry's
//     (policy.Tick), so an entry whose state never landed, or was
//     overwritten, finds nothing to close (or a later window, which it
//     cannot close early), and a duplicate tick finds the window closed.
//   - The cursor: a late write with a lower timestamp loses to any cursor
//     the successor wrote, so the cursor the successor reads back is its
//     own; one landing before the successor's first write moves the cursor
//     to where the zombie had handled the index. That is safe because the
//     enricher sets the cursor only after the ticks up to it were produced
//     (durable in Kafka, consumed by whoever owns the partition next).
//     The check "only if after" is a read then a write, not atomic: it
//     needs one writer per scope, which the epoch provides across
//     processes and the Writer's lock within one. A cursor moving back
//     (the successor overwriting a zombie's further one) only re-ticks
//     entries, which Tick ignores.
//
// A crash or error part-way through PutPolicy leaves a prefix of that
// order: hours without entries (an empty read), entries without the state
// (harmless, as above), never an entry whose hour is not listed or a
// state whose entries are missing.
//
// # Subscriptions
//
// A membership of a user in a topic (an audience) is kept in both
// directions, plus a member count (migration 0008):
//
//	subscriptions_by_user  PRIMARY KEY ((user_id), topic)   subscribed_at_us
//	subscriptions_by_topic PRIMARY KEY ((topic), user_id)   subscribed_at_us
//	subscription_counts    PRIMARY KEY (topic)              members counter
//
// subscriptions_by_user is the truth and is changed only by lightweight
// transactions: Subscribe is INSERT ... IF NOT EXISTS (it decides
// "created" and keeps the first subscribed_at of a repeated call),
// Unsubscribe DELETE ... IF EXISTS. After the transaction come plain
// writes: the counter (+1 or -1, only when the transaction applied), then
// the index row of subscriptions_by_topic (written with the stored
// subscribed_at, or deleted). A repeated call rewrites or deletes the
// index row even when its transaction did not apply, so a call that
// failed after its transaction is repaired by the caller's retry. These
// writes run on after the caller's context is cancelled (bounded by
// Config.Timeout), so a client hanging up does not leave them undone.
// Neither transaction is retried by the driver (a retry of one that went
// through would read as "already subscribed" or "not a member"); a
// transaction whose outcome is unknown (a timeout) is settled, as in the
// read state's compare-and-set, by a serial read of the row, which
// completes any round in flight: a Subscribe applied iff the row holds
// its subscribed_at; an Unsubscribe whose row is gone is taken as applied
// (a concurrent removal, or a call for a membership that did not exist,
// then reads as removed).
//
// The per-user cap (store.MaxTopicsPerUser) is one read, a COUNT of the
// user's partition (at most 1000 rows), before the transaction; at the
// cap a point read tells a repeat (not an error) from a new topic.
// Concurrent Subscribes of one user to different topics can together pass
// the cap by the number of calls in flight; a user's subscriptions change
// by hand, one at a time, so this is not worth a transaction over the
// whole partition.
//
// Topics reads the user's partition in clustering order (ascending by
// topic, bytewise); Members reads one slice of the topic's partition,
// WHERE topic = ? AND user_id > ? LIMIT ?, ascending by user id: the
// fan-out's pages, each resuming after the last user id of the previous
// one. A topic is one partition so that a page is one sequential read;
// at about 30-60 bytes a row, an audience of about 1,000,000 members is a
// partition of tens of MB, large but within what Cassandra 5 handles
// (its trie-indexed SSTables do not load a wide partition's index into
// memory). Audiences far beyond that would split the topic into buckets;
// that is for the large-audience work.
//
// MemberCount is one point read of the topic's Cassandra counter. It is
// exact unless a counter update fails or times out: counter updates are
// not idempotent (a retried increment may count twice), so Herald never
// retries one, neither in the driver nor in the call, and a failed update
// is logged and counted (herald_cassandra_member_count_failures_total)
// instead of failing the call, whose membership is stored. The count
// therefore drifts by one per such failure (and per Unsubscribe settled
// as above for a row that was not its own), and a count driven below
// zero reads as 0. Nothing recounts it; a recount would read the topic's
// partition. Members is always exact with respect to the index.
//
// The index follows the truth by plain writes with the driver's client
// timestamps: a Subscribe and an Unsubscribe of one membership racing
// from two API instances can leave the index row's presence disagreeing
// with subscriptions_by_user (when the earlier call's index write gets
// the later timestamp: it was sent after the later call's, or the
// instances' clocks differ) until the next call for that membership
// repairs it.
//
// # Feeds
//
// The large-audience path writes a broadcast once, to its topic's feed
// (migration 0009):
//
//	feed_items   PRIMARY KEY ((topic), pos) DESC  event blob (JSON)
//	feed_events  PRIMARY KEY ((topic), event_id)  pos
//	feed_heads   PRIMARY KEY (topic)              head
//	feed_cursors PRIMARY KEY ((user_id), topic)   pos
//
// Positions. PutFeedItem reads feed_events (a repeated put returns the
// stored position), then the head, and inserts the item at head + 1 with
// INSERT ... IF NOT EXISTS; when another put holds that position it
// tries the next one after a fresh head (at most 16, then ErrContention).
// A lightweight transaction on the item itself, rather than a plain write
// after reading the head, is what makes positions safe with more than
// one writer (a zombie fan-out, a rebalance): two puts never share a
// position, and a position is taken only by an item that is there, so
// there are no holes below the head and a reader cannot see an item
// appear below one it has already read. An unknown outcome (a timeout)
// is settled by a serial read of the position, as for subscriptions.
// feed_events and feed_heads are plain writes after the transaction
// (continued past the caller's cancellation). A crash between the
// transaction and the feed_events write leaves the item without its
// index row: the retry puts it again at a new position, a duplicate,
// harmless since the inbox deduplicates by event id.
//
// Expiry. feed_items, feed_events and feed_cursors have a default TTL
// of store.FeedRetention (30 days); feed_items uses
// TimeWindowCompactionStrategy (written in time order, only expires).
// feed_heads has no TTL and is written USING TIMESTAMP head, so the
// highest head wins: a feed whose items all expired continues after its
// last position instead of reusing positions below members' cursors
// (FeedHead is the larger of the newest item and feed_heads). Only a
// put whose feed_heads write failed (logged) and whose topic then stays
// quiet for the whole retention can still have its positions reused.
//
// Cursors. SetFeedCursor is one plain write USING TIMESTAMP pos: of two
// cursors of a (user, topic) the higher position has the higher write
// timestamp and wins whatever order the writes land in, so cursors only
// move forward with no read, no transaction and no race. The price: a
// cursor row must never be deleted with an ordinary (wall-clock)
// timestamp, which would shadow every later cursor; it expires instead.
// A cursor expires with the items: it is written after the items it
// covers were put, so when it expires they have expired too.
//
// Events are the JSON of herald.Event (its json tags; CreatedAt in UTC
// microseconds), at most herald.MaxEventBytes (64 KiB) encoded, larger
// ones refused (store.PrepareFeedEvent, a *herald.ValidationError naming
// "event").
//
// # Driver settings
//
// Statements are constant strings with bind markers, prepared once per host
// by the driver and reused. Requests are routed token-aware (to a replica of
// the partition; DC-aware when Config.LocalDC is set), at
// Config.Consistency (default LOCAL_QUORUM) with lightweight transactions at
// Config.SerialConsistency (default LOCAL_SERIAL). Reads and plain writes
// are marked idempotent and retried by the driver with backoff
// (Config.MaxRetries), append batches included (same cells, same
// timestamp); conditional batches are not (a retried commit is handled by
// the compare-and-set loop, see above), except Claim, whose retry is safe;
// nor are the subscription transactions and counter updates (see
// "Subscriptions"). Config.Timeout bounds each request.
//
// # Known limits
//
//   - One user's appends are serialised (one writer, one batch per part,
//     and a read before it for a user the writer's cache does not hold or
//     an id it may know); a user's read-state changes go through Paxos on one
//     partition: a user marking read from many devices at once is bounded
//     by LWT throughput on one replica set.
//   - Every user of a scope must be written through that scope only: two
//     enrichers writing one user from two partitions (producers with
//     different partitioners) would each believe it is the single writer.
//   - A user's partition grows with retention (about 3 small rows per
//     notification plus its content); keep notifications small.
//   - The due index of a scope is a partition per hour: a scope with very
//     many windows due in one hour makes that partition large (about 100
//     bytes per entry), and PolicyDue reads at most 10,000 at a time.
//   - Registering, deleting or moving a device token is a Paxos round on
//     the token's row plus a logged batch; listing a user's devices is two
//     reads (the index, then the owners). Fine for registrations (rare)
//     and for the pusher's one listing per job.
//   - A topic's members are one partition (tens of MB at a million
//     members); subscribing and unsubscribing are a Paxos round on the
//     user's partition plus two plain writes; the member count is a
//     counter that drifts by failed counter updates (see "Subscriptions").
package cassandra
