// Package metrics holds Herald's Prometheus collectors. They are registered
// once, on Registry, which every role serves on /metrics; package-level
// collectors keep several components of one process (herald dev) from
// registering the same names twice.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is served on /metrics by every role.
var Registry = prometheus.NewRegistry()

var (
	// EventsIn counts events read from herald.events (or accepted by the API,
	// source="api").
	EventsIn = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "events_in_total", Help: "Events received, by source (kafka, api).",
	}, []string{"source"})
	// EventsRejected counts invalid events, by reason class.
	EventsRejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "events_rejected_total", Help: "Invalid events sent to the DLQ or refused by the API, by source.",
	}, []string{"source"})
	// EventsDropped counts valid events not delivered by the user's choice or
	// because they were duplicates.
	EventsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "events_dropped_total", Help: "Valid events dropped, by reason (muted, duplicate, no_channel).",
	}, []string{"reason"})
	// NotificationsOut counts notifications stored and produced to herald.deliveries.
	NotificationsOut = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "herald", Name: "notifications_out_total", Help: "Notifications stored in the inbox and produced to herald.deliveries.",
	})
	// PushJobs counts jobs produced to herald.push, by producer (enricher, router).
	PushJobs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "push_jobs_total", Help: "Push jobs produced to herald.push, by origin.",
	}, []string{"origin"})
	// PushSuppressed counts notifications not pushed by preference.
	PushSuppressed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "push_suppressed_total", Help: "Offline notifications not pushed, by reason (disabled, quiet_hours, expired).",
	}, []string{"reason"})
	// EnrichBatchSeconds observes the time to process one polled batch.
	EnrichBatchSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "herald", Name: "enrich_batch_seconds", Help: "Time to enrich and commit one polled batch.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	// EnrichLatencySeconds observes record time → transaction commit.
	EnrichLatencySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "herald", Name: "enrich_latency_seconds", Help: "Time from the event record's timestamp to its transaction commit.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	// Deliveries counts notifications written to live connections.
	Deliveries = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "deliveries_total", Help: "Notification frames queued to WebSocket connections, by phase (replay, live).",
	}, []string{"phase"})
	// DeliveryLatencySeconds observes notification created_at → queued to a socket.
	DeliveryLatencySeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "herald", Name: "delivery_latency_seconds", Help: "Time from the event's created_at to the live frame being queued.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
	})
	// Connections is the number of open WebSocket connections.
	Connections = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "herald", Name: "connections", Help: "Open WebSocket connections.",
	})
	// Disconnects counts closed connections by close reason.
	Disconnects = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "disconnects_total", Help: "WebSocket connections closed, by reason.",
	}, []string{"reason"})
	// HTTPRequests counts API requests by route and status code.
	HTTPRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "http_requests_total", Help: "HTTP API requests, by route and status.",
	}, []string{"route", "code"})
	// HTTPSeconds observes API latency by route.
	HTTPSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "herald", Name: "http_request_seconds", Help: "HTTP API latency, by route.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
	}, []string{"route"})
)

func init() {
	Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		EventsIn, EventsRejected, EventsDropped, NotificationsOut, PushJobs, PushSuppressed,
		EnrichBatchSeconds, EnrichLatencySeconds, Deliveries, DeliveryLatencySeconds,
		Connections, Disconnects, HTTPRequests, HTTPSeconds,
	)
}
