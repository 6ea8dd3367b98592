// Package integration proves Herald's guarantees on the real stack: Apache
// Kafka, Apache Cassandra and Redis running on loopback (make stack-up), with
// Herald's roles as separate processes of the real binary. The tests carry
// the build tag "integration" and fail, never skip, when a server is missing.
package integration
