package app

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/store/memory"
)

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// serveOps starts an ops-only process (the enricher's and the pusher's
// shape) with the given --admin-addr.
func serveOps(t *testing.T, adminAddr string) *Process {
	t.Helper()
	cfg := config.Defaults("enricher")
	cfg.Addr, cfg.AdminAddr = "127.0.0.1:0", adminAddr
	p := NewProcess(context.Background(), cfg, Deps{
		Store: memory.New(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Registerer: prometheus.NewRegistry(),
	})
	if err := p.Serve(p.Ops(nil)); err != nil {
		t.Fatal(err)
	}
	return p
}

func shutdown(t *testing.T, p *Process) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestAdminListener: with --admin-addr the profiles are served there, and
// on the public listener never (importing net/http/pprof registers them on
// http.DefaultServeMux, which must not leak onto it); without it there is
// no admin listener at all. Shutdown closes it.
func TestAdminListener(t *testing.T) {
	p := serveOps(t, "127.0.0.1:0")
	admin, public := "http://"+p.AdminAddr().String(), "http://"+p.Addr().String()
	if code, body := get(t, admin+"/debug/pprof/"); code != 200 || !strings.Contains(body, "goroutine") {
		t.Fatalf("admin /debug/pprof/: %d %.200s", code, body)
	}
	if code, body := get(t, admin+"/debug/pprof/goroutine?debug=1"); code != 200 || !strings.Contains(body, "goroutine profile") {
		t.Fatalf("admin goroutine dump: %d %.200s", code, body)
	}
	if code, _ := get(t, admin+"/debug/pprof/cmdline"); code != 200 {
		t.Fatalf("admin cmdline: %d", code)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/cmdline", "/debug/pprof/profile?seconds=1"} {
		if code, _ := get(t, public+path); code != http.StatusNotFound {
			t.Errorf("public listener %s: %d, want 404", path, code)
		}
	}
	// Nor do the public routes leak onto the admin listener.
	if code, _ := get(t, admin+"/metrics"); code != http.StatusNotFound {
		t.Errorf("admin /metrics: %d, want 404", code)
	}
	if code, _ := get(t, public+"/healthz"); code != 200 {
		t.Errorf("public /healthz: %d", code)
	}
	addr := p.AdminAddr().String()
	shutdown(t, p)
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Errorf("admin listener %s still accepts after Shutdown", addr)
	}

	off := serveOps(t, "")
	defer shutdown(t, off)
	if a := off.AdminAddr(); a != nil {
		t.Fatalf("admin listener on %s without --admin-addr", a)
	}
	if code, _ := get(t, "http://"+off.Addr().String()+"/debug/pprof/"); code != http.StatusNotFound {
		t.Errorf("public /debug/pprof/ without --admin-addr: %d, want 404", code)
	}
}

// TestDevAdminListener: herald dev --admin-addr reaches the process, and
// its public listener (the API, WebSockets) still has no profiles.
func TestDevAdminListener(t *testing.T) {
	d := startDevWith(t, "--admin-addr", "127.0.0.1:0")
	a := d.p.AdminAddr()
	if a == nil {
		t.Fatal("herald dev --admin-addr: no admin listener")
	}
	if code, _ := get(t, "http://"+a.String()+"/debug/pprof/"); code != 200 {
		t.Fatalf("dev admin /debug/pprof/: %d", code)
	}
	if code, _ := get(t, d.URL()+"/debug/pprof/"); code == 200 {
		t.Fatalf("dev public listener serves /debug/pprof/")
	}
}
