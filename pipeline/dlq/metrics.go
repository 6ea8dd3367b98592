package dlq

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/heraldhq/herald/topics"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
)

// DepthConfig configures a DepthCollector. Admin is required.
type DepthConfig struct {
	// Admin reaches the cluster. Required.
	Admin *kadm.Client
	// Topics are the topic names. Zero value: topics.WithPrefix("").
	Topics topics.Names
	// Kinds are the DLQs measured. Zero value: Kinds (both).
	Kinds []Kind
	// Timeout bounds one scrape's admin requests, all DLQs together.
	// Zero value: 5s.
	Timeout time.Duration
	// Logger receives the failures (at debug level: the failure counter is
	// the signal). Zero value: slog.Default().
	Logger *slog.Logger
}

// DepthCollector exports herald_dlq_depth{topic} (Depth of each DLQ,
// measured on each scrape within Timeout; a DLQ whose measure failed has
// no sample in that scrape) and herald_dlq_depth_errors_total{topic}.
// Scrapes are serialised, so slow ones never pile up requests. Register
// it with internal/metrics.Register.
type DepthCollector struct {
	cfg    DepthConfig
	topics []Topic
	depth  *prometheus.Desc
	errs   *prometheus.CounterVec

	mu sync.Mutex // one measure at a time
}

// NewDepthCollector returns the collector for cfg; it panics if Admin is
// nil or a kind is unknown (programming errors).
func NewDepthCollector(cfg DepthConfig) *DepthCollector {
	if cfg.Admin == nil {
		panic("dlq: DepthConfig.Admin is required")
	}
	if cfg.Topics.IsZero() {
		cfg.Topics = topics.WithPrefix("")
	}
	if len(cfg.Kinds) == 0 {
		cfg.Kinds = Kinds
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	c := &DepthCollector{
		cfg: cfg,
		depth: prometheus.NewDesc("herald_dlq_depth",
			"Dead letters not yet handled by a replay (upper bound: transaction markers count), per DLQ topic.",
			[]string{"topic"}, nil),
		errs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "herald_dlq_depth_errors_total",
			Help: "Scrapes that could not measure a DLQ's depth.",
		}, []string{"topic"}),
	}
	for _, k := range cfg.Kinds {
		t, err := TopicOf(cfg.Topics, k)
		if err != nil {
			panic(err)
		}
		c.topics = append(c.topics, t)
		c.errs.WithLabelValues(t.DLQ)
	}
	return c
}

// Describe implements prometheus.Collector.
func (c *DepthCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.depth
	c.errs.Describe(ch)
}

// Collect implements prometheus.Collector: it measures every DLQ within
// Timeout.
func (c *DepthCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	for _, t := range c.topics {
		n, err := Depth(ctx, c.cfg.Admin, t)
		if err != nil {
			c.errs.WithLabelValues(t.DLQ).Inc()
			c.cfg.Logger.Debug("dlq depth not measured", "topic", t.DLQ, "err", err)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.depth, prometheus.GaugeValue, float64(n), t.DLQ)
	}
	c.errs.Collect(ch)
}
