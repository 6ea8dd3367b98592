package delivery

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// BenchmarkIdleRSS is a measurement, not a test: for each read mode of
// IDLE_MODES (default "goroutine,epoll"), in turn, it starts a gateway in
// a child process (this test binary running TestIdleRSSGateway), opens
// IDLE_CONNS idle connections to it (default 15,000, one user each, bound
// to source addresses 127.0.1.1, 127.0.1.2, … so that no address runs out
// of ports) from this process, and reports the growth of the child's RSS
// per connection (VmRSS after IDLE_SETTLE, default 3s, minus VmRSS before
// the first connection, after ten warm-up connections). The gateway's
// buffers come from IDLE_READ_BUFFER and IDLE_WRITE_BUFFER (0: defaults);
// the child inherits the environment, GOMEMLIMIT and GOGC included. Run:
//
//	go test -c -o /tmp/delivery.test ./delivery/
//	/tmp/delivery.test -test.run '^$' -test.bench 'IdleRSS$' -test.benchtime 1x
func BenchmarkIdleRSS(b *testing.B) {
	n := envInt(b, "IDLE_CONNS", 15000)
	modes := strings.Split(envString("IDLE_MODES", "goroutine,epoll"), ",")
	for range b.N {
		for _, mode := range modes {
			b.Run(mode, func(b *testing.B) {
				per, total := idleRSS(b, mode, n)
				b.ReportMetric(per, "rss-bytes/conn")
				b.ReportMetric(total/(1<<20), "rss-MiB")
			})
		}
	}
}

func envString(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// idleRSS measures one mode; total is the child's RSS with n connections.
func idleRSS(b *testing.B, mode string, n int) (perConn, total float64) {
	child := exec.Command(os.Args[0], "-test.run", "^TestIdleRSSGateway$") //nolint:gosec // this test binary
	child.Env = append(os.Environ(), "IDLE_RSS_SERVE="+mode)
	child.Stderr = os.Stderr
	stdin, err := child.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := child.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := child.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = stdin.Close() // the child shuts its gateway down and exits
		_ = child.Wait()
	}()
	lines := bufio.NewScanner(out)
	addr := ""
	for lines.Scan() {
		if a, ok := strings.CutPrefix(lines.Text(), "IDLE_ADDR "); ok {
			addr = a
			break
		}
	}
	if addr == "" {
		b.Fatal("the gateway child printed no address")
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	for range 10 {
		rawDial(b, addr, token(b, "warm")).Close()
	}
	settle := envDuration(b, "IDLE_SETTLE", 3*time.Second)
	time.Sleep(settle)
	before := vmRSS(b, child.Process.Pid)

	toks := make([]string, n)
	for i := range toks {
		toks[i] = token(b, fmt.Sprintf("idle-%d", i))
	}
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var wg sync.WaitGroup
	const dialers = 8
	for d := range dialers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := d; i < n; i += dialers {
				local := &net.TCPAddr{IP: net.IPv4(127, 0, 1, byte(1+i%64))}
				conns[i] = rawDialFrom(b, addr, toks[i], local)
			}
		}()
	}
	wg.Wait()
	time.Sleep(settle)
	after := vmRSS(b, child.Process.Pid)
	b.Logf("%s: %d idle connections: gateway RSS %.1f → %.1f MiB, %.0f bytes per connection",
		mode, n, float64(before)/(1<<20), float64(after)/(1<<20), float64(after-before)/float64(n))
	return float64(after-before) / float64(n), float64(after)
}

// vmRSS is a process's resident set, in bytes.
func vmRSS(tb testing.TB, pid int) int64 {
	tb.Helper()
	st, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	for _, l := range bytes.Split(st, []byte("\n")) {
		if v, ok := bytes.CutPrefix(l, []byte("VmRSS:")); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(string(v)), " kB"), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS")
	return 0
}

// TestIdleRSSGateway is BenchmarkIdleRSS's gateway, in the child process
// (IDLE_RSS_SERVE=<read mode>): it prints its address and serves until its
// standard input ends.
func TestIdleRSSGateway(t *testing.T) {
	mode := os.Getenv("IDLE_RSS_SERVE")
	if mode == "" {
		t.Skip("BenchmarkIdleRSS's child process")
	}
	e := newEnv(t, func(c *Config) {
		c.ReadMode = ReadMode(mode)
		c.PingInterval, c.UpgradeRate, c.PositionInterval = time.Hour, -1, -1
		c.ReadBufferSize = envInt(t, "IDLE_READ_BUFFER", 0)
		c.WriteBufferSize = envInt(t, "IDLE_WRITE_BUFFER", 0)
	})
	fmt.Println("IDLE_ADDR " + strings.TrimPrefix(e.srv.URL, "http://"))
	_, _ = io.Copy(io.Discard, os.Stdin)
}
