package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/store/memory"
	"github.com/heraldhq/herald/topics"
)

// TestEnricherReadyOnceAssigned builds the enricher role over kfake (the
// wiring of herald dev) while the broker refuses every JoinGroup: Kafka
// and the store answer, yet /readyz is 503 naming only the enricher,
// which is joining its group. Once joins go through, the enricher is
// assigned and /readyz turns 200.
func TestEnricherReadyOnceAssigned(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var hold atomic.Bool
	hold.Store(true)
	c.ControlKey(int16(kmsg.JoinGroup), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		if !hold.Load() {
			return nil, nil, false
		}
		resp := req.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode = kerr.CoordinatorLoadInProgress.Code // retried by the client
		return resp, nil, true
	})

	// A generous failure guard, never an assertion on time.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cfg := config.Defaults("enricher")
	cfg.TopicPrefix = "ready."
	p := NewProcess(ctx, cfg, Deps{
		Store: memory.New(), Brokers: c.ListenAddrs(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(),
	})
	defer func() { _ = p.Shutdown(context.WithoutCancel(ctx)) }()
	cl, err := p.Kafka()
	if err != nil {
		t.Fatal(err)
	}
	if err := topics.Apply(ctx, kadm.NewClient(cl), cfg.TopicPrefix, -1); err != nil {
		t.Fatal(err)
	}
	if err := p.AddEnricher(ctx); err != nil {
		t.Fatal(err)
	}
	ops := p.Ops(nil)
	readyz := func() (int, map[string]string) {
		rec := httptest.NewRecorder()
		ops.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		var body struct {
			Checks map[string]string `json:"checks"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
		}
		return rec.Code, body.Checks
	}
	poll := func(what string, cond func(code int, checks map[string]string) bool) {
		t.Helper()
		for {
			code, checks := readyz()
			if cond(code, checks) {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("never %s: last /readyz %d %v", what, code, checks)
			case <-time.After(20 * time.Millisecond):
			}
		}
	}
	// The enricher role runs the fan-out stage beside the enricher: two
	// consumers, two checks.
	poll("503 for the enricher and its fan-out stage alone, joining", func(code int, checks map[string]string) bool {
		return code == 503 && len(checks) == 2 && strings.Contains(checks["enricher"], "group ready.enricher") &&
			strings.Contains(checks["fanout"], "group ready.fanout")
	})
	hold.Store(false)
	poll("200 once assigned", func(code int, _ map[string]string) bool { return code == 200 })
}
