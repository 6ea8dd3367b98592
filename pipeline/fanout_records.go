package pipeline

import (
	"bytes"
	"encoding/json"
	"fmt"

	herald "github.com/heraldhq/herald"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The records of herald.fanout (part of the one codec, records.go).

// Catch-up triggers: why a member's catch-up was requested (the
// "trigger" label of herald_fanout_catchups_total).
const (
	// TriggerLive: a large-audience broadcast, for its connected members.
	TriggerLive = "live"
	// TriggerPush: a large-audience broadcast, for its members with a
	// registered device.
	TriggerPush = "push"
	// TriggerRead: the member read their inbox (GET /v1/notifications).
	TriggerRead = "read"
	// TriggerConnect: the member's first connection opened on a gateway.
	TriggerConnect = "connect"
)

// MaxCatchUpUsers bounds the users of one catch-up record.
const MaxCatchUpUsers = 1000

// FanoutRecord is the value of a herald.fanout record: either a
// multi-recipient event (user_ids or audience) and how far its expansion
// got, or (CatchUp set, no Event) the catch-up of members' inboxes on an
// audience's feed.
//
// The enricher forwards a multi-recipient event from herald.events as the
// first record (Next 0, After "", Feed 0); the fan-out stage (fanout.go)
// expands one page of recipients per record and, while recipients remain,
// produces the continuation in the page's transaction. A large audience's
// first record puts the event in the topic's feed instead
// (fanout_feed.go); its continuations (Feed set) are the pages of members
// with devices.
type FanoutRecord struct {
	Event herald.Event `json:"event,omitzero"`
	// Next is the index in Event.UserIDs of the next recipient.
	Next int `json:"next,omitempty"`
	// After is the user id of the audience's last member expanded: the
	// next page starts after it.
	After string `json:"after,omitempty"`
	// Sent is the number of recipients of the pages before this one.
	Sent int64 `json:"sent,omitempty"`
	// Feed is the event's position in its audience's feed: set on the
	// continuations of a large audience (the pages of pushed members).
	Feed int64 `json:"feed,omitempty"`
	// CatchUp, when set, makes this record a catch-up (no Event).
	CatchUp *CatchUpRecord `json:"catch_up,omitempty"`
}

// CatchUpRecord asks the fan-out stage to take the broadcasts of Topic's
// feed that Users have not taken yet into their inboxes.
type CatchUpRecord struct {
	Topic string `json:"topic"`
	// Users are the members to catch up, 1 to MaxCatchUpUsers.
	Users []string `json:"users"`
	// After, with a single user, is a feed position up to which that user
	// is known to be caught up (a continuation: the position of the last
	// item its previous page produced). 0: the stored cursor alone.
	After int64 `json:"after,omitempty"`
	// Trigger is why (TriggerLive, TriggerPush, TriggerRead,
	// TriggerConnect).
	Trigger string `json:"trigger"`
}

// Fanout is the herald.fanout record of f. Key: the topic for an
// audience's event and a catch-up of several users (one topic's broadcasts
// go through one partition, in order), the user id for a single user's
// catch-up, the event id for user_ids.
func (c Codec) Fanout(f *FanoutRecord) (*kgo.Record, error) {
	v, err := encodeJSON(f)
	if err != nil {
		return nil, fmt.Errorf("encode fan-out of %s: %w", f.Event.ID, err)
	}
	key := f.Event.ID
	switch {
	case f.CatchUp != nil && len(f.CatchUp.Users) == 1:
		key = f.CatchUp.Users[0]
	case f.CatchUp != nil:
		key = f.CatchUp.Topic
	case f.Event.Audience != "":
		key = f.Event.Audience
	}
	return &kgo.Record{Topic: c.Names.Fanout, Key: []byte(key), Value: v}, nil
}

// DecodeFanoutRecord reads a herald.fanout record. The event is validated
// as herald.DecodeEvent validates any event and must be multi-recipient; a
// catch-up's topic, users and trigger are validated. Every error is a
// *herald.ValidationError (the record belongs in the DLQ).
func DecodeFanoutRecord(r *kgo.Record) (FanoutRecord, error) {
	var w struct {
		Event   json.RawMessage `json:"event"`
		Next    int             `json:"next"`
		After   string          `json:"after"`
		Sent    int64           `json:"sent"`
		Feed    int64           `json:"feed"`
		CatchUp *CatchUpRecord  `json:"catch_up"`
	}
	invalid := func(field, reason string) error {
		return &herald.ValidationError{Field: field, Reason: reason}
	}
	if len(r.Value) > 2*herald.MaxEventBytes {
		return FanoutRecord{}, invalid("", fmt.Sprintf("fan-out record is %d bytes, more than %d", len(r.Value), 2*herald.MaxEventBytes))
	}
	dec := json.NewDecoder(bytes.NewReader(r.Value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&w); err != nil {
		return FanoutRecord{}, invalid("", "fan-out record is not valid JSON: "+err.Error())
	}
	if w.CatchUp != nil {
		if len(w.Event) != 0 || w.Next != 0 || w.After != "" || w.Sent != 0 || w.Feed != 0 {
			return FanoutRecord{}, invalid("catch_up", "excludes event, next, after, sent and feed")
		}
		if err := w.CatchUp.validate(); err != nil {
			return FanoutRecord{}, err
		}
		return FanoutRecord{CatchUp: w.CatchUp}, nil
	}
	if len(w.Event) == 0 {
		return FanoutRecord{}, invalid("event", "is required")
	}
	ev, err := herald.DecodeEvent(w.Event, r.Timestamp)
	if err != nil {
		return FanoutRecord{}, err
	}
	switch {
	case !ev.Multi():
		return FanoutRecord{}, invalid("event", "has neither user_ids nor audience")
	case w.Next < 0 || w.Next > len(ev.UserIDs) || (w.Next > 0 && ev.Audience != ""):
		return FanoutRecord{}, invalid("next", fmt.Sprintf("%d is not an index of the event's %d user_ids", w.Next, len(ev.UserIDs)))
	case w.After != "" && (ev.Audience == "" || herald.ValidateUserID(w.After) != nil):
		return FanoutRecord{}, invalid("after", "must be a member's user id, for an audience")
	case w.Sent < 0:
		return FanoutRecord{}, invalid("sent", "must not be negative")
	case w.Feed < 0 || (w.Feed > 0 && ev.Audience == ""):
		return FanoutRecord{}, invalid("feed", "must be a feed position, for an audience")
	}
	return FanoutRecord{Event: ev, Next: w.Next, After: w.After, Sent: w.Sent, Feed: w.Feed}, nil
}

// validate checks a decoded catch-up.
func (c *CatchUpRecord) validate() error {
	invalid := func(field, reason string) error {
		return &herald.ValidationError{Field: "catch_up." + field, Reason: reason}
	}
	if err := herald.ValidateTopic(c.Topic); err != nil {
		return invalid("topic", err.Error())
	}
	if len(c.Users) == 0 || len(c.Users) > MaxCatchUpUsers {
		return invalid("users", fmt.Sprintf("must hold 1 to %d user ids", MaxCatchUpUsers))
	}
	for _, u := range c.Users {
		if err := herald.ValidateUserID(u); err != nil {
			return invalid("users", err.Error())
		}
	}
	switch {
	case c.After < 0:
		return invalid("after", "must not be negative")
	case c.After > 0 && len(c.Users) != 1:
		return invalid("after", "is for a single user's catch-up")
	}
	switch c.Trigger {
	case TriggerLive, TriggerPush, TriggerRead, TriggerConnect:
	default:
		return invalid("trigger", fmt.Sprintf("%q is not one of live, push, read, connect", c.Trigger))
	}
	return nil
}
