// Package pipeline holds Herald's Kafka loops.
//
// The Enricher consumes herald.events and, in one Kafka transaction per
// polled batch (franz-go GroupTransactSession, read_committed), validates
// each event, applies the user's preferences, deduplicates by event id,
// appends notifications to the durable inbox and produces them to
// herald.deliveries (rejected input to herald.events.dlq, push-only events
// to herald.push). Store writes happen before the transaction commits and
// are idempotent, so a batch replayed after an abort or a crash yields the
// same notifications with the same seqs, and read_committed readers of
// herald.deliveries see each one exactly once.
//
// With a LivePublisher (live.go), the Enricher also hands each committed
// batch's notifications straight to the live gateways, from one goroutine
// behind a bounded queue: best effort, for latency and so that live
// delivery survives a dead gateway's partitions; the Router's delivery
// stays the durable one.
//
// The Router is the gateway fleet's consumer of herald.deliveries: it hands
// each notification to a Deliverer (the user's live connections) and, when
// the user is offline and preferences allow, produces a push job to
// herald.push before committing the offsets (at least once).
//
// The Pusher consumes herald.push and its retry topics and sends each job
// to the user's devices through a push.Sender; see "The Pusher" below.
//
// The EventWriter is the API's producer to herald.events (api.EventSink).
//
// Every record of every topic is encoded and decoded by one codec
// (records.go: Codec, Decode*), the wire format of docs/ARCHITECTURE.md.
// The Enricher and the Router share one poll loop (poll.go), and sort their
// errors with internal/errclass: transient errors are retried with backoff,
// a permanent store error for one user dead-letters that user's records of
// the batch while the rest goes on, and a fatal error ends Run so that the
// supervisor rebuilds the component. The enricher's batch goes through one
// method per stage (batch.go): decode, preferences, route, policy
// (policy.go: digests, rate limits, daily caps, with the due scanner of
// policy_due.go closing windows on time), claim and append, emit.
//
// # The Pusher
//
// A job's id is its notification id, the same for every replay and retry
// of the job. At send time (first attempt and every retry) the Pusher
// drops, and counts by reason, a job that expired, whose user's
// preferences now say push off, mute its type, or are in quiet hours for
// a non-high priority, or whose notification was read meanwhile (its seq
// is no longer unread in the inbox). An optional per-type push delay holds
// the job back through the retry topics and sends it only if still
// unread. It then sends to the user's devices minus those already marked
// sent for the job (store.PushProgress), and per result: sent → marked
// and the device's last_seen touched; token dead → the device is deleted
// if not registered again since the send started, never retried;
// transient → retried for the devices still pending, with push.Backoff
// (full jitter, Retry-After as a floor, bounded attempts, never past the
// expiry) and dead-lettered with the last reason once the attempts are
// used up; permanent → that device's job goes to herald.push.dlq with the
// reason and the attempts made. A crash between a send and its mark
// resends only what was in flight, and the stable collapse id makes the
// resend replace the first copy on the device. A graceful stop is no
// crash: it polls nothing more and lets the batch in flight be answered
// and marked (up to PusherConfig.DrainTimeout, 10s), so it resends
// nothing.
//
// Retries go through tiered retry topics, herald.push.retry.<tier> (5s,
// 30s and 5m by default; configurable): a waiting job is produced, with
// its pending tokens, attempt count and a herald-not-before header, to the
// smallest tier at least as long as its wait. A tier's records are thus in
// nearly not-before order, and its consumer works a partition only up to
// the first record not yet due: it pauses that partition alone, rewinds
// it to that record and resumes it at the record's time, so nothing is
// worked early, nothing holds the other partitions (herald.push's
// included), and a record behind a later head is late by less than the
// tier. A wait longer than the longest tier hops: the record is produced
// again when its tier's delay has passed. Retry topics were chosen over
// in-memory or per-partition delay queues because they survive restarts
// and rebalances with nothing but Kafka offsets (a waiting job is an
// uncommitted record, not state to rebuild), keep memory bounded however
// many jobs wait (a provider outage parks them in Kafka), and leave
// herald.push itself always flowing.
//
// A circuit breaker per (provider, app) counts transient failures in a
// window; when most sends fail it opens, and that provider+app's jobs go
// straight to the retry topics without a send (no attempt used) until,
// after a cool-down, one probe succeeds. Partitions of a batch are worked
// on one goroutine each; a partition's due jobs are decided concurrently,
// sent in one Sender call, and settled; the batch's retry and DLQ records
// are produced (acks=all) before its offsets are committed.
//
// All follow the same lifecycle (internal/lifecycle): New validates the
// config and creates the Kafka client, Run blocks until its context is
// done, Close stops Run and releases the client, and is idempotent. Their
// collectors are registered on Config.Registerer.
package pipeline
