package lograte

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/redis/go-redis/v9"
)

// Limited returns a logger over l's handler, rate-limited by a new
// Limiter for cfg, with component=component on every line.
func Limited(l *slog.Logger, component string, cfg Config) *slog.Logger {
	return slog.New(NewHandler(l.Handler(), NewLimiter(cfg))).With("component", component)
}

// ErrorLog is a *log.Logger for http.Server.ErrorLog: net/http writes TLS
// handshake failures, panics in handlers and the like there, through the
// standard log package (stderr) unless set. Its lines go to l at WARN,
// component=component, rate-limited by cfg.
func ErrorLog(l *slog.Logger, component string, cfg Config) *log.Logger {
	return slog.NewLogLogger(Limited(l, component, cfg).Handler(), slog.LevelWarn)
}

// redisLogger is go-redis's logging interface (redis.SetLogger), over
// whichever logger SetRedisLogger installed last.
type redisLogger struct{}

var (
	redisOnce sync.Once
	redisLog  atomic.Pointer[slog.Logger]
)

// SetRedisLogger sends go-redis's own log lines (its connection pool's
// "failed to dial", one per attempt during an outage) to l at WARN,
// component=go-redis, rate-limited by cfg, instead of its default
// unstructured stderr logger. go-redis's logger is process-global: the
// last call wins (herald runs one Process; tests build several).
func SetRedisLogger(l *slog.Logger, cfg Config) {
	redisLog.Store(Limited(l, "go-redis", cfg))
	redisOnce.Do(func() { redis.SetLogger(redisLogger{}) })
}

// Printf implements go-redis's internal.Logging.
func (redisLogger) Printf(ctx context.Context, format string, v ...any) {
	l := redisLog.Load()
	if l == nil {
		return
	}
	msg := strings.TrimSpace(strings.TrimPrefix(fmt.Sprintf(format, v...), "redis: "))
	l.Log(ctx, slog.LevelWarn, msg)
}
