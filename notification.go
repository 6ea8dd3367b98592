package herald

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"time"

	"github.com/oklog/ulid/v2"
)

// Notification is one entry of a user's inbox, as stored and as sent to
// clients. Seq is strictly increasing per user; Prev is the Seq of that
// user's previous notification (0 for the first), so a client can detect a
// gap. UserID is not part of the JSON: it travels as the Kafka key and is
// implied by the authenticated connection.
type Notification struct {
	ID        string          `json:"id"`
	Seq       uint64          `json:"seq"`
	Prev      uint64          `json:"prev"`
	EventID   string          `json:"event_id"`
	Type      string          `json:"type"`
	Priority  Priority        `json:"priority"`
	Title     string          `json:"title,omitempty"`
	Body      string          `json:"body,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
	Read      bool            `json:"read"`

	UserID string `json:"-"`
}

// NewNotification builds the (not yet sequenced) notification for e.
func NewNotification(e *Event) Notification {
	return Notification{
		ID:        NewID(e.CreatedAt),
		EventID:   e.ID,
		Type:      e.Type,
		Priority:  e.Priority,
		Title:     e.Title,
		Body:      e.Body,
		Data:      e.Data,
		CreatedAt: e.CreatedAt,
		UserID:    e.UserID,
	}
}

// SourceID returns the ULID of the notification made from the record
// identified by source (topic/partition/offset): sortable by t, and the
// same for every replay of that record. Comparing it with the stored copy's
// ID tells a replay of one record (produce it again) from another record
// carrying the same event id (a duplicate).
func SourceID(t time.Time, source string) string {
	sum := sha256.Sum256([]byte(source))
	var id ulid.ULID
	if err := id.SetTime(ulid.Timestamp(t)); err != nil {
		_ = id.SetTime(0)
	}
	_ = id.SetEntropy(sum[:10])
	return id.String()
}

// NewID returns a ULID: unique, and sortable by t.
func NewID(t time.Time) string {
	// ULIDs hold milliseconds since 1970 in 48 bits: a time outside that
	// range (the zero time, say) takes the current time instead of
	// panicking.
	if t.Before(time.UnixMilli(0)) || t.After(ulid.Time(ulid.MaxTime())) {
		t = time.Now()
	}
	return ulid.MustNew(ulid.Timestamp(t), rand.Reader).String()
}

// PushJob is the value of a herald.push record: a notification to send to
// the user's phones, produced when the user had no live connection (or the
// notification is push-only).
type PushJob struct {
	UserID       string       `json:"user_id"`
	Notification Notification `json:"notification"`
	CollapseKey  string       `json:"collapse_key,omitempty"`
	// ExpiresAt is created_at+ttl; zero means no expiry. No push is sent after it.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// Attempt counts the sends already tried (0 for a fresh job).
	Attempt int `json:"attempt"`
}

// Device is a phone registered for push.
type Device struct {
	UserID   string `json:"-"`
	Platform string `json:"platform"` // "ios" or "android"
	Token    string `json:"token"`
	AppID    string `json:"app_id"`
	// CreatedAt is when the user first registered this token: kept when
	// the same user registers it again, reset when it moves to another user.
	// In a registration (store.Devices.PutDevice) it is the time of that
	// registration.
	CreatedAt time.Time `json:"created_at"`
	// LastSeen is the latest of the last registration and the last
	// successful push recorded by the pusher (which refreshes it at most
	// once per store.TouchInterval). Ignored in a registration.
	LastSeen time.Time `json:"last_seen"`
}

// Validate checks a device registration.
func (d *Device) Validate() error {
	switch d.Platform {
	case "ios", "android":
	case "":
		return invalid("platform", "is required")
	default:
		return invalid("platform", "must be ios or android, got %q", d.Platform)
	}
	if d.Token == "" {
		return invalid("token", "is required")
	}
	if len(d.Token) > 4096 {
		return invalid("token", "is longer than 4096 bytes")
	}
	if len(d.AppID) > 256 {
		return invalid("app_id", "is longer than 256 bytes")
	}
	return nil
}

// UserNotification is a notification together with the user it belongs to,
// as it travels between Herald's components outside Kafka (where the user
// id is the record key): the enricher's direct path to the gateways.
type UserNotification struct {
	UserID       string
	Notification Notification
}

// Broadcast is a broadcast to a large audience as a gateway sends it live
// to the topic's connected members, ahead of each member's inbox copy
// (docs/ARCHITECTURE.md, "Live broadcasts"): the event, without a
// notification id or seq, which only the inbox copy has. The inbox copy
// carries the same EventID.
type Broadcast struct {
	EventID   string          `json:"event_id"`
	Topic     string          `json:"topic"`
	Type      string          `json:"type"`
	Priority  Priority        `json:"priority"`
	Title     string          `json:"title,omitempty"`
	Body      string          `json:"body,omitempty"`
	Data      json.RawMessage `json:"data,omitempty"`
	CreatedAt time.Time       `json:"created_at"`
}

// NewBroadcast builds the live broadcast of e, an audience event.
func NewBroadcast(e *Event) Broadcast {
	return Broadcast{
		EventID:   e.ID,
		Topic:     e.Audience,
		Type:      e.Type,
		Priority:  e.Priority,
		Title:     e.Title,
		Body:      e.Body,
		Data:      e.Data,
		CreatedAt: e.CreatedAt,
	}
}

// Event is the event a member's inbox would take for b, without a user:
// what the gateway checks the member's preferences against.
func (b *Broadcast) Event() Event {
	return Event{ID: b.EventID, Audience: b.Topic, Type: b.Type, Priority: b.Priority,
		Title: b.Title, Body: b.Body, Data: b.Data, CreatedAt: b.CreatedAt}
}
