package cassandra

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/internal/metrics"
)

// storeMetrics are the store's collectors, registered on
// Config.Registerer (reused when already registered there).
type storeMetrics struct {
	// casConflicts counts compare-and-set commits that lost to a
	// concurrent writer of the same user and were retried, by operation.
	casConflicts *prometheus.CounterVec
	// casUnknown counts commits whose outcome the client did not learn
	// (timeout, lost connection) and that were resolved by a serial read.
	casUnknown *prometheus.CounterVec
	// fences counts epochs taken by Fence; fencedAppends the appends
	// and policy writes refused because their writer's scope had a newer epoch.
	fences, fencedAppends prometheus.Counter
	// countFailures counts member count updates (subscription_counts)
	// that failed: each may leave a topic's count off by one.
	countFailures prometheus.Counter
	// writerCache counts the writer cache's work (writercache.go): parts
	// written without a read ("skipped"), parts read first ("read": the
	// user not cached, heavy, or an id maybe known), and users loaded.
	writerCache *prometheus.CounterVec
	// batchUsers observes how many users' parts each append request
	// carried (append.go).
	batchUsers prometheus.Histogram
}

func newStoreMetrics(reg prometheus.Registerer) *storeMetrics {
	return &storeMetrics{
		casConflicts: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "cassandra", Name: "cas_conflicts_total",
			Help: "Compare-and-set writes (a user's inbox, a device token's owner) that lost to a concurrent change and were retried, by operation.",
		}, []string{"op"})),
		casUnknown: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "cassandra", Name: "cas_unknown_total",
			Help: "Conditional batches with an unknown outcome, resolved by a serial read, by operation.",
		}, []string{"op"})),
		fences: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "cassandra", Name: "fences_total",
			Help: "Writer epochs taken (one per scope, i.e. source partition, assigned to a writer).",
		})),
		fencedAppends: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "cassandra", Name: "fenced_appends_total",
			Help: "Writer calls (appends, policy writes) refused because another writer had fenced their scope since.",
		})),
		countFailures: metrics.Register(reg, prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "cassandra", Name: "member_count_failures_total",
			Help: "Member count updates (a counter, never retried) that failed or timed out; each may leave a topic's count off by one.",
		})),
		writerCache: metrics.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "herald", Subsystem: "cassandra", Name: "writer_cache_total",
			Help: "The inbox writer's cache: append parts written without reading the user's partition first (skipped), parts read first (read), user states loaded (load).",
		}, []string{"outcome"})),
		batchUsers: metrics.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "herald", Subsystem: "cassandra", Name: "append_batch_users",
			Help:    "Users whose inbox parts one append request (an unlogged batch) wrote.",
			Buckets: []float64{1, 2, 4, 6, 8, 10, 16, 32},
		})),
	}
}
