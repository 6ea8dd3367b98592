package prefcache

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/conn"
	"github.com/heraldhq/herald/store/memory"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

func TestNewValidates(t *testing.T) {
	if _, err := New(Config{URL: "redis://127.0.0.1:6379/0"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("no store: %v", err)
	}
	if _, err := New(Config{Store: memory.New()}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("no redis: %v", err)
	}
	if _, err := New(Config{Store: memory.New(), URL: "mysql://x"}); !errors.Is(err, ErrInvalidConfig) {
		t.Fatalf("bad url: %v", err)
	}
	s, err := New(Config{Store: memory.New(), URL: "redis://127.0.0.1:6379/0"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	if s.key("u-1") != "herald:prefs:u-1" || s.cfg.TTL.Minutes() != 5 {
		t.Fatalf("defaults: %q %v", s.key("u-1"), s.cfg.TTL)
	}
}

// With Redis down every call is answered by the inner store.
func TestRedisDownFallsBack(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	inner := memory.New()
	s, err := New(Config{Store: inner, URL: "redis://" + addr + "/0?max_retries=1", Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	}()
	ctx := context.Background()

	before, bypassed := counter(s.m.readErrors), counter(s.m.bypass)
	p, err := s.GetPreferences(ctx, "u-1")
	if err != nil || !p.Channels.InApp || !p.Channels.Push {
		t.Fatalf("defaults through a dead cache: %+v %v", p, err)
	}
	want := herald.Preferences{MutedTypes: []string{"like"}, Channels: herald.Channels{InApp: true}}
	if err := s.PutPreferences(ctx, "u-1", want); err != nil {
		t.Fatalf("Put with Redis down: %v", err)
	}
	got, err := s.GetPreferences(ctx, "u-1")
	if err != nil || !slices.Equal(got.MutedTypes, []string{"like"}) || got.Channels.Push {
		t.Fatalf("after Put: %+v %v", got, err)
	}
	// The first error pauses the cache: later reads skip Redis (unless the
	// machine is so slow that the cooldown passed in between).
	if failed, skipped := counter(s.m.readErrors)-before, counter(s.m.bypass)-bypassed; failed < 1 || failed+skipped != 2 {
		t.Fatalf("read errors %v, bypassed %v", failed, skipped)
	}
	// Everything else is the inner store's.
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func counter(c prometheus.Counter) float64 {
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		panic(err)
	}
	return m.GetCounter().GetValue()
}

// A Store built from connection settings uses them (internal/conn), and
// its collectors go to Config.Registerer, shared by a second Store.
func TestConnSettingsAndRegisterer(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, err := New(Config{Store: memory.New(), Conn: conn.Redis{URL: "redis://127.0.0.1:6379/2", Password: "s3cret"}, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = a.Close() }()
	if o := a.rdb.Options(); o.Password != "s3cret" || o.DB != 2 || !o.ContextTimeoutEnabled {
		t.Fatalf("client options: password %q db %d ctx timeouts %v", o.Password, o.DB, o.ContextTimeoutEnabled)
	}
	b, err := New(Config{Store: memory.New(), URL: "redis://127.0.0.1:6379/0", Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	if a.m.hits != b.m.hits {
		t.Fatal("two caches on one registry registered two sets of series")
	}
	if _, err := New(Config{Store: memory.New(), URL: "redis://:pw@[bad"}); !errors.Is(err, ErrInvalidConfig) || strings.Contains(err.Error(), "pw") {
		t.Fatalf("a malformed URL must be a config error that hides its password: %v", err)
	}
}
