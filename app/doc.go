// Package app wires Herald's roles (API, enricher, gateway with its
// router, pusher) from their packages and runs them: all in one process for
// `herald dev`, one role per process in production. Both go through the
// same builders on a Process, which holds what the roles of one process
// share (one Kafka client option set, one store, one Redis client, one
// token verifier, one logger, one metrics registry), so a new role is
// wired once. The Process owns the ordered shutdown: stop intake (the
// HTTP listener), stop the enricher, stop the router, stop the pusher,
// close WebSockets with 1012, leave the Redis cluster, then close clients
// and stores.
//
// Settings come from the app/config package.
package app
