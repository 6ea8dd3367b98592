//go:build linux

package app

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// rlimitChildEnv makes TestRaiseFileLimit the child process that lowers
// its own soft limit; the parent only runs it, so that no other test of
// the package runs under the lowered limit.
const rlimitChildEnv = "HERALD_TEST_RLIMIT_CHILD"

// TestRaiseFileLimit: from a soft limit below the hard one, raiseFileLimit
// leaves soft == hard, reports the limit it found, and the kernel agrees.
func TestRaiseFileLimit(t *testing.T) {
	if os.Getenv(rlimitChildEnv) == "" {
		cmd := exec.Command(os.Args[0], "-test.run=^TestRaiseFileLimit$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), rlimitChildEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "lowered the soft limit to") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		t.Logf("child:\n%s", out)
		return
	}
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Max < 128 {
		t.Skipf("hard limit %d: too low to lower the soft one", lim.Max)
	}
	low := lim.Max / 2
	if low > 4096 {
		low = 4096
	}
	lim.Cur = low
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Logf("lowered the soft limit to %d (hard %d)", low, lim.Max)
	fl, err := raiseFileLimit()
	if err != nil {
		t.Fatal(err)
	}
	if !fl.Supported || fl.Before != low || fl.Hard != lim.Max || fl.Soft != fl.Hard {
		t.Fatalf("raiseFileLimit = %+v, want Before %d, Soft = Hard = %d", fl, low, lim.Max)
	}
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if lim.Cur != lim.Max {
		t.Fatalf("after raiseFileLimit: soft %d, hard %d", lim.Cur, lim.Max)
	}
	// Raising again changes nothing.
	if again, err := raiseFileLimit(); err != nil || again.Before != lim.Max || again.Soft != lim.Max {
		t.Fatalf("second raiseFileLimit = %+v, %v", again, err)
	}
}

// TestLogFileLimit: both limits are logged; below --http-max-conns, or
// when raising failed, as a warning.
func TestLogFileLimit(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fl       fileLimit
		err      error
		maxConns int
		want     string // level and message start; "" = nothing logged
	}{
		{"raised", fileLimit{Before: 1024, Soft: 20000, Hard: 20000, Supported: true}, nil, 10000, "level=INFO msg=\"open file limit"},
		{"below max conns", fileLimit{Before: 1024, Soft: 4096, Hard: 4096, Supported: true}, nil, 10000, "level=WARN msg=\"open file limit (RLIMIT_NOFILE) below --http-max-conns"},
		{"failed", fileLimit{Before: 1024, Soft: 1024, Hard: 20000, Supported: true}, errors.New("EPERM"), 10000, "level=WARN msg=\"could not raise"},
		{"unsupported", fileLimit{}, nil, 10000, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			logFileLimit(slog.New(slog.NewTextHandler(&buf, nil)), tc.fl, tc.err, tc.maxConns)
			out := buf.String()
			if tc.want == "" {
				if out != "" {
					t.Fatalf("logged %q", out)
				}
				return
			}
			if !strings.Contains(out, tc.want) {
				t.Fatalf("logged %q, want %q", out, tc.want)
			}
			for _, kv := range []string{"soft=" + strconv.FormatUint(tc.fl.Soft, 10), "hard=" + strconv.FormatUint(tc.fl.Hard, 10)} {
				if !strings.Contains(out, kv) {
					t.Fatalf("logged %q, want %s", out, kv)
				}
			}
		})
	}
}
