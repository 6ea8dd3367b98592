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
type message struct {
	// Kind is "n" (Notification is set), "u" (Unread is set) or "m"
	// (Topic and Subscribed are set).
	Kind         string
	UserID       string
	Notification herald.Notification
	Unread       int64
	Topic        string
	Subscribed   bool
}

// wire is message's JSON form; pointers tell a missing field from a zero.
type wire struct {
	K string               `json:"k"`
	U string               `json:"u"`
	N *herald.Notification `json:"n,omitempty"`
	C *int64               `json:"c,omitempty"`
	T *string              `json:"t,omitempty"`
	S *bool                `json:"s,omitempty"`
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
	default:
		return message{}, fmt.Errorf("%w: unknown kind %q", errBadMessage, w.K)
	}
	return m, nil
}
