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
	connections  prometheus.Gauge
	disconnects  *prometheus.CounterVec // by reason
	conflicts    prometheus.Counter     // herald_seq_conflicts_total
}

func newGatewayMetrics(reg prometheus.Registerer) *gatewayMetrics {
	deliveries := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "deliveries_total", Help: "Notification frames queued to WebSocket connections, by phase (replay, live).",
	}, []string{"phase"}))
	return &gatewayMetrics{
		replay: deliveries.WithLabelValues("replay"),
		live:   deliveries.WithLabelValues("live"),
		latency: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Name: "delivery_latency_seconds", Help: "Time from the event's created_at to the live frame being queued.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 16),
		})),
		connections: metrics.Register(reg, prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "herald", Name: "connections", Help: "Open WebSocket connections.",
		})),
		disconnects: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "disconnects_total", Help: "WebSocket connections closed, by reason.",
		}, []string{"reason"})),
		conflicts: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Name: "seq_conflicts_total", Help: "Notifications a WebSocket connection received for a seq it had already sent with another id (the inbox reused the seq); they are resent.",
		})),
	}
}
