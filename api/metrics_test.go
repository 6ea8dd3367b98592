package api

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/store/memory"
)

// The API's series go to Config.Registerer, /metrics serves that registry,
// and a second server (or Ops) on it shares the series.
func TestMetricsOnTheConfiguredRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	s, err := New(Config{Store: memory.New(), Users: tokens{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	s2, err := New(Config{Store: memory.New(), Users: tokens{}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	if s.m.requests != s2.m.requests {
		t.Fatal("two servers on one registry registered two sets of series")
	}
	ops := Ops(OpsConfig{Registerer: reg, Extra: map[string]http.Handler{
		"/extra": http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusTeapot) }),
	}})
	for _, h := range []http.Handler{s, ops} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	}
	w := httptest.NewRecorder()
	ops.ServeHTTP(w, httptest.NewRequest("GET", "/extra", nil))
	if w.Code != http.StatusTeapot {
		t.Fatalf("extra route: %d", w.Code)
	}
	for name, h := range map[string]http.Handler{"server": s, "ops": ops} {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
		body, _ := io.ReadAll(w.Body)
		if !strings.Contains(string(body), `herald_http_requests_total{code="200",route="/healthz"} 2`) {
			t.Errorf("%s /metrics does not serve the configured registry's shared series:\n%s", name, body)
		}
	}
}
