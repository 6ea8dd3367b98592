package pipeline

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// TestMetricsOnRegisterer: components register on the Config's
// Registerer, several of them share one set of series, and the names are
// those Herald always exported.
func TestMetricsOnRegisterer(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := newEnv(t)
	for _, id := range []string{"txn-m-1", "txn-m-2"} {
		cfg := e.enricherConfig(id)
		cfg.Registerer = reg
		en, err := NewEnricher(cfg)
		if err != nil {
			t.Fatal(err)
		}
		en.Close()
	}
	var routers []*Router
	for range 2 {
		rt, err := NewRouter(RouterConfig{Brokers: e.addrs, Deliverer: newRecorder(true), Logger: quietLog, Registerer: reg})
		if err != nil {
			t.Fatal(err)
		}
		rt.Close()
		routers = append(routers, rt)
	}
	if routers[0].m.decodeErrors != routers[1].m.decodeErrors {
		t.Fatal("two routers on one registry do not share their collectors")
	}
	routers[0].m.decodeErrors.Inc()
	routers[0].m.suppressed.WithLabelValues("expired").Inc()
	routers[0].m.pushJobs.WithLabelValues("router").Inc()
	en, _ := NewEnricher(func() EnricherConfig { c := e.enricherConfig("txn-m-3"); c.Registerer = reg; return c }())
	en.Close()
	en.m.in.WithLabelValues("kafka").Inc()
	en.m.rejected.WithLabelValues("kafka").Inc()
	en.m.dropped.WithLabelValues("muted").Inc()
	want := []string{
		"herald_events_in_total", "herald_events_rejected_total", "herald_events_dropped_total",
		"herald_notifications_out_total", "herald_push_jobs_total", "herald_push_suppressed_total",
		"herald_enrich_batch_seconds", "herald_enrich_latency_seconds", "herald_router_decode_errors_total",
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, mf := range mfs {
		got[mf.GetName()] = true
	}
	for _, name := range want {
		if !got[name] {
			t.Errorf("%s not registered (have %v)", name, got)
		}
	}
	var m dto.Metric
	if err := routers[1].m.decodeErrors.Write(&m); err != nil || m.GetCounter().GetValue() != 1 {
		t.Fatalf("shared counter = %v, %v", m.GetCounter().GetValue(), err)
	}
}
