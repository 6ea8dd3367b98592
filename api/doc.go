// Package api serves Herald's HTTP API: event intake for upstream services
// (POST /v1/events, API key), audience membership for services
// (/v1/audiences, API key), and the user-facing inbox, read state,
// preferences, device registry and topic subscriptions (JWT), plus /healthz,
// /readyz and /metrics.
// The OpenAPI 3.1 document of all of it (openapi.json, kept in step with the
// routes by its tests) is served at /v1/openapi.json.
//
// Every error is a JSON object {"error": "...", "field": "..."} with the
// status of the contract: 400 invalid input, 401 missing or bad credentials,
// 404 unknown route or item, 405 wrong method, 413 body too large, 429 rate
// limited (with Retry-After), 503 a dependency (Kafka, the store) is
// unavailable.
//
// The routes, bodies and statuses are part of Herald's public contract,
// described in docs/ARCHITECTURE.md; a change to them updates that file
// and openapi.json in the same commit.
package api
