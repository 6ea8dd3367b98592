// Package herald holds Herald's domain model: the Event that upstream services
// produce, the Notification that users receive, a user's Preferences, their
// registered Devices and the PushJob handed to the offline path.
//
// Everything here is part of the public contract described in
// docs/ARCHITECTURE.md: JSON field names and validation rules must not change
// without updating that document.
//
// The pipeline lives in sub-packages: pipeline (enricher and router),
// store (durable inbox, preferences, devices), delivery (WebSocket gateway),
// api (HTTP API) and cmd/herald (the binary).
package herald
