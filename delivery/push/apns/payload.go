package apns

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/heraldhq/herald/delivery/push"
	"github.com/sideshow/apns2"
)

// MaxPayload is Apple's limit on an alert notification's payload, in bytes.
const MaxPayload = 4096

// MaxCollapseID is Apple's limit on apns-collapse-id, in bytes.
const MaxCollapseID = 64

// Ellipsis ends a truncated body.
const Ellipsis = "…"

type alert struct {
	Title string `json:"title,omitempty"`
	Body  string `json:"body,omitempty"`
}

type aps struct {
	Alert    alert  `json:"alert"`
	Badge    *int   `json:"badge,omitempty"`
	Sound    string `json:"sound"`
	ThreadID string `json:"thread-id,omitempty"`
}

type payload struct {
	APS     aps             `json:"aps"`
	ID      string          `json:"herald_id"`
	Seq     uint64          `json:"herald_seq"`
	EventID string          `json:"herald_event_id"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// Payload returns the JSON payload of m, at most MaxPayload bytes: the body
// is truncated (ending in Ellipsis) when the whole does not fit. It fails
// with a *push.PermanentError (ReasonPayloadTooLarge) when even an empty
// body does not fit, or (ReasonInvalidMessage) when m's data is not JSON.
// The bytes are those json.Marshal writes, which is also how apns2 sends
// them, so the size checked is the size on the wire.
func Payload(m *push.Message) ([]byte, error) {
	n := &m.Notification
	p := payload{
		APS:     aps{Alert: alert{Title: n.Title, Body: n.Body}, Sound: "default", ThreadID: n.Type},
		ID:      n.ID,
		Seq:     n.Seq,
		EventID: n.EventID,
		Data:    n.Data,
	}
	if m.Badge >= 0 {
		b := m.Badge
		p.APS.Badge = &b
	}
	b, err := json.Marshal(&p)
	if err != nil {
		return nil, &push.PermanentError{Reason: push.ReasonInvalidMessage, Err: err}
	}
	if len(b) <= MaxPayload {
		return b, nil
	}
	// Find the longest prefix of the body (in runes) that fits with the
	// ellipsis: the marshaled size grows with the prefix, so bisect.
	body := n.Body
	size := func(prefix string) ([]byte, bool) {
		p.APS.Alert.Body = prefix
		if prefix != "" {
			p.APS.Alert.Body = prefix + Ellipsis
		}
		out, _ := json.Marshal(&p)
		return out, len(out) <= MaxPayload
	}
	best, ok := size("")
	if !ok {
		return nil, &push.PermanentError{Reason: push.ReasonPayloadTooLarge,
			Err: fmt.Errorf("apns: payload is %d bytes with an empty body, over the %d-byte limit", len(best), MaxPayload)}
	}
	runes := utf8.RuneCountInString(body)
	lo, hi := 0, runes // lo fits (0 = empty body), hi does not need checking past runes-1
	for lo < hi {
		mid := (lo + hi + 1) / 2
		if out, ok := size(prefixRunes(body, mid)); ok {
			lo, best = mid, out
		} else {
			hi = mid - 1
		}
	}
	if lo == 0 {
		best, _ = size("")
		return best, nil
	}
	// A prefix ending in spaces reads better without them; it only shrinks.
	if trimmed := strings.TrimRight(prefixRunes(body, lo), " \t\n"); trimmed != prefixRunes(body, lo) {
		best, _ = size(trimmed)
	}
	return best, nil
}

func prefixRunes(s string, n int) string {
	for i := range s {
		if n == 0 {
			return s[:i]
		}
		n--
	}
	return s
}

// CollapseID is the apns-collapse-id of m: its collapse key, else its
// notification id; longer than MaxCollapseID bytes, the hex SHA-256 of it
// (exactly 64 bytes, stable, so a resend still collapses).
func CollapseID(m *push.Message) string {
	id := m.CollapseID()
	if len(id) <= MaxCollapseID {
		return id
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:])
}

// APNsID is the apns-id of m: a UUID (version 8, RFC 9562) made of the
// SHA-256 of the notification id and the device token, so every resend of
// one notification to one device carries the same id.
func APNsID(m *push.Message) string {
	sum := sha256.Sum256([]byte(m.Notification.ID + "\x00" + m.Device.Token))
	u := sum[:16]
	u[6] = u[6]&0x0f | 0x80
	u[8] = u[8]&0x3f | 0x80
	h := hex.EncodeToString(u)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// Notification builds the apns2 notification of m for topic (the bundle
// id). Errors are those of Payload.
func Notification(topic string, m *push.Message) (*apns2.Notification, error) {
	if m.Device.Token == "" {
		return nil, &push.PermanentError{Reason: push.ReasonInvalidMessage, Err: errors.New("apns: empty device token")}
	}
	b, err := Payload(m)
	if err != nil {
		return nil, err
	}
	n := &apns2.Notification{
		ApnsID:      APNsID(m),
		CollapseID:  CollapseID(m),
		DeviceToken: m.Device.Token,
		Topic:       topic,
		Expiration:  m.ExpiresAt,
		Priority:    apns2.PriorityLow,
		Payload:     b,
		PushType:    apns2.PushTypeAlert,
	}
	if m.High() {
		n.Priority = apns2.PriorityHigh
	}
	return n, nil
}
