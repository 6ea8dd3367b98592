package store

import (
	"context"
	"errors"

	herald "github.com/heraldhq/herald"
)

// Sentinel errors returned by every implementation.
var (
	// ErrNotFound is returned when the addressed item does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed is returned by calls made after Close.
	ErrClosed = errors.New("store: closed")
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

// Inbox is the per-user durable list of notifications.
//
// Sequencing: Append assigns Seq = last seq of the user + 1 and Prev = last
// seq. Callers guarantee a single writer per user at a time (the enricher
// owning the user's Kafka partition); implementations must still be safe for
// concurrent use.
type Inbox interface {
	// Append stores each notification in its UserID's inbox unless one with
	// the same EventID is already there, in which case the stored one is
	// returned with Created=false. Notifications of the same user in one call
	// get increasing seqs in slice order. Seq, Prev and Read of the inputs are
	// ignored. The results are in input order. The call is atomic per
	// notification, and idempotent: replaying the same batch after a crash
	// returns the same seqs.
	Append(ctx context.Context, ns []herald.Notification) ([]AppendResult, error)

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

// Devices is the registry of phones for push.
type Devices interface {
	// PutDevice registers (or refreshes) d for d.UserID. A token registered
	// by another user moves to this one.
	PutDevice(ctx context.Context, d herald.Device) error
	// Devices lists the user's devices, oldest first.
	Devices(ctx context.Context, userID string) ([]herald.Device, error)
	// DeleteDevice removes the user's device with this token; ErrNotFound if
	// the user has no such device.
	DeleteDevice(ctx context.Context, userID, token string) error
}

// Store is everything Herald keeps durably.
type Store interface {
	Inbox
	Preferences
	Devices
	// Ping reports whether the store is reachable (for /readyz).
	Ping(ctx context.Context) error
	// Close releases resources. It is idempotent; calls after it return ErrClosed.
	Close() error
}
