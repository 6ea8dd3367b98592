package api

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/metrics"
)

// serverMetrics are the API's collectors, registered on Config.Registerer
// (reused when already registered there, so that herald dev's servers and
// tests share the series).
type serverMetrics struct {
	requests *prometheus.CounterVec   // by route, code
	seconds  *prometheus.HistogramVec // by route
	// eventsIn and eventsRejected are herald_events_in_total and
	// herald_events_rejected_total with source="api".
	eventsIn, eventsRejected prometheus.Counter
	// catchUpFailed counts reads whose feed catch-up request failed.
	catchUpFailed prometheus.Counter
}

func newServerMetrics(reg prometheus.Registerer) *serverMetrics {
	in := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "events_in_total", Help: "Events received, by source (kafka, api).",
	}, []string{"source"}))
	rejected := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Name: "events_rejected_total", Help: "Invalid events sent to the DLQ or refused by the API, by source.",
	}, []string{"source"}))
	return &serverMetrics{
		requests: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Name: "http_requests_total", Help: "HTTP API requests, by route and status.",
		}, []string{"route", "code"})),
		seconds: metrics.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "herald", Name: "http_request_seconds", Help: "HTTP API latency, by route.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"route"})),
		eventsIn:       in.WithLabelValues("api"),
		eventsRejected: rejected.WithLabelValues("api"),
		catchUpFailed: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Name: "api_catchup_failures_total",
			Help: "GET /v1/notifications whose request to bring the user's audience feeds into the inbox failed (the next read asks again).",
		})),
	}
}

// gathererFor is what /metrics serves: g, else reg when it can gather
// (a *prometheus.Registry), else metrics.Registry.
func gathererFor(g prometheus.Gatherer, reg prometheus.Registerer) prometheus.Gatherer {
	if g != nil {
		return g
	}
	if rg, ok := reg.(prometheus.Gatherer); ok {
		return rg
	}
	return metrics.Registry
}
