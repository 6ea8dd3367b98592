package delivery

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/metrics"
)

// gatewayMetrics are the gateway's collectors, registered on
// Config.Registerer. The names, labels and help are part of the
// operations contract (docs/ARCHITECTURE.md); a collector already
// registered with the same description is reused.
type gatewayMetrics struct {
	replay, live prometheus.Counter // herald_deliveries_total{phase}
	latency      prometheus.Observer
	connections  prometheus.Gauge       // WebSocket connections
	sse          prometheus.Gauge       // SSE streams
	disconnects  *prometheus.CounterVec // by reason
	conflicts    prometheus.Counter     // herald_seq_conflicts_total

	refused         *prometheus.CounterVec // herald_gateway_upgrades_refused_total{reason}
	replayWait      prometheus.Observer
	replaysWaiting  prometheus.Gauge
	positionChecks  prometheus.Counter // users whose last seq was read
	positionBehind  prometheus.Counter // connections found behind the inbox
	positionDropped prometheus.Counter // asked checks past maxAskedChecks

	membershipLoads *prometheus.CounterVec // herald_gateway_membership_loads_total{result}
	broadcasts      *prometheus.CounterVec // herald_gateway_broadcasts_total{result}
	broadcastFrames prometheus.Counter     // herald_gateway_broadcast_frames_total
	broadcastDelay  prometheus.Observer    // created_at to the gateway's receipt
	broadcastQueue  prometheus.Observer    // the walk that queues the frames
}

func newGatewayMetrics(reg prometheus.Registerer) *gatewayMetrics {
	deliveries := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "deliveries_total", Help: "Notification frames queued to WebSocket connections and SSE streams, by phase (replay, live).",
	}, []string{"phase"}))
	return &gatewayMetrics{
		replay: deliveries.WithLabelValues("replay"),
		live:   deliveries.WithLabelValues("live"),
		latency: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Name: "delivery_latency_seconds", Help: "Time from the event's created_at to the live frame being queued.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		})),
		connections: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "herald", Name: "connections", Help: "Open WebSocket connections (SSE streams are herald_sse_connections).",
		})),
		sse: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "herald", Name: "sse_connections", Help: "Open Server-Sent Events streams (GET /v1/sse).",
		})),
		disconnects: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "disconnects_total", Help: "WebSocket connections and SSE streams closed, by reason.",
		}, []string{"reason"})),
		conflicts: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Name: "seq_conflicts_total", Help: "Notifications a WebSocket connection received for a seq it had already sent with another id (the inbox reused the seq); they are resent.",
		})),
		refused: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "gateway", Name: "upgrades_refused_total", Help: "WebSocket upgrades refused before the upgrade, by reason (rate: the upgrade bucket was empty, 503; shutting_down: 503; too_many_conns: the per-user cap, 429).",
		}, []string{"reason"})),
		replayWait: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "gateway", Name: "replay_wait_seconds", Help: "Time a new WebSocket connection waited for a replay slot (0 when one was free).",
			Buckets: []float64{0.001, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
		})),
		replaysWaiting: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "herald", Subsystem: "gateway", Name: "replays_waiting", Help: "WebSocket connections waiting for a replay slot.",
		})),
		positionChecks: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "gateway", Name: "position_checks_total", Help: "Users whose inbox last seq was read because their connections had been quiet for a position interval.",
		})),
		positionBehind: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "gateway", Name: "position_behind_total", Help: "Connections a position check found behind the inbox (a notification lost on the way, or not routed yet); they are filled from the inbox.",
		})),
		positionDropped: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "gateway", Name: "position_checks_dropped_total", Help: "Position checks asked for (after a presence write or a re-announce) that found the queue full (131,072 users waiting); those users wait for the periodic round.",
		})),
		membershipLoads: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "gateway", Name: "membership_loads_total", Help: "Loads of a newly connected user's topics (Config.Memberships), by result (ok; error: the store failed or timed out, counted per attempt). A failed load is tried again after a backoff while the user stays connected; until one succeeds the user is not listed by OnlineMembers.",
		}, []string{"result"})),
		broadcasts: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "gateway", Name: "broadcasts_total", Help: "Live broadcasts of large audiences received by the gateway, by result (sent: framed to its members' live connections, possibly none; repeat: already sent, dropped; off: no Config.Preferences, dropped).",
		}, []string{"result"})),
		broadcastFrames: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "gateway", Name: "broadcast_frames_total", Help: "broadcast frames queued to connections opened with broadcasts=live.",
		})),
		broadcastDelay: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "gateway", Name: "broadcast_delay_seconds", Help: "Time from a live broadcast's created_at to its arrival at the gateway (once per broadcast, repeats excluded).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		})),
		broadcastQueue: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "gateway", Name: "broadcast_queue_seconds", Help: "Time the gateway took to queue one live broadcast's frames to all its members' connections (the writes follow on the connections' writers).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 18),
		})),
	}
}
