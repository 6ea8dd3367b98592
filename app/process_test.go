package app

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/store/memory"
)

// closedAddr is a loopback address where nothing listens.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	return addr
}

// TestReadinessNamesEachDependency builds the gateway role over an
// unreachable Kafka and Redis: /readyz answers 503 naming both, and the
// process still shuts down in order.
func TestReadinessNamesEachDependency(t *testing.T) {
	cfg := config.Defaults("gateway")
	cfg.Kafka.Brokers = []string{closedAddr(t)}
	cfg.Redis.URL = "redis://" + closedAddr(t) + "/0"
	cfg.JWTSecret = "0123456789abcdef0123456789abcdef"
	cfg.GatewayID = "gw-test"
	p := NewProcess(context.Background(), cfg, Deps{
		Store: memory.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(),
	})
	gw, err := p.AddGateway(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// The checks run in the background: poll until none is pending.
	ops := p.Ops(nil)
	deadline := time.Now().Add(20 * time.Second)
	for {
		rec := httptest.NewRecorder()
		ops.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
		var body struct {
			Checks map[string]string `json:"checks"`
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatalf("%d %s: %v", rec.Code, rec.Body, err)
		}
		pending := strings.Contains(rec.Body.String(), "pending: no result yet")
		if !pending && (rec.Code != 503 || body.Checks["kafka"] == "" || body.Checks["redis"] == "" || body.Checks["store"] != "") {
			t.Fatalf("readyz %d %s", rec.Code, rec.Body)
		}
		if !pending {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("readyz still pending: %s", rec.Body)
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = gw
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.Shutdown(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
}

// TestOneRedisClientPerProcess: the gateway's presence and the
// preference cache of an API in the same process share one client.
func TestOneRedisClientPerProcess(t *testing.T) {
	cfg := config.Defaults("api")
	cfg.Redis.URL = "redis://" + closedAddr(t) + "/0"
	p := NewProcess(context.Background(), cfg, Deps{Store: memory.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	defer func() { _ = p.Shutdown(context.Background()) }()
	a, err := p.Redis()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Prefs(context.Background()); err != nil {
		t.Fatal(err)
	}
	b, _ := p.Redis()
	if a == nil || a != b {
		t.Fatalf("two Redis clients: %p %p", a, b)
	}
	n := 0
	for _, c := range p.Checks() {
		if c.Name == "redis" {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d redis checks", n)
	}
}
