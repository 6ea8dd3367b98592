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
// Both follow the same lifecycle: New validates the config and creates the
// Kafka client, Run blocks until its context is done, Close stops Run and
// releases the client, and is idempotent.
package pipeline
