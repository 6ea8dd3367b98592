// Package cluster connects Herald's WebSocket gateways through Redis so
// that a notification reaches a user's connections whichever gateway they
// are on, whichever gateway's router consumed it.
//
// # Redis layout
//
//   - <prefix>presence:<user> (prefix "herald:" by default): a sorted set
//     of the ids of the gateways holding the user, scored by when the entry
//     expires (unix ms). A gateway adds itself when the user's first
//     connection registers there, removes itself when the last one goes,
//     and refreshes every local user each Heartbeat; the key expires
//     PresenceTTL after its last refresh. Readers ignore members whose
//     score has passed, so a crashed gateway's users stop being listed
//     after PresenceTTL.
//
//   - channel gw:<id> (or <prefix>gw:<id> with a non-default prefix): what
//     other gateways send to gateway <id>, one JSON message each,
//     {"k":"n","u":user,"n":notification}, {"k":"u","u":user,"c":unread} or
//     {"k":"m","u":user,"t":topic,"s":subscribed} or
//     {"k":"p","u":user,"p":preferences}.
//
//   - channel broadcasts (or <prefix>broadcasts): read by every gateway
//     besides its own channel; the fan-out stage PUBLISHes each live
//     broadcast of a large audience there once, {"k":"b","b":broadcast},
//     and each gateway frames it for its own members of the topic
//     (broadcast.go; docs/ARCHITECTURE.md, "Live broadcasts").
//
//   - <prefix>online:<topic>: a sorted set of the members of topic
//     connected to some gateway, member "<user>|<gateway id>", scored by
//     expiry (unix ms) like the presence sets (memberships.go). A gateway
//     with delivery.Config.Memberships loads a user's topics at their first
//     connection, writes them, refreshes them each Heartbeat, and removes
//     its own entries when the user's last connection goes (the user's
//     entries from other gateways stay). MembershipChanged routes a
//     {"k":"m","u":user,"t":topic,"s":bool} message to the user's gateways,
//     which update their cache and these sets. OnlineMembers (ZRANGEBYSCORE
//     now +inf, de-duplicated by user) is the live path of the fan-out of a
//     large audience: it costs O(connected members) where paging through
//     the topic's members would cost O(members). Crashed gateways' entries
//     stop being listed after PresenceTTL and are pruned by readers.
//
// Deliver queues the notification locally, then runs one Lua script that
// reads the user's live gateways and PUBLISHes to each other one; PUBLISH
// tells how many subscribers received it, so a listed gateway that is not
// subscribed (crashed, reconnecting) counts as offline at once rather than
// after its entry expires. This relies on a standalone Redis (or a
// primary with replicas): with Redis Cluster, PUBLISH counts only the
// node's own subscribers.
//
// PublishLive (live.go) is the enricher's direct path: a publish-only
// Cluster sends each committed batch, one EVALSHA of the same script per
// notification in one pipeline, to the users' gateways, so live delivery
// does not depend on the router that owns the user's delivery partition
// (a crashed gateway's partitions wait for its group session to time out).
// It is best effort and the routers deliver everything again; gateways drop
// what they already sent by seq.
//
// # Wiring
//
//	cl, _ := cluster.New(cluster.Config{URL: redisURL, GatewayID: id})
//	gw, _ := delivery.New(delivery.Config{Store: st, Verifier: v, Presence: cl, Unread: cl})
//	_ = cl.Attach(gw)
//	go cl.Run(ctx)
//	router, _ := pipeline.NewRouter(pipeline.RouterConfig{Deliverer: cl, …})
//	// shutdown: router.Close(); gw.Shutdown(ctx); cl.Close()
//
// An API process that only publishes unread counts uses a Cluster without
// a Local and does not Run it.
//
// # Failure behaviour
//
// Redis down: Deliver still queues locally and returns online=local with a
// nil error, logging (rate-limited) and counting the failure; for a second
// after a failure routing does not even try Redis, so a Redis that hangs
// slows each partition of the router by about one Timeout per second.
// Returning the error would make the router retry the record and stall its
// Kafka partition, and every user behind it, until Redis is back. The fallback
// only degrades: a user connected to another gateway is reported offline,
// so the router pushes the notification to their phone, and their socket
// there does not get it live — it is in the inbox, and the gateway fills
// the gap (from prev) on the user's next notification, or the client's
// reconnect with after= replays it. Presence writes that fail are retried
// at the next change or heartbeat; the subscription is re-established with
// backoff and presence re-announced.
//
// Residual risks, all bounded by the inbox:
//   - Pub/sub is at most once. A message Redis accepted for a subscriber
//     can still be lost if that subscriber's connection breaks before it
//     reads it; the notification then reaches that socket with the user's
//     next notification (gap fill), on reconnect, or at the position check
//     the gateway makes of every local user once its subscription is back
//     and their presence re-announced (delivery/position.go; the periodic
//     round of quiet connections, every 60 s by default, is the safety
//     net), whichever comes first. It is not pushed (the user counted as
//     online). Likewise a user's first connection on a gateway is checked
//     once its presence entry is written: a notification routed elsewhere
//     before that was not forwarded to it.
//   - A gateway that hangs while its Redis connections stay open keeps its
//     users listed, and subscribed, until PresenceTTL: no push for them.
//   - Presence scores use each gateway's clock: the fleet tolerates a skew
//     of PresenceTTL-Heartbeat.
//   - A presence change dropped because MaxPending changes were waiting is
//     repaired by a full re-announce (arrivals) or by expiry (departures).
//
// Cost: each Deliver and PublishUnread is one Redis round trip (EVALSHA);
// presence is three commands per arrival, one per departure and two per
// local user per Heartbeat, pipelined in batches of BatchSize; membership
// entries add, per Heartbeat, one ZADD and one PEXPIRE per topic of a
// batch (all its members in one ZADD), in batches of about BatchSize
// entries.
package cluster
