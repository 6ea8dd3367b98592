package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/lifecycle"
)

// Readiness is answered from cached results. Each ReadyCheck runs in its
// own goroutine, owned by the Server and started by Server.Run, every
// Interval and bounded by Timeout; /readyz only reads the last result of
// each, so it answers at once whatever a dependency does: a store that
// hangs makes /readyz say "timeout after 1s" instead of making it hang
// with it (and with it every load balancer probe).
//
// A cached answer can lie in two ways, and both count as not ready:
//   - pending: the check has not finished once since Run started, so
//     nothing is known yet (a process is not ready until it has looked);
//   - stale: the last result is older than three intervals plus the
//     timeout, so the checker itself is wedged or stopped (after Close, or
//     a Server whose Run was never called) and a "pass" from back then
//     must not stand for now.
//
// One call of a check runs at a time. A call past its timeout is reported
// failing at its deadline even if it ignores its context; the next call
// waits until that one returns, so a dependency that hangs holds one
// goroutine per check, not one per interval. Stopping does not wait for a
// call that ignores its context: it is left to return on its own (its
// result is dropped). The store, Kafka and Redis pings all honour it.

// Defaults of the readiness checks (Config.ReadyInterval, ReadyTimeout).
const (
	DefaultReadyInterval = 2 * time.Second
	DefaultReadyTimeout  = time.Second
	// staleIntervals intervals (plus one timeout) without a fresh result
	// make a check stale.
	staleIntervals = 3
	// maxCheckError bounds an error string in a /readyz body.
	maxCheckError = 300
)

// ReadyCheck is one named readiness probe for /readyz, run in the
// background (see Server.Run); Name and Check are required.
type ReadyCheck struct {
	Name string
	// Check reports whether the dependency works; it should return when
	// ctx ends (at Timeout, or when the server stops).
	Check func(ctx context.Context) error
	// Interval is the time from the start of one call to the start of the
	// next; 0 means the server's ReadyInterval (2s).
	Interval time.Duration
	// Timeout bounds one call; 0 means the server's ReadyTimeout (1s).
	// A call that takes longer than Interval delays the next one.
	Timeout time.Duration
}

// readiness runs a server's checks and holds their last results.
type readiness struct {
	checks []*checker
	now    func() time.Time
	log    *slog.Logger
	lc     lifecycle.Lifecycle
}

// checker is one check and its last result.
type checker struct {
	ReadyCheck
	staleAfter time.Duration

	mu       sync.Mutex
	have     bool          // a call finished (or timed out) since Run began
	err      string        // "" when the last call passed; already redacted
	latency  time.Duration // of the last call
	at       time.Time     // when the last result was taken
	hungFrom time.Time     // start of a call past its timeout; zero otherwise
}

func newReadiness(checks []ReadyCheck, interval, timeout time.Duration, now func() time.Time, log *slog.Logger) *readiness {
	if interval <= 0 {
		interval = DefaultReadyInterval
	}
	if timeout <= 0 {
		timeout = DefaultReadyTimeout
	}
	r := &readiness{now: now, log: log}
	for _, c := range checks {
		if c.Interval <= 0 {
			c.Interval = interval
		}
		if c.Timeout <= 0 {
			c.Timeout = timeout
		}
		r.checks = append(r.checks, &checker{ReadyCheck: c, staleAfter: staleIntervals*c.Interval + c.Timeout})
	}
	return r
}

// run runs every check until ctx ends or stop is called; it returns once
// every checker goroutine has.
func (r *readiness) run(ctx context.Context) error {
	if err := r.lc.Begin(); err != nil {
		return fmt.Errorf("readiness: %w", err)
	}
	defer r.lc.End()
	ctx, release := r.lc.Context(ctx)
	defer release()
	var g lifecycle.Group
	for _, c := range r.checks {
		g.Go(func() error { c.loop(ctx, r.now, r.log); return nil })
	}
	return g.Wait()
}

func (r *readiness) stop() { r.lc.Stop() }

// loop calls the check every Interval until ctx ends.
func (c *checker) loop(ctx context.Context, now func() time.Time, log *slog.Logger) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		c.once(ctx, now, log)
		t.Reset(max(0, c.Interval-time.Since(start)))
	}
}

// once makes one call and records its result; it returns early, dropping
// the call, only when ctx ends.
func (c *checker) once(ctx context.Context, now func() time.Time, log *slog.Logger) {
	cctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	start := time.Now()
	done := make(chan error, 1) // buffered: an abandoned call still returns
	go func() { done <- c.Check(cctx) }()
	deadline := time.NewTimer(c.Timeout)
	defer deadline.Stop()
	for {
		select {
		case err := <-done:
			if ctx.Err() != nil {
				return // stopping: the call was canceled, not failed
			}
			msg := ""
			switch {
			case err == nil:
			case errors.Is(cctx.Err(), context.DeadlineExceeded):
				msg = c.timeoutMessage()
			default:
				msg = redact(err.Error())
			}
			c.record(msg, time.Since(start), now(), time.Time{}, log)
			return
		case <-deadline.C:
			// The call ignores its deadline or is still unwinding: say so
			// now, and keep waiting for it before the next call.
			c.record(c.timeoutMessage(), time.Since(start), now(), start, log)
		case <-ctx.Done():
			return
		}
	}
}

func (c *checker) timeoutMessage() string { return "timeout after " + c.Timeout.String() }

// record stores a result and logs a change between passing and failing.
// hungFrom is the start of a call still running past its timeout, zero
// once it returned.
func (c *checker) record(msg string, latency time.Duration, at, hungFrom time.Time, log *slog.Logger) {
	c.mu.Lock()
	wasFailing, first := c.err != "", !c.have
	c.have, c.err, c.latency, c.at, c.hungFrom = true, msg, latency, at, hungFrom
	c.mu.Unlock()
	switch {
	case msg != "" && (first || !wasFailing):
		log.Warn("readiness check failing", "check", c.Name, "err", msg)
	case msg == "" && wasFailing:
		log.Info("readiness check passing again", "check", c.Name)
	}
}

// checkResult is one check in the verbose /readyz body.
type checkResult struct {
	Name string `json:"name"`
	OK   bool   `json:"ok"`
	// LatencyMS is how long the last call took, in whole milliseconds (a
	// call still running past its timeout: how long it has run so far).
	LatencyMS int64 `json:"latency_ms"`
	// CheckedAt is when the last result was taken; absent while pending.
	CheckedAt *time.Time `json:"checked_at,omitempty"`
	Error     string     `json:"error,omitempty"`
}

// results is the state of every check now, in registration order.
func (r *readiness) results() []checkResult {
	now := r.now()
	out := make([]checkResult, 0, len(r.checks))
	for _, c := range r.checks {
		c.mu.Lock()
		res := checkResult{Name: c.Name, OK: c.have && c.err == "", Error: c.err, LatencyMS: c.latency.Milliseconds()}
		if c.have {
			at := c.at.UTC()
			res.CheckedAt = &at
		}
		switch {
		case !c.have:
			res.Error = "pending: no result yet"
		case !c.hungFrom.IsZero():
			res.LatencyMS = time.Since(c.hungFrom).Milliseconds()
			res.Error = fmt.Sprintf("%s (no answer for %s)", c.err, time.Since(c.hungFrom).Round(time.Millisecond))
		case now.Sub(c.at) > c.staleAfter:
			res.OK = false
			res.Error = fmt.Sprintf("stale: last result is %s old (limit %s)", now.Sub(c.at).Round(time.Millisecond), c.staleAfter)
			if c.err != "" {
				res.Error += ", it was: " + c.err
			}
		}
		c.mu.Unlock()
		out = append(out, res)
	}
	return out
}

// verboseBody is GET /readyz?verbose.
type verboseBody struct {
	Status string        `json:"status"` // "ready" or "not_ready"
	Checks []checkResult `json:"checks"`
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	results := s.ready.results()
	failed := map[string]string{}
	for _, c := range results {
		if !c.OK {
			failed[c.Name] = c.Error
		}
	}
	code := http.StatusOK
	if len(failed) > 0 {
		code = http.StatusServiceUnavailable
	}
	if verbose(r) {
		body := verboseBody{Status: "ready", Checks: results}
		if code != http.StatusOK {
			body.Status = "not_ready"
		}
		writeJSON(w, code, body)
		return
	}
	if code != http.StatusOK {
		writeJSON(w, code, map[string]any{"error": "not ready", "checks": failed})
		return
	}
	writeJSON(w, code, map[string]string{"status": "ready"})
}

// verbose: ?verbose, ?verbose=1 or ?verbose=true (any strconv.ParseBool
// truth); any other value, or none, is the plain body.
func verbose(r *http.Request) bool {
	q := r.URL.Query()
	if !q.Has("verbose") {
		return false
	}
	v := q.Get("verbose")
	b, err := strconv.ParseBool(v)
	return v == "" || (err == nil && b)
}

// Secrets that may appear in a dependency's error: the user info of a URL
// (redis://:password@host, a DSN) and key=value credentials. /readyz is
// unauthenticated, so its errors are redacted before they are stored.
var (
	urlUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s]+@`)
	keyedSecret = regexp.MustCompile(`(?i)\b(password|passwd|pwd|secret|token|api[_-]?key)(\s*[=:]\s*)("[^"]*"|'[^']*'|[^\s,;&)]+)`)
)

// redact removes credentials from an error message and bounds its length.
func redact(msg string) string {
	msg = urlUserinfo.ReplaceAllString(msg, "${1}REDACTED@")
	msg = keyedSecret.ReplaceAllString(msg, "${1}${2}REDACTED")
	if len(msg) > maxCheckError {
		msg = strings.ToValidUTF8(msg[:maxCheckError], "") + "…"
	}
	return msg
}
