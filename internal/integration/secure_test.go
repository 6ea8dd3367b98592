//go:build integration

package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// A role given one dependency's password wrong (everything else right)
// must say so: either /readyz answers 503 naming the dependency and the
// authentication failure, or the process exits non-zero with a log that
// does. Hanging, becoming ready, or an unclear message fails the test.
func TestWrongPasswordNamesDependency(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		dep, role, variable string
	}{
		{"kafka", "gateway", "HERALD_KAFKA_PASSWORD"},
		{"cassandra", "api", "HERALD_CASSANDRA_PASSWORD"},
		{"redis", "gateway", "HERALD_REDIS_PASSWORD"},
	} {
		t.Run(tc.dep, func(t *testing.T) {
			e := e.sub(t)
			wrong := tc.variable + "=wrong-" + randHex(8)
			out := e.startFailing(tc.dep+"-wrong-password", tc.role, tc.dep, 90*time.Second,
				wrong, "HERALD_GATEWAY_ID="+e.prefix+tc.dep+"-wrong")
			t.Logf("%s with a wrong %s: %s", tc.role, tc.variable, out)
		})
	}
}

// sub is e for a subtest: same deployment, the subtest's t.
func (e *env) sub(t *testing.T) *env {
	c := *e
	c.t = t
	c.dir = t.TempDir()
	return &c
}

// failure is how a role that could not become ready showed it.
type failure struct {
	exited bool
	code   int    // exit code, when exited
	body   string // the last /readyz 503 body, when not exited
	log    string // the end of the process's output
}

func (f failure) String() string {
	if f.exited {
		return fmt.Sprintf("exited %d: %s", f.code, lastLines(f.log, 3))
	}
	return "/readyz 503: " + f.body
}

// authHints are words of a message that says credentials were refused.
var authHints = []string{"auth", "password", "credential", "sasl", "wrongpass"}

// namesAuthFailure reports whether msg names dep and an authentication failure.
func namesAuthFailure(msg, dep string) bool {
	m := strings.ToLower(msg)
	if !strings.Contains(m, dep) {
		return false
	}
	for _, h := range authHints {
		if strings.Contains(m, h) {
			return true
		}
	}
	return false
}

// startFailing runs `herald <role>` that must not become ready: it returns
// as soon as /readyz answers 503 with a body naming dep and an
// authentication failure, or the process exits non-zero with such a log.
// It fails the test if the role becomes ready, exits 0 or with an unclear
// log, or does neither within limit.
func (e *env) startFailing(name, role, dep string, limit time.Duration, extra ...string) failure {
	e.t.Helper()
	p := e.spawn(name, role, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	last := "(no answer yet)"
	for {
		status, body, err := readyz(ctx, p.addr)
		switch {
		case err != nil:
		case status == http.StatusOK:
			e.t.Fatalf("%s became ready although its %s password is wrong:\n%s", name, dep, p.tail())
		case status == http.StatusServiceUnavailable:
			last = body
			if namesAuthFailure(body, dep) {
				return failure{body: body, log: p.tail()}
			}
		default:
			last = fmt.Sprintf("%d %s", status, body)
		}
		select {
		case <-p.done:
			f := failure{exited: true, code: p.cmd.ProcessState.ExitCode(), log: p.tail()}
			if f.code == 0 {
				e.t.Fatalf("%s exited 0 with a wrong %s password:\n%s", name, dep, f.log)
			}
			if !namesAuthFailure(f.log, dep) {
				e.t.Fatalf("%s exited %d, but its output does not say that %s refused the credentials:\n%s", name, f.code, dep, f.log)
			}
			return f
		case <-ctx.Done():
			e.t.Fatalf("%s with a wrong %s password neither exited nor reported it on /readyz within %v; last /readyz: %s\nlog:\n%s",
				name, dep, limit, last, p.tail())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func readyz(ctx context.Context, addr string) (int, string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/readyz", nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, strings.TrimSpace(string(b)), err
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
