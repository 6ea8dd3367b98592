// Package push is the provider-neutral core of Herald's offline path: what
// one notification to one phone is (Message), what a provider said about it
// (Result), the one interface every provider speaks (Sender), the one
// classification of provider answers, the retry delay for push jobs, and the
// per-app credentials (App).
//
// # Layout
//
// The core lives here, one package per provider sits beside it
// (delivery/push/apns over github.com/sideshow/apns2, delivery/push/fcm over
// firebase.google.com/go/v4/messaging), and the in-tree fakes of both
// providers sit beside those (delivery/push/pushfake). The pusher pipeline
// depends on this package only, so it can be tested with a Sender of its
// own; each provider package imports one SDK, so a build that never talks to
// Google does not reason about Apple's headers and the other way round; and
// the fakes, which must answer exactly like the real services, are next to
// the code whose expectations they encode.
//
// # Failure modes
//
// Every answer a provider can give ends in one of four outcomes, decided by
// ClassifyAPNs, ClassifyFCM and ClassifyErr and nowhere else:
//
//   - sent (Result.Sent): nothing more to do;
//   - transient (errclass.ClassTransient): APNs 429/500/503, FCM
//     UNAVAILABLE, INTERNAL, QUOTA_EXCEEDED, timeouts, connection resets,
//     a context deadline. Retry the same device later with Backoff, no
//     sooner than Result.RetryAfter when the provider sent Retry-After, and
//     never after the job's expiry;
//   - token dead (Result.TokenDead, class permanent): APNs 410 Unregistered,
//     400 BadDeviceToken or DeviceTokenNotForTopic; FCM UNREGISTERED,
//     INVALID_ARGUMENT about the token, SENDER_ID_MISMATCH. Delete the
//     device, do not retry, do not dead-letter;
//   - permanent for the job (errclass.ClassPermanent): a payload still too
//     large after truncating the body, bad credentials (APNs 403
//     InvalidProviderToken, or ExpiredProviderToken again after a fresh
//     token), an unknown app, any other 4xx. Dead-letter with Result.Reason.
//
// A message whose expiry has passed is not sent at all: its Result is
// permanent with ReasonExpired, for the pipeline to count and drop (there
// is nothing to dead-letter: nobody wants it any more).
//
// A sender never retries by itself: it reports every failure once, so the
// pipeline's attempt count, backoff and circuit breaker see all of them.
package push
