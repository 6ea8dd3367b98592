// Package embedded is Herald's on-disk store for `herald dev` and single-node
// deployments: a store.Store kept in one bbolt (go.etcd.io/bbolt) file.
//
// Why bbolt:
//   - One file, pure Go, no server and no cgo: `herald dev` needs nothing
//     installed.
//   - ACID transactions. Append runs a whole batch in one write transaction,
//     so the dedup lookup, the seq assignment, the inbox row, the unread index
//     and the per-user counters commit together or not at all: a crash
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
//	devices  userKey+token    → device JSON
//	tokens   token            → user id owning the token
//	herald   "format"         → layout version
//
// The read flag lives only in the unread index, so MarkRead deletes keys and
// never rewrites a notification; MarkAllRead and List(unreadOnly) walk that
// index and cost time proportional to the unread notifications, not to the
// inbox. UnreadCount reads the counter in users, which every write keeps
// equal to the size of the user's unread range.
//
// Notifications use a compact versioned binary record: they are the hot path
// (written per event, read on every replay), the record needs no field names
// and no reflection, and Data is already JSON and is stored as is.
// Preferences and devices are small, rarely written and richer in structure,
// so they are JSON.
package embedded
