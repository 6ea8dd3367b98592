// Package apns is Herald's push.Sender for Apple Push Notification service,
// over github.com/sideshow/apns2 with token (JWT) authentication.
//
// One Sender serves one app (one signing key, one topic). It keeps a small
// pool of HTTP/2 connections (one apns2.Client, and so one transport, per
// connection, used round-robin; Config.Conns, default 2) and bounds the
// requests in flight across them (Config.MaxInFlight, default 256), so a
// burst multiplexes over a few long-lived connections as Apple asks instead
// of opening new ones.
//
// The provider token is shared by the pool and renewed by apns2's token
// package before its hour runs out (after 50 minutes); if APNs still
// answers 403 ExpiredProviderToken (clock skew), the sender signs a fresh
// token once and sends that message again, and only then reports the
// failure.
//
// Each request carries apns-push-type alert, apns-priority 10 for high
// priority else 5, apns-expiration from the message's expiry, apns-topic,
// apns-collapse-id (the collapse key, else the notification id; an id
// longer than Apple's 64 bytes is replaced by the hex SHA-256 of it, 64
// bytes) and apns-id (a UUID derived from the notification id and the
// token, so a resend of the same notification to the same device has the
// same id). The payload is
//
//	{"aps":{"alert":{"title","body"},"badge","sound":"default","thread-id":type},
//	 "herald_id","herald_seq","herald_event_id","data"}
//
// and must fit Apple's 4096 bytes: the body is cut (on a character
// boundary, ending in "…") until it fits, never the title; a payload that
// does not fit with an empty body fails permanently with PayloadTooLarge
// before anything is sent.
package apns
