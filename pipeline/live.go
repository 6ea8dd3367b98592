package pipeline

import (
	"context"
	"errors"
	"log/slog"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/prometheus/client_golang/prometheus"
)

// LivePublisher is the enricher's direct path to live connections: it
// hands notifications, already stored and committed, to the gateways
// holding their users' connections, without waiting for a router to read
// them back from herald.deliveries. *cluster.Cluster implements it through
// Redis; a single process wraps its gateway in DelivererLive.
//
// It is best effort by design. The routers still deliver every
// notification from herald.deliveries (the durable path, at least once,
// and the push decision), and a connection drops what it already sent
// (by seq) and fills what it missed (by prev, or at its next position
// check) from the inbox. So a lost or dropped publish delays a
// notification until the router's copy arrives; it never loses or doubles
// one. What the direct path buys: live delivery does not depend on the
// router that owns the user's delivery partition being alive (a crashed
// gateway's partitions stall until its group session times out) and
// skips one Kafka round trip.
type LivePublisher interface {
	// PublishLive hands ns, in order, to the live connections of their
	// users. It is called from one goroutine, batch after batch, so each
	// user's notifications arrive in seq order. An error is logged and
	// counted; nothing is retried.
	PublishLive(ctx context.Context, ns []herald.UserNotification) error
}

// DelivererLive adapts a Deliverer (a gateway in the same process) to a
// LivePublisher: each notification is delivered in order; the first error
// is returned after the rest were tried.
type DelivererLive struct{ Deliverer }

var _ LivePublisher = DelivererLive{}

// PublishLive implements LivePublisher.
func (d DelivererLive) PublishLive(ctx context.Context, ns []herald.UserNotification) error {
	var first error
	for i := range ns {
		if _, err := d.Deliver(ctx, ns[i].UserID, ns[i].Notification); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// livePath is the Enricher's side of the direct path: a bounded queue of
// committed batches and the one goroutine, run by Enricher.Run, that
// publishes them in order. A batch that finds the queue full is dropped
// (counted): the routers deliver it.
type livePath struct {
	pub     LivePublisher
	queue   chan []herald.UserNotification
	timeout time.Duration
	log     *slog.Logger
	// published and dropped count notifications, dropped by reason
	// (queue_full, error).
	published prometheus.Counter
	dropped   *prometheus.CounterVec
}

func newLivePath(pub LivePublisher, queue int, timeout time.Duration, log *slog.Logger, m *enricherMetrics) *livePath {
	if pub == nil {
		return nil
	}
	return &livePath{pub: pub, queue: make(chan []herald.UserNotification, queue), timeout: timeout, log: log,
		published: m.livePublished, dropped: m.liveDropped}
}

// offer queues ns without blocking; nil receivers and empty batches are
// no-ops.
func (l *livePath) offer(ns []herald.UserNotification) {
	if l == nil || len(ns) == 0 {
		return
	}
	select {
	case l.queue <- ns:
	default:
		l.dropped.WithLabelValues("queue_full").Add(float64(len(ns)))
	}
}

// run publishes queued batches until ctx is done; what is still queued
// then is left to the routers.
func (l *livePath) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ns := <-l.queue:
			pctx, cancel := context.WithTimeout(ctx, l.timeout)
			err := l.pub.PublishLive(pctx, ns)
			cancel()
			switch {
			case err == nil:
				l.published.Add(float64(len(ns)))
			case errors.Is(err, context.Canceled) && ctx.Err() != nil:
				return
			default:
				l.dropped.WithLabelValues("error").Add(float64(len(ns)))
				l.log.Debug("direct live publish failed; the routers will deliver", "notifications", len(ns), "err", err)
			}
		}
	}
}
