// Package pushfake runs Herald's in-process stand-ins for Apple Push
// Notification service and Firebase Cloud Messaging: the servers every push
// test and `herald dev` send to.
//
// They speak the providers' real protocols, so the real client libraries
// (github.com/sideshow/apns2 with token auth, firebase.google.com/go/v4
// messaging over HTTP v1) talk to them unchanged:
//
//   - APNs: HTTP/2 only, over TLS with a certificate from a CA generated at
//     Start (Fakes.CAPEM, Fakes.CertPool). POST /3/device/<token> checks the
//     ES256 provider token (kid, iss = team id, iat within the last hour),
//     apns-topic, apns-push-type, apns-priority, apns-expiration,
//     apns-collapse-id, apns-id, duplicate headers, the payload size and its
//     aps dictionary, and answers as Apple does: 200 with apns-id and an
//     empty body, or a status with apns-id and {"reason":"…"} (410 adds
//     "timestamp" in milliseconds).
//   - FCM: plain HTTP on loopback by default (the SDK takes any endpoint
//     through option.WithEndpoint, and the token URL from the
//     service-account file), HTTPS with the same CA when Config.FCMTLS.
//     POST /token is the OAuth2 endpoint for the service-account JWT-bearer
//     grant (RS256 signature, iss, aud, scope, iat/exp); POST
//     /v1/projects/<project>/messages:send needs an access token it issued
//     and answers {"name":"projects/<p>/messages/<id>"} or Google's error
//     JSON with the google.firebase.fcm.v1.FcmError detail the SDK's
//     messaging.IsUnregistered and friends read.
//
// What a device token does is chosen by its prefix (see Behaviour), the same
// for both providers, so every path can be tried by hand:
//
//	prefix          APNs                            FCM
//	unregistered-   410 Unregistered (+timestamp)   404 NOT_FOUND / UNREGISTERED
//	bad-            400 BadDeviceToken              400 INVALID_ARGUMENT (message.token)
//	flaky-          503 ServiceUnavailable once,    503 UNAVAILABLE once, then 200
//	                then 200 (Retry-After: 1)       (Retry-After: 1; the SDK retries it itself)
//	down-           500 InternalServerError         500 INTERNAL
//	mismatch-       400 DeviceTokenNotForTopic      403 PERMISSION_DENIED / SENDER_ID_MISMATCH
//	throttled-      429 TooManyRequests             429 RESOURCE_EXHAUSTED / QUOTA_EXCEEDED
//	anything else   200                             200
//
// A topic the key's team does not own is 400 TopicDisallowed (a
// configuration error, not a dead token). SetOutage makes a
// provider fail every send until it is switched back. Every request is
// recorded, in arrival order, in a bounded ring served as
// {"pushes":[Record…]} by Fakes.Handler.
package pushfake
