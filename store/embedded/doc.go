// Package embedded is Herald's on-disk store for `herald dev` and single-node
// deployments: a store.Store kept in one bbolt (go.etcd.io/bbolt) file.
//
// Why bbolt:
//   - One file, pure Go, no server and no cgo: `herald dev` needs nothing
//     installed.
//   - ACID transactions. Writer.Append runs a whole batch in one write
//     transaction, so the fence check, the dedup lookup, the seq
//     assignment, the inbox row, the unread index and the per-user
//     counters commit together or not at all: a crash
//     mid-batch leaves either the whole batch or none of it, and the replay
//     the enricher does after a crash finds every event id it already stored.
//   - One fsync per transaction, hence per polled batch, not per notification.
//   - Crash recovery is opening the file: bbolt's copy-on-write B+tree and
//     double meta page mean there is no log to replay and no repair step.
//   - No background goroutines (no compaction, no flusher): the store owns
//     nothing that must be stopped beyond the file itself.
//
// The tradeoff is a single writer: write transactions are serialised. That
// fits Herald, whose enricher writes one batch per poll; readers (List,
// UnreadCount, Devices) run concurrently with the writer on MVCC snapshots.
//
// Fencing. bbolt holds an exclusive lock on the file, so every writer of a
// database lives in the one process that opened it (Open fails with
// ErrLocked in any other). Fence therefore needs no state on disk: the
// Store keeps the current epoch of each scope in memory (store.Fences),
// Fence takes a new one (no transaction, no fsync), and Writer.Append
// checks its epoch as the first step of its write transaction. bbolt runs
// one write transaction at a time, so a fenced writer's batch fails with
// store.ErrFenced before it writes anything, and a batch that passed the
// check before the fence commits before the new writer's first
// transaction starts: the new writer continues the user's seqs after it.
// Epochs do not survive Close; a Writer of a closed Store gets
// store.ErrClosed, and a reopened Store hands out new Writers.
//
// Layout. Every per-user key starts with userKey(u) = len(u) as one byte,
// then u, so one user's keys are a contiguous range and no user's prefix is
// a prefix of another's. seq is 8 bytes big-endian, so byte order is seq
// order.
//
//	inbox    userKey+seq      → notification record (binary, see codec.go)
//	unread   userKey+seq      → 1 byte; present iff the notification is unread
//	users    userKey          → last seq, unread count (16 bytes)
//	dedup    userKey+eventID  → seq
//	claims   userKey+eventID  → token
//	prefs    userKey          → preferences JSON
//	devices  userKey+token    → device JSON (platform, app id, created_at,
//	                            last_seen, registered_at)
//	tokens   token            → user id owning the token
//	pushed   userKey+len16(job)+job+token → expiry (8 bytes, Unix ns)
//	pushexp  expiry+pushed key → empty: the expiry index of pushed
//	policy   userKey          → the user's policy state (opaque bytes)
//	policydue/<scope>  dueKey → empty: one nested bucket per scope, the
//	                            scope's due index
//	policycursor  scope       → dueKey of the scope's cursor
//	subs_by_user/<user>  topic → SubscribedAt (8 bytes, Unix µs): one
//	                            nested bucket per user, its topics
//	subs_by_topic/<topic> user → SubscribedAt: one nested bucket per
//	                            topic, its members
//	subs_count    topic       → member count (8 bytes)
//	feed_items/<topic>  pos (8 bytes BE) → the event as JSON: one nested
//	                            bucket per topic, its feed
//	feed_events/<topic> event id → pos: the feed's dedup index
//	feed_cursors/<user> topic → pos (8 bytes BE)
//	herald   "format"         → layout version
//
// The read flag lives only in the unread index, so MarkRead deletes keys and
// never rewrites a notification; MarkAllRead and List(unreadOnly) walk that
// index and cost time proportional to the unread notifications, not to the
// inbox. UnreadCount reads the counter in users, which every write keeps
// equal to the size of the user's unread range.
//
// Devices: PutDevice reads the token's owner and moves or refreshes the
// device in one write transaction, so a token is always in exactly one
// user's range; DeleteDeviceIfStale checks registered_at and deletes in
// one transaction, so a registration is either judged or kept.
//
// Push progress expires Config.PushProgressTTL after it is marked, without
// a background goroutine: PushSent skips expired entries, and every write
// of MarkPushSent first deletes up to 64 expired entries, oldest first,
// walking pushexp. While marks go on the expired backlog shrinks; when
// they stop it stays as it was until the next mark.
//
// Policy (store.Policies, written through the Writer). PutPolicy and
// SetPolicyCursor check the fence first inside their write transaction,
// exactly like Append, so a fenced writer changes nothing (store.ErrFenced)
// and one that passed the check commits before the new writer's first
// transaction: the new writer never has its state overwritten by a stale
// one. PutPolicy writes the state and the due entries in one transaction
// (the contract only asks the entries to land no later than the state); a
// nil or empty state deletes the key. dueKey is At as big-endian Unix
// microseconds with the sign bit flipped (times before 1970 sort first),
// then the user id with each 0x00 escaped as 0x00 0xFF and ended by
// 0x00 0x01, then the window key: byte order is store.PolicyDue.Less
// order even for user ids that prefix each other or hold 0x00, and a
// scan is one Seek and a walk. At keeps microseconds and reads back in
// UTC. SetPolicyCursor stores a cursor only if it is after the stored one
// and deletes, in the same transaction, the scope's entries at or before
// it, so the due index holds what the enricher has not handled yet. An
// enricher down longer than store.PolicyDueRetention leaves entries older
// than that: each PutPolicy with due entries deletes up to 64 of them,
// oldest first (by Config.Now), so they do not stay for ever once the
// scope is written again; until then scans still return them. A corrupt
// due key or cursor (a damaged file) fails PolicyDue or PolicyCursor with
// an error naming the scope instead of being skipped. The policy
// buckets were added to layout 1 without changing its version: Open
// creates them in an older file, and an older binary ignores them.
//
// Subscriptions (store.Subscriptions). A membership is written to both
// subs_by_user and subs_by_topic, and the topic's counter in subs_count
// adjusted, in one write transaction, so the two sides and the count never
// disagree and MemberCount is exact (one Get). Keys are the raw topic and
// user id, so a nested bucket's byte order is the order Topics and Members
// return: Members is one Seek and a walk of up to limit keys. The
// store.MaxTopicsPerUser cap is checked by counting the user's keys inside
// the transaction (at most 1,000), so concurrent Subscribes cannot pass
// it. A repeated Subscribe and an Unsubscribe of a non-member only read
// (no fsync); a bulk add therefore costs one fsync per new membership.
// The last membership of a user or topic deletes its nested bucket and
// counter. These buckets were added to layout 1 like the policy ones.
//
// Feeds (store.Feeds). PutFeedItem writes the item at head+1 (the last
// key of the topic's bucket) and its event id → pos entry in one write
// transaction: positions are dense, a put is atomic (never a duplicate),
// and a repeated put only reads. SetFeedCursor compares and writes in one
// transaction. Events are JSON (store.PrepareFeedEvent, bounded by
// herald.MaxEventBytes). Feed items are kept until the file is deleted:
// no expiry yet (store.FeedRetention is a lower bound). The buckets were
// added to layout 1 like the others.
//
// Notifications use a compact versioned binary record: they are the hot path
// (written per event, read on every replay), the record needs no field names
// and no reflection, and Data is already JSON and is stored as is.
// Preferences and devices are small, rarely written and richer in structure,
// so they are JSON.
package embedded
