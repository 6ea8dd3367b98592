// Package fcm is Herald's push.Sender for Firebase Cloud Messaging (HTTP
// v1), over firebase.google.com/go/v4/messaging.
//
// One Sender serves one app (one service account, one project). The OAuth2
// access token is fetched from the service account's token_uri and reused
// until it nears expiry (golang.org/x/oauth2); the messaging endpoint is
// overridable (push.FCMApp.Endpoint), so tests and herald dev talk to a
// local fake.
//
// Each message carries Herald's ids in its data (herald_id, herald_seq,
// herald_event_id, herald_type, and the notification's data as a JSON
// string under "data": FCM data values are strings), an android block for
// Android devices (priority high or normal, ttl until the expiry,
// collapse_key, notification.tag = the collapse key else the notification
// id) and an apns block for iOS devices sent through FCM (the same
// apns-* headers and aps payload as delivery/push/apns).
//
// # Why Send per message, not SendEach
//
// In the v4 SDK SendEach is not a wire batch (Google retired the batch
// endpoint): it runs 50 goroutines that each call Send. It also hides the
// SDK's own retries (up to 4 more attempts on 503 and on network errors,
// waiting up to 2 minutes, Retry-After included) behind one context for the
// whole batch. The pipeline owns retries (its backoff, attempt count and
// circuit breaker must see every failure, and a waiting job must not hold
// a batch), so this Sender calls Send itself, with its own bound on
// concurrent requests (Config.MaxInFlight) and a context per message that
// it cancels as soon as the first answer says 503 or the request failed,
// which ends the SDK's retry loop: each message is one HTTP request.
package fcm
