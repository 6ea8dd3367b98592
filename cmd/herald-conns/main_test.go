package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSourceSpreadsOverAddresses(t *testing.T) {
	o := &options{perSource: 1000, sourceBase: netip.MustParseAddr("127.1.0.0")}
	for _, c := range []struct {
		i    int
		want string
	}{{0, "127.1.0.1"}, {999, "127.1.0.1"}, {1000, "127.1.0.2"}, {255_000, "127.1.1.0"}, {99_999, "127.1.0.100"}} {
		a, ok := o.source(c.i).(*net.TCPAddr)
		if !ok || a.IP.String() != c.want {
			t.Errorf("source(%d) = %v, want %s", c.i, o.source(c.i), c.want)
		}
	}
	if (&options{perSource: 1000}).source(5) != nil {
		t.Error("no -source-base: want the kernel's choice (nil)")
	}
}

// report must fail a run with a missing, doubled or dropped connection,
// and pass only a clean one.
func TestReportCountsEveryFailure(t *testing.T) {
	mk := func(lat int64, copies int32, dropped bool) *conn {
		c := &conn{}
		c.latency.Store(lat)
		c.copies.Store(copies)
		c.dropped.Store(dropped)
		return c
	}
	out := filepath.Join(t.TempDir(), "lat.txt")
	o := &options{event: "e", count: 3, out: out}
	if !report(o, []*conn{mk(3000, 1, false), mk(1000, 1, false), mk(2000, 1, false)}) {
		t.Fatal("a clean run reported as failed")
	}
	raw, err := os.ReadFile(out)
	if err != nil || strings.Fields(string(raw))[0] != "1000" || len(strings.Fields(string(raw))) != 3 {
		t.Fatalf("latencies file %q, %v: want 3 lines, sorted", raw, err)
	}
	for name, conns := range map[string][]*conn{
		"missing":   {mk(1000, 1, false), mk(0, 0, false), mk(2000, 1, false)},
		"duplicate": {mk(1000, 2, false), mk(1000, 1, false), mk(2000, 1, false)},
		"dropped":   {mk(1000, 1, true), mk(1000, 1, false), mk(2000, 1, false)},
		"not held":  {mk(1000, 1, false), nil, mk(2000, 1, false)},
	} {
		if report(&options{event: "e", count: 3}, conns) {
			t.Errorf("%s: reported clean", name)
		}
	}
}
