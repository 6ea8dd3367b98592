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
// The Router is the gateway fleet's consumer of herald.deliveries: it hands
// each notification to a Deliverer (the user's live connections) and, when
// the user is offline and preferences allow, produces a push job to
// herald.push before committing the offsets (at least once).
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
// method per stage (batch.go): decode, preferences, route, claim and
// append, emit.
//
// Both follow the same lifecycle (internal/lifecycle): New validates the
// config and creates the Kafka client, Run blocks until its context is
// done, Close stops Run and releases the client, and is idempotent. Their
// collectors are registered on Config.Registerer.
package pipeline
