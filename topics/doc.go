// Package topics names Herald's Kafka topics and defines them: partitions,
// retention, cleanup policy and durability settings. Apply creates or
// converges them idempotently; `herald topics` runs it against a cluster and
// `herald dev` against its embedded kfake cluster.
//
// Every topic name carries a configurable prefix, "herald." by default, so
// several Herald deployments can share one cluster. The topics, their keys,
// values and headers are part of the public contract in docs/ARCHITECTURE.md.
package topics
