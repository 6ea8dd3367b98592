// Package metrics holds Herald's default Prometheus registry and the one
// way components register on a registry. Collectors live in the packages
// that own what they count; each component takes a prometheus.Registerer
// in its Config (zero value: Registry) and registers through Register, so
// that several components of one process (herald dev, tests) share series.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Registry is the default registry: every role serves it on /metrics. It
// carries the Go runtime and process collectors.
var Registry = NewRegistry()

// NewRegistry returns a registry with the Go runtime and process
// collectors, as every role's /metrics serves them.
func NewRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}
