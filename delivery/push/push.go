package push

import (
	"context"
	"errors"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/errclass"
)

// Providers, as they appear in Result.Provider and in metric labels.
const (
	ProviderAPNs = "apns"
	ProviderFCM  = "fcm"
)

// Platforms of herald.Device.
const (
	PlatformIOS     = "ios"
	PlatformAndroid = "android"
)

// Message is one notification to one device.
type Message struct {
	// UserID is the owner of the device (for logs and metrics only).
	UserID string
	// Device is where to send: its platform, token and app_id.
	Device herald.Device
	// Notification is what to show; its ID, Seq and EventID travel in the
	// payload as herald_id, herald_seq and herald_event_id.
	Notification herald.Notification
	// CollapseKey makes a later push replace an earlier one on the device;
	// empty means the notification id (so a resend replaces itself).
	CollapseKey string
	// ExpiresAt is when the push stops being worth delivering; zero means
	// no expiry (the provider's default storage applies).
	ExpiresAt time.Time
	// Badge is the app icon badge (the user's unread count); negative
	// leaves the badge unchanged.
	Badge int
}

// CollapseID is the collapse key of m, or its notification id when it has
// none.
func (m *Message) CollapseID() string {
	if m.CollapseKey != "" {
		return m.CollapseKey
	}
	return m.Notification.ID
}

// High reports whether m is a high-priority notification.
func (m *Message) High() bool { return m.Notification.Priority == herald.PriorityHigh }

// Result is what a provider said about one Message.
type Result struct {
	// Provider is ProviderAPNs or ProviderFCM ("" when no provider was
	// asked, e.g. an unknown app).
	Provider string
	// Sent reports that the provider accepted the push; the fields below
	// Class then carry no meaning.
	Sent bool
	// MessageID is the provider's id of an accepted push (apns-id, FCM
	// message name).
	MessageID string
	// Status is the HTTP status of the provider's answer, 0 when there was
	// none (a timeout, a refused connection, a payload refused locally).
	Status int
	// Reason is the provider's reason (APNs "Unregistered", FCM
	// "UNAVAILABLE") or one of the local reasons below; "" when sent.
	Reason string
	// Class tells what to do about a failure: retry (transient), give up on
	// the job for this device (permanent), or stop (fatal).
	Class errclass.Class
	// TokenDead reports that the device token is no longer valid: delete
	// the device, do not retry. Class is then permanent.
	TokenDead bool
	// RetryAfter is the provider's Retry-After, 0 when it sent none; a
	// retry must not be sooner.
	RetryAfter time.Duration
	// Err is the underlying error, nil when sent.
	Err error
}

// Retriable reports whether the failure is worth another attempt.
func (r *Result) Retriable() bool { return !r.Sent && r.Class == errclass.ClassTransient }

// Local reasons: failures decided before or without a provider's answer.
const (
	ReasonPayloadTooLarge = "PayloadTooLarge" // still over the limit after truncating the body
	ReasonUnknownApp      = "UnknownApp"      // no credentials for the device's app_id and platform
	ReasonTimeout         = "Timeout"         // no answer in time (a timeout or the context's deadline)
	ReasonCanceled        = "Canceled"        // the caller's context was canceled
	ReasonConnection      = "ConnectionError" // reset, refused, closed, TLS or DNS failure
	ReasonBadCredentials  = "BadCredentials"  // the credentials were refused (OAuth2 token endpoint, bad key)
	ReasonInvalidMessage  = "InvalidMessage"  // the SDK refused the message before sending it
	ReasonUnknown         = "Unknown"         // a failure nothing else explains
	ReasonExpired         = "Expired"         // the expiry passed before the send: permanent, nothing was sent; drop and count rather than dead-letter
)

// errExpired is the error of ReasonExpired results.
var errExpired = errors.New("push: the notification expired before it was sent")

// CheckExpiry returns, for a message whose expiry is at or before now, the
// permanent ReasonExpired result senders give it without sending; ok is
// false then. Senders call it just before each request, so no push leaves
// after its expiry however long it waited.
func CheckExpiry(provider string, m *Message, now time.Time) (r Result, ok bool) {
	if m.ExpiresAt.IsZero() || now.Before(m.ExpiresAt) {
		return Result{}, true
	}
	return Result{Provider: provider, Reason: ReasonExpired, Class: errclass.ClassPermanent, Err: errExpired}, false
}

// Sender sends pushes to one provider (or, as a Mux, to many).
//
// Send returns exactly one Result per Message, in the same order. It never
// blocks past ctx (messages not sent by then get a transient Result with
// the context's error), bounds its own concurrency, and never retries: a
// failure is reported once, classified.
type Sender interface {
	Send(ctx context.Context, msgs []Message) []Result
}

// Route picks a Sender: the device's app_id and platform.
type Route struct {
	AppID    string
	Platform string
}

// Mux is a Sender that sends each message with the Sender registered for
// its device's app and platform; a message with none gets a permanent
// ReasonUnknownApp. It is safe for concurrent use once built.
type Mux map[Route]Sender

// errUnknownApp is the error of ReasonUnknownApp results.
var errUnknownApp = errors.New("push: no credentials for this app_id and platform")

// Send groups msgs by route, sends each group with its Sender (groups
// concurrently) and returns the results in msgs' order.
func (m Mux) Send(ctx context.Context, msgs []Message) []Result {
	out := make([]Result, len(msgs))
	groups := map[Sender][]int{}
	var order []Sender
	for i := range msgs {
		s, ok := m[Route{AppID: msgs[i].Device.AppID, Platform: msgs[i].Device.Platform}]
		if !ok {
			out[i] = Result{Reason: ReasonUnknownApp, Class: errclass.ClassPermanent, Err: errUnknownApp}
			continue
		}
		if _, seen := groups[s]; !seen {
			order = append(order, s)
		}
		groups[s] = append(groups[s], i)
	}
	done := make(chan struct{}, len(order))
	for _, s := range order {
		idx := groups[s]
		go func() {
			defer func() { done <- struct{}{} }()
			batch := make([]Message, len(idx))
			for j, i := range idx {
				batch[j] = msgs[i]
			}
			res := s.Send(ctx, batch)
			for j, i := range idx {
				if j < len(res) {
					out[i] = res[j]
				} else {
					out[i] = Result{Reason: ReasonUnknown, Class: errclass.ClassTransient, Err: errors.New("push: sender returned too few results")}
				}
			}
		}()
	}
	for range order {
		<-done
	}
	return out
}
