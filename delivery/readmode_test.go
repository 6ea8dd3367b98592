package delivery

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"testing"
)

// readModeEnv selects the read mode of the gateways newEnv starts
// (Config.ReadMode; empty: the default, goroutine mode).
const readModeEnv = "DELIVERY_TEST_READ_MODE"

// TestMain runs the package's tests in goroutine mode, then, on Linux and
// unless a mode was chosen or benchmarks run, again in epoll mode in a
// child process, so that every gateway test covers both read modes.
func TestMain(m *testing.M) {
	code := m.Run()
	if code != 0 || os.Getenv(readModeEnv) != "" || runtime.GOOS != "linux" ||
		flag.Lookup("test.bench").Value.String() != "" {
		os.Exit(code)
	}
	fmt.Println("delivery: the tests again, in epoll read mode (" + readModeEnv + "=epoll)")
	cmd := exec.Command(os.Args[0], os.Args[1:]...) //nolint:gosec // this test binary
	cmd.Env = append(os.Environ(), readModeEnv+"="+string(ReadEpoll))
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "delivery: epoll read mode:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// TestReadModeSelected checks that newEnv's gateway reads in the chosen
// mode: in epoll mode an idle connection is parked on the poller, with no
// reader goroutine.
func TestReadModeSelected(t *testing.T) {
	e := newEnv(t, nil)
	e.dial("mode-u", "")
	eventually(t, "the connection to register", func() bool { return e.gw.ConnCount() == 1 })
	epoll := os.Getenv(readModeEnv) == string(ReadEpoll) && runtime.GOOS == "linux"
	if got := e.gw.poll != nil; got != epoll {
		t.Fatalf("poller running = %v, want %v", got, epoll)
	}
	var pc *pollConn
	for _, c := range e.gw.hub.appendConns("mode-u", nil) {
		pc = c.pc
	}
	if (pc != nil) != epoll {
		t.Fatalf("connection registered with the poller = %v, want %v", pc != nil, epoll)
	}
}

func TestParseReadMode(t *testing.T) {
	for in, want := range map[string]ReadMode{"": ReadGoroutine, "goroutine": ReadGoroutine, "epoll": ReadEpoll} {
		if got, err := ParseReadMode(in); err != nil || got != want {
			t.Errorf("ParseReadMode(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseReadMode("select"); err == nil {
		t.Error("ParseReadMode(select) succeeded")
	}
}
