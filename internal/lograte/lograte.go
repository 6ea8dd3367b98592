// Package lograte rate-limits the log lines of libraries that log on
// their own (go-redis's connection pool, net/http's server ErrorLog), so
// that an outage of a dependency is a few structured lines and a count,
// not one unstructured line per dial attempt on stderr.
//
// A Limiter lets through at most N lines per Interval of each message
// pattern (the message with its runs of digits folded, so that addresses,
// ports and attempt counts do not make every line new). What it holds
// back is counted and reported as one line, "log lines suppressed", once
// the interval has ended: lazily, on the next line logged through the
// same Limiter, so no goroutine runs and nothing is logged while the
// library is quiet. The price of laziness: a burst followed by silence
// reports its suppressed count only when the library next logs.
package lograte

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Config configures a Limiter; zero fields take the defaults.
type Config struct {
	// Burst is how many lines of one pattern pass per Interval.
	// Zero value: 5.
	Burst int
	// Interval is the window of Burst. Zero value: one minute.
	Interval time.Duration
	// MaxPatterns bounds the patterns tracked at once; lines of further
	// patterns share one "other" window. Zero value: 64.
	MaxPatterns int
	// Now is the clock. Zero value: time.Now.
	Now func() time.Time
}

// DefaultBurst and DefaultInterval are Config's zero-value limits: five
// lines of a pattern a minute.
const (
	DefaultBurst       = 5
	DefaultInterval    = time.Minute
	DefaultMaxPatterns = 64
)

// otherPattern is the window of the lines beyond MaxPatterns.
const otherPattern = "(other)"

// maxPatternLen bounds a pattern's length: long messages differing only
// past it share a window.
const maxPatternLen = 120

// Limiter counts lines per pattern and interval. It is safe for
// concurrent use.
type Limiter struct {
	cfg Config

	mu      sync.Mutex
	windows map[string]*window
}

type window struct {
	start      time.Time
	passed     int
	suppressed int
}

// Suppressed is the report of one pattern's ended window.
type Suppressed struct {
	Pattern string
	Count   int
	// Since is when the window started.
	Since time.Time
}

// NewLimiter returns a Limiter for cfg.
func NewLimiter(cfg Config) *Limiter {
	if cfg.Burst <= 0 {
		cfg.Burst = DefaultBurst
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.MaxPatterns <= 0 {
		cfg.MaxPatterns = DefaultMaxPatterns
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Limiter{cfg: cfg, windows: map[string]*window{}}
}

// Allow reports whether a line with message msg may be logged now, and
// returns the reports of every window that has ended with lines
// suppressed (those windows are forgotten, so each is reported once).
func (l *Limiter) Allow(msg string) (bool, []Suppressed) {
	now := l.cfg.Now()
	p := Pattern(msg)
	l.mu.Lock()
	defer l.mu.Unlock()
	var ended []Suppressed
	for k, w := range l.windows {
		if now.Sub(w.start) < l.cfg.Interval {
			continue
		}
		if w.suppressed > 0 {
			ended = append(ended, Suppressed{Pattern: k, Count: w.suppressed, Since: w.start})
		}
		delete(l.windows, k)
	}
	w := l.windows[p]
	if w == nil {
		if len(l.windows) >= l.cfg.MaxPatterns {
			p = otherPattern
			w = l.windows[p]
		}
		if w == nil {
			w = &window{start: now}
			l.windows[p] = w
		}
	}
	if w.passed < l.cfg.Burst {
		w.passed++
		return true, ended
	}
	w.suppressed++
	return false, ended
}

// Pattern is msg with every run of digits folded to one '#', truncated to
// a bounded length: the key lines are limited by.
func Pattern(msg string) string {
	var b strings.Builder
	digits := false
	for _, r := range msg {
		if r >= '0' && r <= '9' {
			if !digits {
				b.WriteByte('#')
			}
			digits = true
		} else {
			b.WriteRune(r)
			digits = false
		}
		if b.Len() >= maxPatternLen {
			break
		}
	}
	s := b.String()
	for len(s) > maxPatternLen || !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// Handler is a slog.Handler that passes a record to the next handler only
// if its Limiter allows the record's message, and logs the suppressed
// counts of ended windows (at WARN, "log lines suppressed", with the
// pattern, the count and the window's start) before it. Handlers derived
// by WithAttrs and WithGroup share the Limiter.
type Handler struct {
	next slog.Handler
	lim  *Limiter
}

// NewHandler returns a Handler over next limited by lim.
func NewHandler(next slog.Handler, lim *Limiter) *Handler {
	return &Handler{next: next, lim: lim}
}

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.next.Enabled(ctx, level)
}

// Handle implements slog.Handler.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	ok, ended := h.lim.Allow(r.Message)
	for _, s := range ended {
		rep := slog.NewRecord(r.Time, slog.LevelWarn, "log lines suppressed", 0)
		rep.AddAttrs(slog.String("pattern", s.Pattern), slog.Int("suppressed", s.Count),
			slog.Time("since", s.Since), slog.Duration("interval", h.lim.cfg.Interval))
		if err := h.next.Handle(ctx, rep); err != nil {
			return err
		}
	}
	if !ok {
		return nil
	}
	return h.next.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h *Handler) WithAttrs(as []slog.Attr) slog.Handler {
	return &Handler{next: h.next.WithAttrs(as), lim: h.lim}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	return &Handler{next: h.next.WithGroup(name), lim: h.lim}
}
