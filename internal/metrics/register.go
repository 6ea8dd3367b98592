package metrics

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Or returns reg, or Registry when reg is nil: the zero value of every
// component's Config.Registerer.
func Or(reg prometheus.Registerer) prometheus.Registerer {
	if reg == nil {
		return Registry
	}
	return reg
}

// Register registers c on reg and returns it, or returns the collector
// already registered under the same descriptor, so that several components
// of one process (herald dev, tests) share one set of series instead of
// failing. It panics on any other registration error (a name registered
// with other labels or help): that is a programming error.
func Register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	err := Or(reg).Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	panic(err)
}
