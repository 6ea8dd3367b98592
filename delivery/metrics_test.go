package delivery

import (
	"slices"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// The gateway's collectors go to Config.Registerer, and a second gateway
// on the same registry shares them instead of failing.
func TestMetricsOnTheConfiguredRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	e := newEnv(t, func(c *Config) { c.Registerer = reg })
	e2 := newEnv(t, func(c *Config) { c.Registerer = reg })
	if e.gw.m.disconnects != e2.gw.m.disconnects {
		t.Fatal("two gateways on one registry registered two sets of series")
	}
	readUntilSynced(t, e.dial("alice", ""))
	e.publish("alice", 1)
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range families {
		names = append(names, f.GetName())
	}
	for _, want := range []string{"herald_connections", "herald_deliveries_total"} {
		if !slices.Contains(names, want) {
			t.Errorf("%s not on the configured registry (have %v)", want, names)
		}
	}
}
