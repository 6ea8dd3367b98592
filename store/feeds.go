package store

import (
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	herald "github.com/heraldhq/herald"
)

// MaxFeedEventIDBytes bounds the ID of a feed item's event, as the real
// stores bound the event ids of Writer.Append.
const MaxFeedEventIDBytes = 1024

// PrepareFeedEvent validates an event of Feeds.PutFeedItem and returns it
// as the stores keep it (CreatedAt in UTC, truncated to microseconds) with
// its JSON encoding (herald.Event's json tags). An invalid event returns a
// *herald.ValidationError naming "audience", "id" (empty, longer than
// MaxFeedEventIDBytes or not UTF-8) or "event" (an encoding longer than
// herald.MaxEventBytes).
func PrepareFeedEvent(ev herald.Event) (herald.Event, []byte, error) {
	if err := herald.ValidateTopic(ev.Audience); err != nil {
		ve, _ := herald.AsValidationError(err)
		return herald.Event{}, nil, &herald.ValidationError{Field: "audience", Reason: ve.Reason}
	}
	if ev.ID == "" {
		return herald.Event{}, nil, &herald.ValidationError{Field: "id", Reason: "must not be empty"}
	}
	if len(ev.ID) > MaxFeedEventIDBytes {
		return herald.Event{}, nil, &herald.ValidationError{Field: "id", Reason: fmt.Sprintf("is longer than %d bytes", MaxFeedEventIDBytes)}
	}
	if !utf8.ValidString(ev.ID) { // Cassandra keys it as text
		return herald.Event{}, nil, &herald.ValidationError{Field: "id", Reason: "is not valid UTF-8"}
	}
	ev.CreatedAt = ev.CreatedAt.UTC().Truncate(time.Microsecond)
	b, err := json.Marshal(ev)
	if err != nil {
		return herald.Event{}, nil, &herald.ValidationError{Field: "event", Reason: fmt.Sprintf("cannot be encoded: %v", err)}
	}
	if len(b) > herald.MaxEventBytes {
		return herald.Event{}, nil, &herald.ValidationError{Field: "event", Reason: fmt.Sprintf("encodes to %d bytes, more than the %d allowed", len(b), herald.MaxEventBytes)}
	}
	// The stored copy is the decoded encoding, so that every store returns
	// the same event (Data compacted as encoding/json writes it).
	var out herald.Event
	if err := json.Unmarshal(b, &out); err != nil {
		return herald.Event{}, nil, fmt.Errorf("store: decode a feed event just encoded: %w", err)
	}
	return out, b, nil
}

// DecodeFeedEvent decodes an encoding of PrepareFeedEvent.
func DecodeFeedEvent(b []byte) (herald.Event, error) {
	var ev herald.Event
	if err := json.Unmarshal(b, &ev); err != nil {
		return herald.Event{}, fmt.Errorf("store: decode a feed event: %w", err)
	}
	ev.CreatedAt = ev.CreatedAt.UTC()
	return ev, nil
}

// ValidateFeedLimit checks the limit of Feeds.FeedItems.
func ValidateFeedLimit(limit int) error {
	if limit < 1 || limit > MaxFeedPage {
		return &herald.ValidationError{Field: "limit", Reason: fmt.Sprintf("must be 1 to %d", MaxFeedPage)}
	}
	return nil
}

// ValidateFeedPos checks a position of Feeds.SetFeedCursor or the after of
// FeedItems: not negative.
func ValidateFeedPos(field string, pos int64) error {
	if pos < 0 {
		return &herald.ValidationError{Field: field, Reason: "must not be negative"}
	}
	return nil
}
