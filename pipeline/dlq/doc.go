// Package dlq is the operator's tooling for Herald's two dead-letter
// topics, herald.events.dlq and herald.push.dlq: list what is in them,
// replay it to the topic it came from, and measure how much is waiting.
// `herald dlq list` and `herald dlq replay` are thin wrappers of List and
// Replay; the roles that write a DLQ export its depth with
// NewDepthCollector.
//
// # Records
//
// Dead letters are read with the one codec of Herald's records
// (pipeline.DecodeDeadLetter for the herald-error, herald-source-* and
// herald-attempts headers; herald.DecodeEvent and pipeline.DecodePush for
// the value). A value that does not decode (an invalid event is the usual
// reason it is in herald.events.dlq) is still listed with what is known:
// the user id from a lenient read of the JSON, else the record key.
//
// # Replay: one group, one transaction per batch, nothing skipped for good
//
// Replay reads the DLQ in its own consumer group, <prefix>dlq-replay-<kind>
// (kind "events" or "push"), which is also its transactional id, through a
// kgo.GroupTransactSession: each polled batch (ReplayOptions.MaxRecords)
// is one Kafka transaction that produces the replayed records and commits
// the batch's offsets. A crash or Ctrl-C mid-batch aborts the transaction
// (the next replay's InitProducerID aborts one left open), so the batch is
// read again by the next replay: nothing is lost and, for read_committed
// consumers of the source topics (the enricher and the pusher read that
// way), nothing is doubled. Two replays of the same DLQ at once share the
// transactional id, so the newer fences the older, which stops with an
// error.
//
// A replayed record goes to its herald-source-topic (the natural source,
// herald.events or herald.push, when the header is missing) with its key
// and value as they were, partitioned by key like every Herald producer
// (so it lands with the user's current records even if partitions were
// added); the DLQ headers (herald-error, herald-source-*,
// herald-attempts) are stripped and herald-replayed-from
// ("<dlq topic>/<partition>/<offset>") is added for tracing. A push job's
// attempt count is reset to 0, so the pusher gives it its full budget
// again. The record timestamp is the replay's: an event without
// created_at therefore takes the replay time.
//
// Filters (reason substring, age) raise the question of what happens to
// the dead letters a filtered replay passes over. The committed offset of
// the replay group is one watermark per partition, so committing past a
// non-matching record would hide it from every later replay, and not
// committing past it would stall the watermark at the first one. Instead,
// in the same transaction, a non-matching record is appended again to the
// end of its DLQ partition, unchanged (key, value, every header, original
// timestamp, so its age and reason stay the same). Everything below the
// committed offset has therefore been handled exactly once, replayed or
// carried over; everything at or above it is pending, and a later replay
// with other filters (or none) sees the carried-over copy and can replay
// it, exactly once by the same argument. One group per filter set would
// be simpler but replays a record twice when two filter sets both match
// it; offsets kept elsewhere would need a store of their own.
//
// Replay stops at the end offsets (last stable offsets) captured when it
// started: records dead-lettered meanwhile, its own carried-over copies
// and replayed records that fail again are left for the next replay. A
// record past the captured end that a fetch returned anyway is carried
// over like a non-matching one. Control records (transaction markers) are
// fetched too (kgo.KeepControlRecords) so that the end is seen even when
// the last offsets of a partition are markers.
//
// Replay with DryRun reads the same records without a group or a
// transaction and reports what would be replayed; it changes nothing.
//
// # Listing and depth
//
// List reads without a group, read_committed, to the end offsets captured
// when it started. By default it starts at the replay group's committed
// offsets, so it lists the pending dead letters only (the ones a replay
// would consider); with All it starts at the log start and marks the
// handled ones. Depth is the number of pending dead letters: per
// partition, end offset minus the later of the log start and the replay
// group's committed offset (transaction markers and aborted records count,
// so it is an upper bound, exact when the DLQ is written without
// transactions).
package dlq
