package app

import (
	"errors"
	"log/slog"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/heraldhq/herald/pipeline/dlq"
)

// serveDLQDepth registers herald_dlq_depth{topic} for both dead-letter
// topics on the process's registry, measured at scrape time on the shared
// Kafka client, and unregisters it when the process closes.
//
// Why not metrics.Register, as every other collector: the default
// registry is process-global, and metrics.Register hands back the
// collector already registered under the same descriptors. That is right
// for counters, whose state is the point, but this collector holds a
// client: a second Process in the same binary (herald dev started again,
// every app test after the first) would be served the first Process's
// collector and scrape through its closed client, every DLQ failing with
// "the broker connection has died" (herald_dlq_depth_errors_total rising,
// no herald_dlq_depth sample). So each Process registers its own and takes
// it away before its Kafka client closes (closers run in reverse). If
// another live Process on the same registry already serves it (two server
// processes on the default registry at once, which no role does), this one
// logs and leaves it: one registry cannot serve two sets of the same
// series.
func (p *Process) serveDLQDepth(log *slog.Logger) error {
	cl, err := p.Kafka()
	if err != nil {
		return err
	}
	c := dlq.NewDepthCollector(dlq.DepthConfig{Admin: kadm.NewClient(cl), Topics: p.names, Logger: log})
	if err := p.reg.Register(c); err != nil {
		if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); ok {
			log.Warn("herald_dlq_depth is already served by another process on this registry; not measured here")
			return nil
		}
		return err
	}
	p.mu.Lock()
	p.onClose(func() { p.reg.Unregister(c) })
	p.mu.Unlock()
	return nil
}
