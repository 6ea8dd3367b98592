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
//   - FCM: plain HTTP on loopback (the SDK takes any endpoint through
//     option.WithEndpoint, and the token URL from the service-account file).
//     POST /token is the OAuth2 endpoint for the service-account JWT-bearer
//     grant (RS256 signature, iss, aud, scope, iat/exp); POST
//     /v1/projects/<project>/messages:send needs an access token it issued
//     and answers {"name":"projects/<p>/messages/<id>"} or Google's error
//     JSON with the google.firebase.fcm.v1.FcmError detail the SDK's
//     messaging.IsUnregistered and friends read.
//
// What a device token does is chosen by its prefix (see Behaviour), the same
// for both providers, so every path can be tried by hand. SetOutage makes a
// provider fail every send until it is switched back. Every request is
// recorded, in arrival order, in a bounded ring served as
// {"pushes":[Record…]} by Fakes.Handler.
package pushfake
