package cluster

import (
	"encoding/json"
	"errors"
	"fmt"

	herald "github.com/heraldhq/herald"
)

// Message kinds on a gateway's channel.
const (
	kindNotification = "n"
	kindUnread       = "u"
	kindMembership   = "m"
	kindPreferences  = "p"
	kindBroadcast    = "b"
)

// maxMessageBytes bounds a message read from a gateway channel; larger ones
// are refused. A notification comes from an event of at most 64 KiB, so
// this leaves ample room.
const maxMessageBytes = 1 << 20

// errBadMessage wraps every reason decodeMessage refuses a message.
var errBadMessage = errors.New("cluster: bad message")

// message is what one gateway publishes to another on channel gw:<id>:
//
//	{"k":"n","u":"<user>","n":{…notification…}}  a live notification
//	{"k":"u","u":"<user>","c":<unread>}          a new unread count
//	{"k":"m","u":"<user>","t":"<topic>","s":true} a membership change
//	{"k":"p","u":"<user>","p":{…preferences…}}    new preferences
//
// and on the channel every gateway reads (broadcasts), without a user:
//
//	{"k":"b","b":{…broadcast…}}                   a live broadcast
type message struct {
	// Kind is "n" (Notification is set), "u" (Unread is set), "m" (Topic
	// and Subscribed are set), "p" (Preferences is set) or "b" (Broadcast
	// is set, UserID is empty).
	Kind         string
	UserID       string
	Notification herald.Notification
	Unread       int64
	Topic        string
	Subscribed   bool
	Preferences  herald.Preferences
	Broadcast    herald.Broadcast
}

// wire is message's JSON form; pointers tell a missing field from a zero.
type wire struct {
	K string               `json:"k"`
	U string               `json:"u,omitempty"`
	N *herald.Notification `json:"n,omitempty"`
	C *int64               `json:"c,omitempty"`
	T *string              `json:"t,omitempty"`
	S *bool                `json:"s,omitempty"`
	P *herald.Preferences  `json:"p,omitempty"`
	B *herald.Broadcast    `json:"b,omitempty"`
}

// encodeNotification builds the "n" message for n.
func encodeNotification(userID string, n *herald.Notification) ([]byte, error) {
	return json.Marshal(wire{K: kindNotification, U: userID, N: n})
}

// encodeUnread builds the "u" message.
func encodeUnread(userID string, unread int64) ([]byte, error) {
	return json.Marshal(wire{K: kindUnread, U: userID, C: &unread})
}

// encodeMembership builds the "m" message.
func encodeMembership(userID, topic string, subscribed bool) ([]byte, error) {
	return json.Marshal(wire{K: kindMembership, U: userID, T: &topic, S: &subscribed})
}

// encodePreferences builds the "p" message.
func encodePreferences(userID string, p *herald.Preferences) ([]byte, error) {
	return json.Marshal(wire{K: kindPreferences, U: userID, P: p})
}

// encodeBroadcast builds the "b" message.
func encodeBroadcast(b *herald.Broadcast) ([]byte, error) {
	return json.Marshal(wire{K: kindBroadcast, B: b})
}

// decodeMessage parses and validates a message from a gateway channel. Its
// errors wrap errBadMessage. Unknown fields are ignored, so a newer
// gateway may add some; an unknown kind is refused.
func decodeMessage(b []byte) (message, error) {
	var m message
	if len(b) > maxMessageBytes {
		return m, fmt.Errorf("%w: %d bytes, more than %d", errBadMessage, len(b), maxMessageBytes)
	}
	var w wire
	if err := json.Unmarshal(b, &w); err != nil {
		return m, fmt.Errorf("%w: %w", errBadMessage, err)
	}
	if w.K == kindBroadcast {
		return decodeBroadcast(w)
	}
	if err := herald.ValidateUserID(w.U); err != nil {
		return m, fmt.Errorf("%w: u: %w", errBadMessage, err)
	}
	m.Kind, m.UserID = w.K, w.U
	switch w.K {
	case kindNotification:
		if w.N == nil {
			return message{}, fmt.Errorf("%w: kind n without n", errBadMessage)
		}
		if w.N.Seq == 0 || w.N.Prev >= w.N.Seq {
			return message{}, fmt.Errorf("%w: notification with seq %d, prev %d", errBadMessage, w.N.Seq, w.N.Prev)
		}
		m.Notification = *w.N
		m.Notification.UserID = w.U
	case kindUnread:
		if w.C == nil || *w.C < 0 {
			return message{}, fmt.Errorf("%w: kind u without a non-negative c", errBadMessage)
		}
		m.Unread = *w.C
	case kindMembership:
		if w.T == nil || w.S == nil {
			return message{}, fmt.Errorf("%w: kind m without t and s", errBadMessage)
		}
		if err := herald.ValidateTopic(*w.T); err != nil {
			return message{}, fmt.Errorf("%w: t: %w", errBadMessage, err)
		}
		m.Topic, m.Subscribed = *w.T, *w.S
	case kindPreferences:
		if w.P == nil {
			return message{}, fmt.Errorf("%w: kind p without p", errBadMessage)
		}
		if err := w.P.Validate(); err != nil {
			return message{}, fmt.Errorf("%w: p: %w", errBadMessage, err)
		}
		m.Preferences = *w.P
	default:
		return message{}, fmt.Errorf("%w: unknown kind %q", errBadMessage, w.K)
	}
	return m, nil
}

// decodeBroadcast validates a "b" message: a broadcast of a topic, with an
// event id, and no user.
func decodeBroadcast(w wire) (message, error) {
	switch {
	case w.B == nil:
		return message{}, fmt.Errorf("%w: kind b without b", errBadMessage)
	case w.U != "":
		return message{}, fmt.Errorf("%w: kind b with a user", errBadMessage)
	case w.B.EventID == "" || len(w.B.EventID) > herald.MaxIDLen:
		return message{}, fmt.Errorf("%w: b.event_id must be 1-%d bytes", errBadMessage, herald.MaxIDLen)
	}
	if err := herald.ValidateTopic(w.B.Topic); err != nil {
		return message{}, fmt.Errorf("%w: b.topic: %w", errBadMessage, err)
	}
	return message{Kind: kindBroadcast, Broadcast: *w.B}, nil
}
