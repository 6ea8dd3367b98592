package migrations

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestUndurable(t *testing.T) {
	cases := []struct {
		in        string
		min       int
		undurable bool
		mentions  []string
	}{
		{"", 1, true, []string{"SimpleStrategy replication factor 1", "below 3"}},
		{"1", 1, true, []string{"factor 1"}},
		{"2", 2, true, []string{"factor 2"}},
		{"3", 3, false, nil},
		{"simple:5", 5, false, nil},
		{"dc1=3", 3, false, nil},
		{"dc1=3,dc2=3", 3, false, nil},
		{"dc1=3,dc2=2", 2, true, []string{"datacenter dc2 has replication factor 2"}},
		{"dc1=1,dc2=2", 1, true, []string{"dc1 has replication factor 1", "dc2 has replication factor 2"}},
		// A datacenter with no replicas is not a weak one.
		{"dc1=3,analytics=0", 3, false, nil},
		{"dc1=0", 0, true, []string{"no datacenter holds a replica"}},
	}
	for _, c := range cases {
		r, err := ParseReplication(c.in)
		if err != nil {
			t.Fatalf("ParseReplication(%q): %v", c.in, err)
		}
		got := r.Undurable()
		if (got != "") != c.undurable {
			t.Errorf("%q: Undurable() = %q, want undurable=%v", c.in, got, c.undurable)
		}
		for _, m := range c.mentions {
			if !strings.Contains(got, m) {
				t.Errorf("%q: Undurable() = %q, want it to mention %q", c.in, got, m)
			}
		}
		if m := r.MinFactor(); m != c.min {
			t.Errorf("%q: MinFactor() = %d, want %d", c.in, m, c.min)
		}
	}
}

func TestWarnUndurable(t *testing.T) {
	for _, c := range []struct {
		in   string
		warn bool
	}{{"", true}, {"2", true}, {"dc1=3,dc2=1", true}, {"3", false}, {"dc1=3,dc2=3", false}} {
		r, err := ParseReplication(c.in)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		log := slog.New(slog.NewTextHandler(&buf, nil))
		if got := WarnUndurable(context.Background(), log, "herald_prod", r); got != c.warn {
			t.Errorf("%q: WarnUndurable = %v, want %v", c.in, got, c.warn)
		}
		out := buf.String()
		if !c.warn {
			if out != "" {
				t.Errorf("%q: logged %q, want nothing", c.in, out)
			}
			continue
		}
		for _, want := range []string{"level=WARN", "keyspace=herald_prod", "factor=", "below 3", "OPERATIONS.md"} {
			if !strings.Contains(out, want) {
				t.Errorf("%q: warning %q does not contain %q", c.in, out, want)
			}
		}
	}
}
