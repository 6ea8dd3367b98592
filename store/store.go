package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	herald "github.com/heraldhq/herald"
)

// Sentinel errors returned by every implementation.
var (
	// ErrNotFound is returned when the addressed item does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("store: closed")
	// ErrFenced is returned by a Writer whose scope was fenced again since
	// it was handed out: another writer owns the scope now. It is not
	// retriable with the same Writer.
	ErrFenced = errors.New("store: writer fenced: its scope has a newer writer")
)

// AppendResult is the outcome of appending one notification.
type AppendResult struct {
	// Notification is the stored notification, with Seq, Prev and ID as
	// stored. When Created is false it is the copy stored earlier for the
	// same (user, event id), which may differ from the one passed in.
	Notification herald.Notification
	// Created is false when the event id was already in the user's inbox.
	Created bool
}

// Writer appends to the inboxes of the users of one scope, obtained from
// Inbox.Fence. It is safe for concurrent use; appends of one user through
// one Writer are serialised.
type Writer interface {
	// Append stores each notification in its UserID's inbox unless one with
	// the same EventID is already there, in which case the stored one is
	// returned with Created=false. Notifications of the same user in one call
	// get increasing seqs in slice order. Seq, Prev and Read of the inputs are
	// ignored. The results are in input order. The call is atomic per
	// notification, and idempotent: replaying the same batch after a crash
	// returns the same seqs.
	//
	// It returns ErrFenced, and changes nothing, when the scope was fenced
	// again (by Fence, in this process or another) before the call started.
	Append(ctx context.Context, ns []herald.Notification) ([]AppendResult, error)
	// Scope is the scope the Writer was fenced for.
	Scope() string

	// PutPolicy replaces the policy state of userID (a user of this
	// Writer's scope) with state, and adds due to the scope's due index
	// (an entry already there is left as is). A nil or empty state deletes
	// the user's state; due entries are written even then. Due entries are
	// made durable no later than the state (an entry whose state never
	// landed is harmless: the enricher finds no window to close), and the
	// state is replaced atomically: a reader sees the old or the new one.
	// len(state) is at most MaxPolicyStateBytes; each due entry must pass
	// ValidatePolicyDue. Invalid input returns a *herald.ValidationError
	// naming "user_id", "state", "due.user_id" or "due.key". It returns
	// ErrFenced, and changes nothing, when the scope was fenced again
	// before the call started (like Append; a call already past that check
	// cannot override what the new Writer wrote: each implementation
	// documents how).
	PutPolicy(ctx context.Context, userID string, state []byte, due []PolicyDue) error
	// SetPolicyCursor records that the scope's due index was handled up to
	// and including cur, for PolicyCursor. A cursor not after the stored
	// one (by PolicyDue.Less) is ignored. Entries at or before the cursor
	// may be dropped by the store. ErrFenced as PutPolicy.
	SetPolicyCursor(ctx context.Context, cur PolicyDue) error
}

// PolicyDue is one entry of a scope's due index: the policy window Key of
// UserID is due at At. The enricher scans the index of the scopes it owns
// and closes what is due (package policy, pipeline/policy*.go).
type PolicyDue struct {
	// At is when the window is due. Stores keep microseconds (finer
	// precision is truncated) and return it in UTC.
	At     time.Time
	UserID string
	// Key names the window within the user's state: opaque to the store,
	// 1 to MaxPolicyKeyBytes bytes.
	Key string
}

// Less orders due entries by (At, UserID, Key): the order of PolicyDue
// scans and of cursors.
func (d PolicyDue) Less(o PolicyDue) bool {
	if !d.At.Equal(o.At) {
		return d.At.Before(o.At)
	}
	if d.UserID != o.UserID {
		return d.UserID < o.UserID
	}
	return d.Key < o.Key
}

// Limits of the policy state.
const (
	// MaxPolicyStateBytes bounds one user's encoded policy state.
	MaxPolicyStateBytes = 256 << 10
	// MaxPolicyKeyBytes bounds PolicyDue.Key.
	MaxPolicyKeyBytes = 1024
	// PolicyDueRetention is how long a due entry is kept after its At at
	// least (stores may drop older entries, and entries at or before the
	// scope's cursor, earlier): an enricher outage longer than this leaves
	// the windows due in it to be closed by the user's next event instead.
	PolicyDueRetention = 30 * 24 * time.Hour
)

// ValidatePolicyDue checks an entry of PutPolicy.
func ValidatePolicyDue(d PolicyDue) error {
	if d.UserID == "" || len(d.UserID) > herald.MaxUserIDLen {
		return &herald.ValidationError{Field: "due.user_id", Reason: fmt.Sprintf("must be 1 to %d bytes", herald.MaxUserIDLen)}
	}
	if d.Key == "" || len(d.Key) > MaxPolicyKeyBytes {
		return &herald.ValidationError{Field: "due.key", Reason: fmt.Sprintf("must be 1 to %d bytes", MaxPolicyKeyBytes)}
	}
	return nil
}

// Policies is the read side of the enricher's durable policy state
// (digest windows, rate and cap counters: package policy): one opaque
// state per user, and per scope a due index of windows to close and a
// cursor of how far that index was handled. It is written only through
// the Writer of the user's scope (PutPolicy, SetPolicyCursor), so a fenced
// enricher cannot change it.
type Policies interface {
	// PolicyState returns the user's state as last put; nil, nil if none.
	PolicyState(ctx context.Context, userID string) ([]byte, error)
	// PolicyDue returns up to limit (1 to 10,000) entries of scope's due
	// index strictly after after (by PolicyDue.Less; the zero PolicyDue is
	// before every entry) with At not after until, in ascending order.
	PolicyDue(ctx context.Context, scope string, after PolicyDue, until time.Time, limit int) ([]PolicyDue, error)
	// PolicyCursor returns the scope's cursor (the zero PolicyDue if none).
	PolicyCursor(ctx context.Context, scope string) (PolicyDue, error)
}

// Inbox is the per-user durable list of notifications.
//
// Writing: every user belongs to one scope (the enricher's scope is the
// source Kafka partition, "topic/partition", which the user id keys), and
// a user is written only through a Writer of its scope. Fence hands out
// that Writer and makes it the scope's only one: a writer fenced earlier
// (a zombie enricher that lost its partition but still runs, a batch left
// in flight by a rebalance) fails with ErrFenced, and an append of it
// already in flight when the fence happened cannot change what readers see
// once the new Writer wrote (each implementation documents how). Seqs are
// dense per user: Append assigns Seq = last seq of the user + 1 and Prev =
// last seq. Readers (List, MarkRead...) may run concurrently with writers.
type Inbox interface {
	// Fence makes the caller the writer of scope and returns its Writer.
	// scope is 1 to MaxScopeBytes bytes; an invalid one returns a
	// *herald.ValidationError naming "scope". The Writer of the previous
	// Fence of the same scope is fenced.
	Fence(ctx context.Context, scope string) (Writer, error)

	// List returns up to limit notifications of userID with seq > after, in
	// ascending seq; only unread ones when unreadOnly. limit <= 0 means no limit.
	List(ctx context.Context, userID string, after uint64, limit int, unreadOnly bool) ([]herald.Notification, error)

	// LastSeq is the seq of the user's newest notification (0 if none).
	LastSeq(ctx context.Context, userID string) (uint64, error)

	// UnreadCount is the number of unread notifications of userID. It must
	// not scan the inbox.
	UnreadCount(ctx context.Context, userID string) (int64, error)

	// MarkRead marks the given seqs of userID as read (unknown or already read
	// seqs are ignored) and returns the new unread count.
	MarkRead(ctx context.Context, userID string, seqs []uint64) (unread int64, err error)

	// MarkAllRead marks every notification of userID as read and returns the
	// new unread count (0 unless notifications were appended concurrently).
	MarkAllRead(ctx context.Context, userID string) (unread int64, err error)

	// Claim records that eventID of userID was handled by the source record
	// identified by token (e.g. "topic/partition/offset"). It returns true if
	// the claim is new or was made earlier with the same token (a replay of
	// the same record), false if another record claimed it: a duplicate. It
	// deduplicates events that never reach the inbox (push-only).
	Claim(ctx context.Context, userID, eventID, token string) (bool, error)
}

// Preferences stores each user's delivery preferences.
type Preferences interface {
	// GetPreferences returns the user's preferences, or
	// herald.DefaultPreferences() if none were set.
	GetPreferences(ctx context.Context, userID string) (herald.Preferences, error)
	// PutPreferences replaces the user's preferences. p must be valid.
	PutPreferences(ctx context.Context, userID string, p herald.Preferences) error
}

// MaxScopeBytes bounds the scopes of Inbox.Fence.
const MaxScopeBytes = 256

// ValidateScope checks a scope of Inbox.Fence.
func ValidateScope(scope string) error {
	if scope == "" {
		return &herald.ValidationError{Field: "scope", Reason: "must not be empty"}
	}
	if len(scope) > MaxScopeBytes {
		return &herald.ValidationError{Field: "scope", Reason: fmt.Sprintf("is longer than %d bytes", MaxScopeBytes)}
	}
	return nil
}

// TouchInterval bounds how often TouchDevice writes: it refreshes a
// device's LastSeen only when the stored one is more than TouchInterval
// older than the new sighting, so a device pushed to constantly costs one
// write per hour, not one per push.
const TouchInterval = time.Hour

// Devices is the registry of phones for push. A token belongs to at most
// one user at a time.
type Devices interface {
	// PutDevice registers d for d.UserID: an upsert by d.Token. d.CreatedAt
	// is the time of this registration (zero means now); d.LastSeen is
	// ignored. Registering a token the user already has keeps its stored
	// CreatedAt and updates Platform and AppID; a token registered by
	// another user moves to this one (it leaves the other user's list and
	// gets this registration's CreatedAt). LastSeen becomes the
	// registration time (never earlier than the stored one for the same
	// user), and the registration time is kept for DeleteDeviceIfStale.
	PutDevice(ctx context.Context, d herald.Device) error
	// Devices lists the user's devices, oldest CreatedAt first (ties by
	// token), with LastSeen set.
	Devices(ctx context.Context, userID string) ([]herald.Device, error)
	// DeleteDevice removes the user's device with this token; ErrNotFound if
	// the user has no such device (an empty token included).
	DeleteDevice(ctx context.Context, userID, token string) error
	// TouchDevice records that a push to the user's token succeeded at
	// seen: it sets LastSeen to seen if the stored LastSeen is before
	// seen - TouchInterval, and otherwise does nothing (LastSeen never goes
	// back). A token the user does not have (deleted or moved meanwhile) is
	// not recreated, and is not an error: it returns nil.
	TouchDevice(ctx context.Context, userID, token string, seen time.Time) error
	// DeleteDeviceIfStale acts on provider feedback that the token is dead:
	// it removes the user's device with this token if it still belongs to
	// userID and was last registered strictly before before, and reports
	// whether it did. Pass as before the time the failing send started: a
	// registration of the token after that (the app got it again) is newer
	// than the provider's verdict and is kept. A token the user does not
	// have returns false, nil.
	DeleteDeviceIfStale(ctx context.Context, userID, token string, before time.Time) (deleted bool, err error)
}

// PushProgress records, per push job and device, what the pusher has
// delivered, so that a pusher restarted after a crash resends only what
// was in flight. Entries expire after a bounded time (each implementation
// documents it; at least DefaultPushProgressTTL unless configured).
type PushProgress interface {
	// MarkPushSent records that the provider accepted job jobID of userID
	// for device token. It is idempotent: marking again changes nothing.
	// jobID (1 to MaxJobIDBytes bytes) is chosen by the pusher and must be
	// the same for every attempt and replay of one job (the notification
	// id); token must be 1 to 4096 bytes. Invalid ids return a
	// *herald.ValidationError naming "job_id" or "token".
	MarkPushSent(ctx context.Context, userID, jobID, token string) error
	// PushSent returns the tokens marked for (userID, jobID) and not yet
	// expired, as a set (never nil; empty if none).
	PushSent(ctx context.Context, userID, jobID string) (map[string]bool, error)
}

// DefaultPushProgressTTL is how long push progress is kept when a store
// has no other retention: far beyond any Kafka retention or DLQ replay of
// a push job.
const DefaultPushProgressTTL = 90 * 24 * time.Hour

// MaxJobIDBytes bounds the job ids of PushProgress.
const MaxJobIDBytes = 1024

// ValidatePushKey checks the job id and token of a PushProgress call.
func ValidatePushKey(jobID, token string) error {
	if jobID == "" {
		return &herald.ValidationError{Field: "job_id", Reason: "must not be empty"}
	}
	if len(jobID) > MaxJobIDBytes {
		return &herald.ValidationError{Field: "job_id", Reason: fmt.Sprintf("is longer than %d bytes", MaxJobIDBytes)}
	}
	if token == "" {
		return &herald.ValidationError{Field: "token", Reason: "must not be empty"}
	}
	if len(token) > maxTokenBytes {
		return &herald.ValidationError{Field: "token", Reason: fmt.Sprintf("is longer than %d bytes", maxTokenBytes)}
	}
	return nil
}

// maxTokenBytes is herald.Device.Validate's limit.
const maxTokenBytes = 4096

// Subscription is one user's membership of a topic (an audience).
type Subscription struct {
	UserID string
	Topic  string
	// SubscribedAt is when the user subscribed: the fan-out sends a
	// member only the events created at or after it. Microseconds, UTC.
	SubscribedAt time.Time
}

// MaxTopicsPerUser bounds one user's subscriptions.
const MaxTopicsPerUser = 1000

// Subscriptions is the user ↔ topic membership that audiences address.
// Topics are validated with herald.ValidateTopic and user ids as
// everywhere else; an invalid one returns a *herald.ValidationError naming
// "topic" or "user_id".
type Subscriptions interface {
	// Subscribe makes userID a member of topic since at (zero: now),
	// and reports whether it is new. Subscribing again changes nothing and
	// keeps the first SubscribedAt. A user with MaxTopicsPerUser topics
	// cannot subscribe to another (*herald.ValidationError naming
	// "topic").
	Subscribe(ctx context.Context, userID, topic string, at time.Time) (created bool, err error)
	// Unsubscribe removes userID from topic and reports whether it was a
	// member.
	Unsubscribe(ctx context.Context, userID, topic string) (removed bool, err error)
	// Topics returns the user's subscriptions, ascending by topic (never
	// nil).
	Topics(ctx context.Context, userID string) ([]Subscription, error)
	// Members returns up to limit (1 to 10,000) members of topic with a
	// user id greater than after (bytewise; "" for the first page),
	// ascending by user id: the pages of the fan-out. Never nil.
	Members(ctx context.Context, topic, after string, limit int) ([]Subscription, error)
	// MemberCount is the number of members of topic. Exact in the memory
	// and embedded stores; each implementation documents its precision.
	MemberCount(ctx context.Context, topic string) (int64, error)
}

// FeedItem is one broadcast in an audience's feed: the large-audience
// path writes a broadcast once, to its topic's feed, and each member's
// inbox takes it later (pipeline/fanout_feed.go).
type FeedItem struct {
	Topic string
	// Pos is the item's position in the topic's feed: assigned by
	// PutFeedItem, from 1, ascending in the order items were put, never
	// reused (a position may be skipped).
	Pos int64
	// Event is the broadcast as addressed: Audience == Topic, no UserID.
	Event herald.Event
}

// Limits of the feeds.
const (
	// MaxFeedPage bounds FeedItems' limit.
	MaxFeedPage = 1000
	// FeedRetention is how long a feed item is kept at least after it was
	// put: a member who comes back later than this does not get it.
	FeedRetention = 30 * 24 * time.Hour
)

// Feeds holds the audiences' feeds and, per member, how far their inbox
// has taken each feed. A topic's feed has one writer at a time (the
// fan-out stage owning the topic's herald.fanout partition); cursors are
// written after the member's events committed to herald.events, so a
// cursor that lags only causes a harmless second production (the inbox
// deduplicates by event id).
type Feeds interface {
	// PutFeedItem appends ev to the feed of ev.Audience and returns its
	// position, unless an item with ev.ID is already in that feed: then it
	// returns that item's position and created=false. A put that failed
	// half-way may leave the item twice (two positions) after a retry;
	// never an item at a position that a later FeedItems call could see
	// appear below one it already returned, except as such a duplicate.
	// Invalid input (no or invalid Audience, no ID) returns a
	// *herald.ValidationError naming "audience" or "id".
	PutFeedItem(ctx context.Context, ev herald.Event) (pos int64, created bool, err error)
	// FeedItems returns up to limit (1 to MaxFeedPage) items of topic with
	// Pos > after, ascending by Pos. Never nil.
	FeedItems(ctx context.Context, topic string, after int64, limit int) ([]FeedItem, error)
	// FeedHead is the highest Pos of topic's feed, 0 when it is empty.
	FeedHead(ctx context.Context, topic string) (int64, error)
	// FeedCursors returns, per topic, the position up to which userID's
	// inbox has taken the topic's feed (a topic without a cursor is
	// absent). Never nil.
	FeedCursors(ctx context.Context, userID string) (map[string]int64, error)
	// SetFeedCursor records pos for (userID, topic) unless the stored
	// cursor is higher (cursors only move forward).
	SetFeedCursor(ctx context.Context, userID, topic string, pos int64) error
}

// Store is everything Herald keeps durably.
type Store interface {
	Inbox
	Preferences
	Devices
	PushProgress
	Policies
	Subscriptions
	Feeds
	// Ping reports whether the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	// Close releases resources. It is idempotent; calls after it return ErrClosed.
	Close() error
}
