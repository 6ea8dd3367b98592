package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/lifecycle"
	"github.com/heraldhq/herald/store/memory"
)

// The readiness tests assert what /readyz says while checks pass, fail,
// hang or stop, never how long anything takes: a condition reached in the
// background is polled for (waitReadyz) until the test's deadline.

// runServer runs s's readiness checks until the test ends and checks that
// Run returned cleanly.
func runServer(t *testing.T, s *Server) {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
	t.Cleanup(func() {
		s.Close()
		if err := <-errc; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// readyzReply is one /readyz answer: the status, the plain body's checks
// (name → error) and the verbose body when asked for.
type readyzReply struct {
	code    int
	raw     string
	failed  map[string]string
	verbose verboseBody
}

func (r readyzReply) check(name string) checkResult {
	for _, c := range r.verbose.Checks {
		if c.Name == name {
			return c
		}
	}
	return checkResult{}
}

func getReadyz(t *testing.T, h http.Handler, query string) readyzReply {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz"+query, nil))
	r := readyzReply{code: rec.Code, raw: rec.Body.String()}
	var body struct {
		Error  string          `json:"error"`
		Status string          `json:"status"`
		Checks json.RawMessage `json:"checks"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("/readyz%s: %d %q: %v", query, rec.Code, r.raw, err)
	}
	if len(body.Checks) > 0 && body.Checks[0] == '[' {
		if err := json.Unmarshal(rec.Body.Bytes(), &r.verbose); err != nil {
			t.Fatalf("verbose /readyz: %q: %v", r.raw, err)
		}
	} else if body.Checks != nil {
		if err := json.Unmarshal(body.Checks, &r.failed); err != nil {
			t.Fatalf("plain /readyz checks: %q: %v", r.raw, err)
		}
	}
	return r
}

// waitReadyz polls /readyz until cond holds, failing the test if it does
// not within a bound far above any real latency.
func waitReadyz(t *testing.T, h http.Handler, query string, cond func(readyzReply) bool) readyzReply {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := getReadyz(t, h, query)
		if cond(r) {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz%s never reached the expected state; last: %d %s", query, r.code, r.raw)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newReadyServer(t *testing.T, cfg Config) *Server {
	t.Helper()
	cfg.Store, cfg.Users, cfg.Logger = memory.New(), tokens{}, quietLog()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReadyzHungCheck: a check that ignores its context and never returns
// makes /readyz answer 503 "timeout after" while that call is still
// blocked; it is called once only (no pile of hung calls), the other check
// is unaffected, and Close does not wait for the hung call.
func TestReadyzHungCheck(t *testing.T) {
	release := make(chan struct{})
	returned := make(chan struct{})
	var calls atomic.Int32
	hang := func(context.Context) error {
		calls.Add(1)
		<-release // ignores ctx on purpose
		close(returned)
		return nil
	}
	s := newReadyServer(t, Config{Ready: []ReadyCheck{
		{Name: "hung", Check: hang, Interval: 20 * time.Millisecond, Timeout: 5 * time.Millisecond},
		{Name: "fine", Check: func(context.Context) error { return nil }, Interval: 5 * time.Millisecond},
	}})
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()

	r := waitReadyz(t, s, "", func(r readyzReply) bool { return strings.HasPrefix(r.failed["hung"], "timeout after 5ms") })
	if r.code != http.StatusServiceUnavailable || len(r.failed) != 1 {
		t.Fatalf("plain: %d %s", r.code, r.raw)
	}
	v := waitReadyz(t, s, "?verbose", func(r readyzReply) bool { return r.check("fine").OK })
	if h := v.check("hung"); h.OK || !strings.HasPrefix(h.Error, "timeout after 5ms") || h.CheckedAt == nil || v.verbose.Status != "not_ready" {
		t.Fatalf("verbose: %d %s", v.code, v.raw)
	}
	select {
	case <-returned:
		t.Fatal("the hung check returned before it was released")
	default:
	}
	if n := calls.Load(); n != 1 {
		t.Fatalf("the hung check was called %d times while its first call ran, want 1", n)
	}
	s.Close()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	close(release)
	<-returned // the abandoned call ends on its own once its dependency answers
}

// TestReadyzPendingAndShutdown: before the first result every check is
// pending (503, no checked_at), whether Run has started or not; Close ends
// Run and every call in flight (they honour their context), and Run
// cannot start again.
func TestReadyzPendingAndShutdown(t *testing.T) {
	var inFlight sync.WaitGroup
	var started atomic.Int32
	block := func(ctx context.Context) error {
		inFlight.Add(1)
		defer inFlight.Done()
		started.Add(1)
		<-ctx.Done()
		return ctx.Err()
	}
	s := newReadyServer(t, Config{Ready: []ReadyCheck{{Name: "a", Check: block}, {Name: "b", Check: block}},
		ReadyInterval: time.Hour, ReadyTimeout: time.Hour})
	if r := getReadyz(t, s, ""); r.code != http.StatusServiceUnavailable || !strings.HasPrefix(r.failed["a"], "pending") ||
		!strings.HasPrefix(r.failed["b"], "pending") {
		t.Fatalf("before Run: %d %s", r.code, r.raw)
	}
	errc := make(chan error, 1)
	go func() { errc <- s.Run(context.Background()) }()
	for started.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	r := getReadyz(t, s, "?verbose=1")
	if r.code != http.StatusServiceUnavailable || r.verbose.Status != "not_ready" || len(r.verbose.Checks) != 2 {
		t.Fatalf("while the first calls run: %d %s", r.code, r.raw)
	}
	for _, c := range r.verbose.Checks {
		if c.OK || c.CheckedAt != nil || !strings.HasPrefix(c.Error, "pending") {
			t.Fatalf("check %s while pending: %+v", c.Name, c)
		}
	}
	s.Close()
	if err := <-errc; err != nil {
		t.Fatalf("Run: %v", err)
	}
	inFlight.Wait() // both calls saw their context end
	s.Close()       // idempotent
	if err := s.Run(context.Background()); !errors.Is(err, lifecycle.ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
}

// TestReadyzStale: a result older than three intervals plus the timeout
// (a checker that stopped or is wedged) counts as failing even if it
// passed.
func TestReadyzStale(t *testing.T) {
	var now atomic.Pointer[time.Time]
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	now.Store(&t0)
	s := newReadyServer(t, Config{Now: func() time.Time { return *now.Load() },
		Ready: []ReadyCheck{{Name: "store", Check: func(context.Context) error { return nil }, Interval: time.Hour, Timeout: time.Minute}}})
	runServer(t, s)
	r := waitReadyz(t, s, "", func(r readyzReply) bool { return r.code == http.StatusOK })
	if r.raw != `{"status":"ready"}`+"\n" {
		t.Fatalf("ready body %q", r.raw)
	}
	later := t0.Add(3*time.Hour + 2*time.Minute)
	now.Store(&later)
	r = getReadyz(t, s, "?verbose=true")
	c := r.check("store")
	if r.code != http.StatusServiceUnavailable || c.OK || !strings.HasPrefix(c.Error, "stale: ") || c.CheckedAt == nil || !c.CheckedAt.Equal(t0) {
		t.Fatalf("stale: %d %s", r.code, r.raw)
	}
}

// TestReadyzVerboseBody: the verbose body names every check in order with
// its result, the plain one only the failing; neither carries a secret
// from an error.
func TestReadyzVerboseBody(t *testing.T) {
	leaky := errors.New("dial redis://herald:hunter2@10.0.0.7:6379/0: connection refused (password=hunter2)")
	s := newReadyServer(t, Config{ReadyInterval: 5 * time.Millisecond, Ready: []ReadyCheck{
		{Name: "store", Check: func(context.Context) error { return nil }},
		{Name: "redis", Check: func(context.Context) error { return leaky }},
	}})
	runServer(t, s)
	for _, q := range []string{"?verbose", "?verbose=1", "?verbose=true"} {
		r := waitReadyz(t, s, q, func(r readyzReply) bool { return r.check("redis").CheckedAt != nil && r.check("store").OK })
		if r.code != http.StatusServiceUnavailable || r.verbose.Status != "not_ready" || len(r.verbose.Checks) != 2 ||
			r.verbose.Checks[0].Name != "store" || r.verbose.Checks[1].Name != "redis" {
			t.Fatalf("%s: %d %s", q, r.code, r.raw)
		}
		if st := r.check("store"); st.Error != "" || st.CheckedAt == nil {
			t.Fatalf("%s store: %+v", q, st)
		}
		rd := r.check("redis")
		if rd.OK || !strings.Contains(rd.Error, "connection refused") || strings.Contains(r.raw, "hunter2") {
			t.Fatalf("%s redis: %s", q, r.raw)
		}
		var raw struct {
			Checks []map[string]any `json:"checks"`
		}
		if err := json.Unmarshal([]byte(r.raw), &raw); err != nil {
			t.Fatal(err)
		}
		for _, field := range []string{"name", "ok", "latency_ms", "checked_at", "error"} {
			if _, ok := raw.Checks[1][field]; !ok {
				t.Fatalf("%s: the failing check has no %q: %s", q, field, r.raw)
			}
		}
	}
	for _, q := range []string{"", "?verbose=0", "?verbose=false"} {
		r := getReadyz(t, s, q)
		if r.code != http.StatusServiceUnavailable || len(r.failed) != 1 || r.failed["redis"] == "" || strings.Contains(r.raw, "hunter2") ||
			!strings.Contains(r.raw, `"error":"not ready"`) {
			t.Fatalf("plain%s: %d %s", q, r.code, r.raw)
		}
	}
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("HEAD", "/readyz?verbose", nil))
	if rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("HEAD: %d", rec.Code)
	}
}

// TestReadyzOps: the ops handler of the consuming roles answers from its
// own checks the same way, and without checks is ready before Run.
func TestReadyzOps(t *testing.T) {
	var fail atomic.Bool
	ops := Ops(OpsConfig{Logger: quietLog(), ReadyInterval: 2 * time.Millisecond, Ready: []ReadyCheck{{Name: "kafka", Check: func(context.Context) error {
		if fail.Load() {
			return errors.New("kafka: unable to dial")
		}
		return nil
	}}}})
	runServer(t, ops)
	r := waitReadyz(t, ops, "?verbose", func(r readyzReply) bool { return r.code == http.StatusOK })
	if r.verbose.Status != "ready" || !r.check("kafka").OK {
		t.Fatalf("ready: %s", r.raw)
	}
	fail.Store(true)
	waitReadyz(t, ops, "", func(r readyzReply) bool { return r.failed["kafka"] == "kafka: unable to dial" })
	fail.Store(false)
	waitReadyz(t, ops, "", func(r readyzReply) bool { return r.code == http.StatusOK })

	bare := Ops(OpsConfig{})
	if r := getReadyz(t, bare, "?verbose"); r.code != http.StatusOK || r.verbose.Status != "ready" || r.verbose.Checks == nil {
		t.Fatalf("no checks: %d %s", r.code, r.raw)
	}
}

func TestRedact(t *testing.T) {
	for in, want := range map[string]string{
		"dial tcp 10.0.0.1:9042: connect: connection refused":  "dial tcp 10.0.0.1:9042: connect: connection refused",
		"redis://:s3cret@redis:6379/0 unreachable":             "redis://REDACTED@redis:6379/0 unreachable",
		"GET https://user:pa%40ss@host/x: 401":                 "GET https://REDACTED@host/x: 401",
		"dial kafka://u:p@ss@broker:9092: refused":             "dial kafka://REDACTED@broker:9092: refused",
		`auth failed: password="a b c" user=herald`:            `auth failed: password=REDACTED user=herald`,
		"sasl: Password: hunter2, mechanism SCRAM":             "sasl: Password: REDACTED, mechanism SCRAM",
		"WRONGPASS invalid username-password pair or disabled": "WRONGPASS invalid username-password pair or disabled",
	} {
		if got := redact(in); got != want {
			t.Errorf("redact(%q) = %q, want %q", in, got, want)
		}
	}
	if got := redact(strings.Repeat("é", 400)); len(got) > maxCheckError+len("…") || !strings.HasSuffix(got, "…") {
		t.Errorf("long message: %d bytes", len(got))
	}
}
