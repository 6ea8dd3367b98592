package lograte

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clock is a fake clock the tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func newClock() *clock { return &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func TestPatternFoldsDigits(t *testing.T) {
	a := Pattern("connection pool: failed to dial after 5 attempts: dial tcp 127.0.0.1:6379: connect: connection refused")
	b := Pattern("connection pool: failed to dial after 1 attempts: dial tcp 10.0.0.12:6380: connect: connection refused")
	if a != b || !strings.Contains(a, "after # attempts: dial tcp #.#.#.#:#") {
		t.Errorf("patterns differ or unfolded:\n%s\n%s", a, b)
	}
	if p := Pattern(strings.Repeat("é", 500)); len(p) > maxPatternLen+4 || !strings.HasPrefix(p, "éé") {
		t.Errorf("long pattern %d bytes", len(p))
	}
}

func TestLimiterBurstThenReportOnce(t *testing.T) {
	c := newClock()
	l := NewLimiter(Config{Burst: 2, Interval: time.Minute, Now: c.now})
	passed := 0
	for i := range 10 {
		ok, ended := l.Allow("dial failed after " + string(rune('0'+i)) + " attempts")
		if len(ended) != 0 {
			t.Fatalf("report before the interval ended: %v", ended)
		}
		if ok {
			passed++
		}
	}
	if ok, _ := l.Allow("another message"); !ok || passed != 2 {
		t.Fatalf("passed %d of one pattern, want 2; another pattern allowed: %v", passed, ok)
	}
	c.add(time.Minute)
	ok, ended := l.Allow("dial failed after 1 attempts")
	if !ok || len(ended) != 1 || ended[0].Count != 8 || ended[0].Pattern != "dial failed after # attempts" {
		t.Fatalf("after the interval: allowed %v, reports %+v; want one report of 8", ok, ended)
	}
	// Reported once; "another message" suppressed nothing, so no report.
	c.add(time.Minute)
	if _, ended := l.Allow("x"); len(ended) != 0 {
		t.Fatalf("reported again: %+v", ended)
	}
}

func TestLimiterBoundsPatterns(t *testing.T) {
	c := newClock()
	l := NewLimiter(Config{Burst: 1, MaxPatterns: 2, Now: c.now})
	l.Allow("a")
	l.Allow("b")
	if ok, _ := l.Allow("c"); !ok {
		t.Fatal("first line beyond MaxPatterns refused")
	}
	if ok, _ := l.Allow("d"); ok {
		t.Fatal("second line beyond MaxPatterns allowed: they share one window")
	}
	if len(l.windows) != 3 {
		t.Fatalf("%d windows, want 2 + other", len(l.windows))
	}
}

// recorder is a slog.Handler keeping what it is handed.
type recorder struct {
	mu    sync.Mutex
	recs  []slog.Record
	attrs []slog.Attr
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	rec.AddAttrs(r.attrs...)
	r.recs = append(r.recs, rec)
	return nil
}
func (r *recorder) WithAttrs(as []slog.Attr) slog.Handler {
	return &shared{r: r, attrs: as}
}
func (r *recorder) WithGroup(string) slog.Handler { return r }

// shared is a recorder's WithAttrs: it records into the same recorder.
type shared struct {
	r     *recorder
	attrs []slog.Attr
}

func (s *shared) Enabled(context.Context, slog.Level) bool { return true }
func (s *shared) Handle(ctx context.Context, rec slog.Record) error {
	rec.AddAttrs(s.attrs...)
	return s.r.Handle(ctx, rec)
}
func (s *shared) WithAttrs(as []slog.Attr) slog.Handler {
	return &shared{r: s.r, attrs: append(append([]slog.Attr(nil), s.attrs...), as...)}
}
func (s *shared) WithGroup(string) slog.Handler { return s }

func (r *recorder) messages() (msgs []string, attrs []map[string]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range r.recs {
		m := map[string]string{"level": rec.Level.String()}
		rec.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.String(); return true })
		msgs = append(msgs, rec.Message)
		attrs = append(attrs, m)
	}
	return msgs, attrs
}

func TestErrorLogIsLimitedWarn(t *testing.T) {
	c := newClock()
	rec := &recorder{}
	el := ErrorLog(slog.New(rec), "http", Config{Burst: 1, Now: c.now})
	for i := range 3 {
		el.Printf("http: TLS handshake error from 192.0.2.%d:4431: EOF", i)
	}
	c.add(DefaultInterval)
	el.Printf("http: TLS handshake error from 192.0.2.9:4431: EOF")
	msgs, attrs := rec.messages()
	if len(msgs) != 3 || msgs[1] != "log lines suppressed" || attrs[1]["suppressed"] != "2" {
		t.Fatalf("lines %q %v; want one handshake error, a report of 2, one more", msgs, attrs)
	}
	if attrs[0]["level"] != "WARN" || attrs[0]["component"] != "http" || attrs[1]["component"] != "http" {
		t.Fatalf("attrs %v", attrs)
	}
}

// A Redis client pointed at a closed port logs its pool's dial failures
// through slog (go-redis has one process-global logger: once replaced,
// nothing reaches its default stderr logger, checked on Linux), at WARN with
// component=go-redis, rate-limited, and reports what it held back.
func TestRedisDialFailuresGoThroughSlog(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	c := newClock()
	rec := &recorder{}
	SetRedisLogger(slog.New(rec), Config{Burst: 2, Now: c.now})
	t.Cleanup(func() { SetRedisLogger(slog.New(slog.DiscardHandler), Config{}) })
	rc := redis.NewClient(&redis.Options{Addr: addr, PoolSize: 50, DialerRetries: 1, MaxRetries: -1})
	defer func() { _ = rc.Close() }()
	stderr := captureStderr(t, func() {
		for range 6 {
			if err := rc.Ping(context.Background()).Err(); err == nil {
				t.Error("ping of a closed port succeeded")
			}
		}
	})
	if strings.Contains(stderr, "failed to dial") {
		t.Errorf("go-redis wrote to stderr: %s", stderr)
	}
	msgs, attrs := rec.messages()
	if len(msgs) != 2 {
		t.Fatalf("%d lines, want the burst of 2: %q", len(msgs), msgs)
	}
	for i, m := range msgs {
		if !strings.Contains(m, "failed to dial") || strings.HasPrefix(m, "redis: ") ||
			attrs[i]["level"] != "WARN" || attrs[i]["component"] != "go-redis" {
			t.Errorf("line %q %v", m, attrs[i])
		}
	}
	c.add(DefaultInterval)
	_ = rc.Ping(context.Background()).Err()
	msgs, attrs = rec.messages()
	if len(msgs) != 4 || msgs[2] != "log lines suppressed" || attrs[2]["suppressed"] != "4" || attrs[2]["component"] != "go-redis" {
		t.Fatalf("after the interval: %q %v; want a report of 4 then the next dial failure", msgs, attrs)
	}
}
