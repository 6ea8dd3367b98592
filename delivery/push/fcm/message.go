package fcm

import (
	"strconv"
	"time"

	"firebase.google.com/go/v4/messaging"
	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/delivery/push/apns"
)

// Data keys Herald adds to every message's data.
const (
	KeyID      = "herald_id"
	KeySeq     = "herald_seq"
	KeyEventID = "herald_event_id"
	KeyType    = "herald_type"
	KeyData    = "data"
)

// Message builds the FCM message of m at now (the android ttl is what
// remains until m's expiry, at least 0).
func Message(m *push.Message, now time.Time) *messaging.Message {
	n := &m.Notification
	data := map[string]string{
		KeyID:      n.ID,
		KeySeq:     strconv.FormatUint(n.Seq, 10),
		KeyEventID: n.EventID,
		KeyType:    n.Type,
	}
	if len(n.Data) > 0 && string(n.Data) != "null" {
		data[KeyData] = string(n.Data)
	}
	msg := &messaging.Message{
		Token:        m.Device.Token,
		Data:         data,
		Notification: &messaging.Notification{Title: n.Title, Body: n.Body},
	}
	var badge *int
	if m.Badge >= 0 {
		b := m.Badge
		badge = &b
	}
	if m.Device.Platform == push.PlatformIOS {
		h := map[string]string{
			"apns-push-type":   "alert",
			"apns-priority":    "5",
			"apns-collapse-id": apns.CollapseID(m),
			"apns-id":          apns.APNsID(m),
		}
		if m.High() {
			h["apns-priority"] = "10"
		}
		if !m.ExpiresAt.IsZero() {
			h["apns-expiration"] = strconv.FormatInt(m.ExpiresAt.Unix(), 10)
		}
		msg.APNS = &messaging.APNSConfig{
			Headers: h,
			Payload: &messaging.APNSPayload{
				Aps: &messaging.Aps{
					Alert:    &messaging.ApsAlert{Title: n.Title, Body: n.Body},
					Badge:    badge,
					Sound:    "default",
					ThreadID: n.Type,
				},
			},
		}
		return msg
	}
	a := &messaging.AndroidConfig{
		CollapseKey:  m.CollapseKey,
		Priority:     "normal",
		Notification: &messaging.AndroidNotification{Tag: m.CollapseID(), NotificationCount: badge},
	}
	if m.High() {
		a.Priority = "high"
	}
	if !m.ExpiresAt.IsZero() {
		ttl := max(m.ExpiresAt.Sub(now).Truncate(time.Second), 0)
		a.TTL = &ttl
	}
	msg.Android = a
	return msg
}
