package cluster

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/metrics"
)

// clusterMetrics are the cluster's collectors, registered on
// Config.Registerer; a collector already registered there with the same
// description (another Cluster of the process) is reused.
type clusterMetrics struct {
	// forwarded counts messages published to another gateway that had a
	// subscriber, by kind (notification, unread).
	forwardedNotifications, forwardedUnread, forwardedMemberships, forwardedPreferences prometheus.Counter
	// publishedBroadcasts counts live broadcasts published (broadcast.go).
	publishedBroadcasts prometheus.Counter
	// forwardedLive counts the enricher's direct-path publishes (live.go)
	// that reached a subscribed gateway.
	forwardedLive prometheus.Counter
	// stale counts publishes to a gateway listed in presence that had no
	// subscriber (crashed, or reconnecting to Redis).
	stale prometheus.Counter
	// received counts messages received from other gateways, by kind
	// (notification, unread, invalid).
	receivedNotifications, receivedUnread, receivedMemberships, receivedPreferences, receivedBroadcasts, receivedInvalid prometheus.Counter
	// redisErrors counts failed Redis operations, by op (route, presence,
	// heartbeat, subscribe, leave, membership, online, broadcast).
	redisErrors *prometheus.CounterVec
	// routeSkipped counts routes not attempted during the cooldown after a
	// Redis failure.
	routeSkipped prometheus.Counter
	// presenceDropped counts presence changes not queued because the queue
	// was full (a full re-announce follows).
	presenceDropped prometheus.Counter
	// membershipWrites counts membership entries written, by op (add:
	// ZADD, a refresh included; remove: ZREM).
	membershipWrites *prometheus.CounterVec
}

func newClusterMetrics(reg prometheus.Registerer) *clusterMetrics {
	forwarded := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Subsystem: "cluster", Name: "forwarded_total",
		Help: "Messages published to another gateway holding the user, by kind (notification, unread, membership, preferences, live: the enricher's direct path; broadcast: a live broadcast to every gateway, counted once).",
	}, []string{"kind"}))
	received := metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "herald", Subsystem: "cluster", Name: "received_total",
		Help: "Messages received from other gateways, by kind (notification, unread, membership, preferences, broadcast, invalid).",
	}, []string{"kind"}))
	return &clusterMetrics{
		forwardedNotifications: forwarded.WithLabelValues("notification"),
		forwardedUnread:        forwarded.WithLabelValues("unread"),
		forwardedMemberships:   forwarded.WithLabelValues("membership"),
		forwardedLive:          forwarded.WithLabelValues("live"),
		forwardedPreferences:   forwarded.WithLabelValues("preferences"),
		publishedBroadcasts:    forwarded.WithLabelValues("broadcast"),
		stale: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "cluster", Name: "stale_presence_total",
			Help: "Publishes to a gateway listed as holding the user that had no subscriber on its channel.",
		})),
		receivedNotifications: received.WithLabelValues("notification"),
		receivedUnread:        received.WithLabelValues("unread"),
		receivedMemberships:   received.WithLabelValues("membership"),
		receivedPreferences:   received.WithLabelValues("preferences"),
		receivedBroadcasts:    received.WithLabelValues("broadcast"),
		receivedInvalid:       received.WithLabelValues("invalid"),
		redisErrors: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "cluster", Name: "redis_errors_total",
			Help: "Failed Redis operations of the cluster, by op (route, presence, heartbeat, subscribe, leave, membership, online, broadcast).",
		}, []string{"op"})),
		routeSkipped: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "cluster", Name: "route_skipped_total",
			Help: "Notifications and unread counts not routed to other gateways because Redis failed less than a second before.",
		})),
		presenceDropped: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "cluster", Name: "presence_dropped_total",
			Help: "Presence changes dropped because the queue was full; a full re-announce follows and departures expire by TTL.",
		})),
		membershipWrites: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "cluster", Name: "membership_writes_total",
			Help: "Entries of the online-members sets (online:<topic>) written by this gateway, by op (add: ZADD, refreshes included; remove: ZREM).",
		}, []string{"op"})),
	}
}
