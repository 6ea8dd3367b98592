// Package store defines Herald's durable state behind small interfaces: the
// per-user inbox (sequenced, idempotent by event id), preferences, the
// device registry and the pusher's per-job, per-device progress.
//
// Implementations live in sub-packages: memory (tests), embedded (the
// on-disk default of `herald dev`) and cassandra (production). Every
// implementation must pass the conformance suite in store/storetest.
package store
