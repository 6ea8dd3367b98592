package pipeline

import (
	"github.com/heraldhq/herald/internal/metrics"
	"github.com/prometheus/client_golang/prometheus"
)

// The collectors below keep the names, labels and help of the series
// Herald has always exported; metrics.Register shares a collector already
// registered with the same options (by the API, or by another component of
// herald dev), so the options must stay exactly these.

func newEventsIn(reg prometheus.Registerer) *prometheus.CounterVec {
	return metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "events_in_total", Help: "Events received, by source (kafka, api).",
	}, []string{"source"}))
}

func newEventsRejected(reg prometheus.Registerer) *prometheus.CounterVec {
	return metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "events_rejected_total", Help: "Invalid events sent to the DLQ or refused by the API, by source.",
	}, []string{"source"}))
}

func newPushJobs(reg prometheus.Registerer) *prometheus.CounterVec {
	return metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "push_jobs_total", Help: "Push jobs produced to herald.push, by origin.",
	}, []string{"origin"}))
}

func newPushSuppressed(reg prometheus.Registerer) *prometheus.CounterVec {
	return metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "push_suppressed_total", Help: "Offline notifications not pushed, by reason (disabled, quiet_hours, expired).",
	}, []string{"reason"}))
}

// enricherMetrics are the Enricher's series.
type enricherMetrics struct {
	in, rejected, dropped, suppressed, pushJobs *prometheus.CounterVec
	out, forwarded, toFanout                    prometheus.Counter
	// livePublished and liveDropped count the direct path's notifications
	// (live.go), dropped by reason (queue_full, error).
	livePublished                prometheus.Counter
	liveDropped                  *prometheus.CounterVec
	batchSeconds, latencySeconds prometheus.Histogram
	// stageSeconds is where a batch spends its time, by stage: queue (the
	// oldest record's timestamp to the start of the batch: Kafka, the
	// poll, the previous batch), preferences, claim, append, produce,
	// commit.
	stageSeconds *prometheus.HistogramVec
	// policy counts the policy's actions by event type (policy.go);
	// policyTicks the ticks produced for due windows, policyReset the
	// unreadable states replaced by empty ones.
	policy                   *prometheus.CounterVec
	policyTicks, policyReset prometheus.Counter
}

func newEnricherMetrics(reg prometheus.Registerer) *enricherMetrics {
	return &enricherMetrics{
		in:       newEventsIn(reg),
		rejected: newEventsRejected(reg),
		dropped: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "events_dropped_total", Help: "Valid events dropped, by reason (muted, duplicate, no_channel).",
		}, []string{"reason"})),
		suppressed: newPushSuppressed(reg),
		pushJobs:   newPushJobs(reg),
		out: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Name: "notifications_out_total", Help: "Notifications stored in the inbox and produced to herald.deliveries.",
		})),
		forwarded: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "enricher", Name: "forwarded_total",
			Help: "herald.events records found outside their user's partition and forwarded there (a producer with another partitioner, or partitions added).",
		})),
		toFanout: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "enricher", Name: "fanout_forwarded_total",
			Help: "Multi-recipient events (user_ids, audience) forwarded to herald.fanout for the fan-out stage.",
		})),
		livePublished: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "enricher", Name: "live_published_total",
			Help: "Committed notifications handed straight to the live gateways (the direct path; the routers deliver them too).",
		})),
		liveDropped: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "enricher", Name: "live_dropped_total",
			Help: "Committed notifications the direct path did not publish, by reason (queue_full, error); the routers deliver them.",
		}, []string{"reason"})),
		batchSeconds: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Name: "enrich_batch_seconds", Help: "Time to enrich and commit one polled batch.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		})),
		latencySeconds: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Name: "enrich_latency_seconds", Help: "Time from the event record's timestamp to its transaction commit.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		})),
		stageSeconds: metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "enricher", Name: "stage_seconds",
			Help:    "Time one batch spent in each stage (queue: oldest record timestamp to batch start; preferences, policy, claim, append, produce, commit).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"stage"})),
		policy: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "policy_total",
			Help: "Notification policy actions by event type: digested (an event folded into a digest window), throttled (refused by the rate limit; also digested or dropped), dropped (throttled with excess: drop), capped (daily cap reached; digests too), overflow (no room for one more window: delivered as is), emitted (a digest notification went out).",
		}, []string{"type", "action"})),
		policyTicks: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "enricher", Name: "policy_ticks_total",
			Help: "Ticks produced to herald.events for digest windows found due in the due index.",
		})),
		policyReset: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "enricher", Name: "policy_state_reset_total",
			Help: "Users whose stored policy state could not be read and was replaced by an empty one (see the error log).",
		})),
	}
}

// routerMetrics are the Router's series.
type routerMetrics struct {
	decodeErrors         prometheus.Counter
	suppressed, pushJobs *prometheus.CounterVec
}

func newRouterMetrics(reg prometheus.Registerer) *routerMetrics {
	return &routerMetrics{
		decodeErrors: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Name: "router_decode_errors_total",
			Help: "herald.deliveries records skipped by the router because they could not be decoded.",
		})),
		suppressed: newPushSuppressed(reg),
		pushJobs:   newPushJobs(reg),
	}
}

// pusherMetrics are the Pusher's series.
type pusherMetrics struct {
	sends, dropped, retries, dlq *prometheus.CounterVec
	tokensDeleted                prometheus.Counter
	circuit                      *prometheus.GaugeVec
}

func newPusherMetrics(reg prometheus.Registerer) *pusherMetrics {
	return &pusherMetrics{
		sends: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "push_sends_total",
			Help: "Pushes handed to a provider, by provider, app, outcome (sent, token_dead, transient, permanent) and the provider's reason.",
		}, []string{"provider", "app", "outcome", "reason"})),
		dropped: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "push_dropped_total",
			Help: "Push jobs dropped by the pusher at send time, by reason (expired, disabled, quiet_hours, muted, read, no_devices).",
		}, []string{"reason"})),
		retries: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "push_retries_total",
			Help: "Push jobs sent to a retry topic, by reason (transient, circuit_open, delay, hop).",
		}, []string{"reason"})),
		dlq: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "push_dlq_total",
			Help: "Push jobs (per device, or whole when undecodable) sent to herald.push.dlq, by reason.",
		}, []string{"reason"})),
		tokensDeleted: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Name: "push_tokens_deleted_total",
			Help: "Devices deleted because their provider said the token is dead.",
		})),
		circuit: metrics.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "herald", Name: "push_circuit_state",
			Help: "State of the push circuit breaker per provider and app: 0 closed, 1 half-open, 2 open.",
		}, []string{"provider", "app"})),
	}
}
