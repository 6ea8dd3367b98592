package app

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/store/memory"
)

// syncBuffer is a bytes.Buffer safe for the handler's concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The process's Redis client, pointed at a closed port, logs go-redis's
// dial failures through the process's slog logger (WARN,
// component=go-redis), rate-limited: ten failed pings make at most the
// limiter's burst of lines, unless an interval ended meanwhile, which
// then says how many it held back.
func TestRedisLogsThroughProcessLogger(t *testing.T) {
	var out syncBuffer
	cfg := config.Defaults("api")
	cfg.Redis.URL = "redis://" + closedAddr(t) + "/0?max_retries=-1"
	p := NewProcess(context.Background(), cfg, Deps{Store: memory.New(), Logger: slog.New(slog.NewTextHandler(&out, nil))})
	defer func() { _ = p.Shutdown(context.Background()) }()
	rc, err := p.Redis()
	if err != nil {
		t.Fatal(err)
	}
	for range 10 {
		if rc.Ping(context.Background()).Err() == nil {
			t.Fatal("ping of a closed port succeeded")
		}
	}
	var dials, reports int
	for l := range strings.SplitSeq(out.String(), "\n") {
		switch {
		case strings.Contains(l, "failed to dial"):
			dials++
			if !strings.Contains(l, "level=WARN") || !strings.Contains(l, "component=go-redis") {
				t.Errorf("line %q", l)
			}
		case strings.Contains(l, `msg="log lines suppressed"`):
			reports++
		}
	}
	if dials == 0 || dials >= 10 && reports == 0 {
		t.Fatalf("%d dial failure lines, %d reports, want 1 to 5 lines (the burst):\n%s", dials, reports, out.String())
	}
}
