// Package delivery is Herald's WebSocket gateway: it authenticates a user's
// connection (GET /v1/ws?token=JWT&after=SEQ), replays what the user missed
// from the durable inbox, then streams live notifications handed to it by
// the router, with no gap and no duplicate at the seam.
//
// The same connections also come as Server-Sent Events (sse.go,
// GET /v1/sse): a connection's write side goes through a sink, a WebSocket
// or an SSE response, and everything below (replay, seam, gap fill,
// position checks, seq conflicts, the bounded queue, close codes) is
// shared; the SSE sink renders frames as events, pings as comments and
// the close as a close event before the response ends. Long polls
// (waiters.go, GET /v1/notifications?wait=) are registered in the same hub
// and woken by Deliver.
//
// Design, for many mostly idle connections:
//
//   - The hub is sharded by user id; each shard has its own mutex. Nothing
//     serialises all connections through one goroutine or one lock.
//   - An idle connection owns exactly one goroutine, its reader, started
//     fresh after the upgrade so it does not inherit net/http's grown
//     stack; in epoll read mode (Config.ReadMode, poll_linux.go) none: it
//     is parked on the gateway's poller and read by a pooled worker only
//     when its socket has input. There is no writer goroutine per connection: when a frame is
//     queued on a connection without a writer, a short-lived writer
//     goroutine drains the queue and exits. The write buffer is pooled and
//     the read buffer small.
//   - There are no per-connection timers: a few shared ping loops walk the
//     shards and queue a ping on each connection; the read deadline is
//     PingInterval+PongWait from the last pong or message.
//   - Each connection's outbound queue is bounded in bytes. A client that
//     does not keep up is closed with 4008 and resumes later with
//     after=<last seq>; everyone else keeps receiving.
//
// Replay/live seam: the connection is registered in the hub before the
// inbox is read, so a live notification that arrives during the replay is
// buffered on the connection. After the replay the buffered ones newer than
// the last replayed seq are sent, then {"type":"synced"}, then live traffic.
// Every connection tracks the last seq it sent: a live notification at or
// below it is a duplicate and skipped; one whose prev is above it reveals a
// gap (a notification lost between gateways) that is filled from the inbox
// before it is sent.
//
// Several gateways: Config.Presence is told when a user's first connection
// (or waiting long poll) registers and their last one goes away, and LocalUsers lists who is here,
// so that delivery/cluster can keep a presence registry in Redis and route
// notifications and unread counts to whichever gateway holds the user.
//
// Reconnect storms (admission.go): upgrades are admitted through a token
// bucket and refused with 503 + a jittered Retry-After beyond it, or while
// too many connections wait for one of the bounded replay slots; a
// connection that waits too long for a slot is closed with 1013.
//
// Position checks (position.go): notifications forwarded between gateways
// can be lost (Redis pub/sub is at most once), so a user's connections are
// compared with the inbox's last seq where that happens (after a Redis
// resubscription, after their presence is first written: CheckPositions,
// asked by delivery/cluster) and, as a safety net, every quiet connection
// every PositionInterval, and brought up to date through the gap fill.
//
// The WebSocket protocol (frames, close codes, limits) is part of Herald's
// public contract, described in docs/ARCHITECTURE.md and api/openapi.json.
package delivery
