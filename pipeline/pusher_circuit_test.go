package pipeline

import (
	"testing"
	"time"
)

// TestCircuit walks one breaker through its states on a fake clock.
func TestCircuit(t *testing.T) {
	t.Parallel()
	cfg := CircuitConfig{Window: 10 * time.Second, MinRequests: 4, FailureRatio: 0.5, CoolDown: 5 * time.Second}
	t0 := time.Unix(1_000_000, 0)
	type step struct {
		at     time.Duration // since t0
		do     string        // "ok", "fail" (record after an allow), "report-ok" (record the probe), "allow", "deny"
		want   CircuitState
		wait   time.Duration // for "deny": the wait announced
		reason string
	}
	for _, tc := range []struct {
		name  string
		steps []step
	}{
		{"failures under MinRequests never open", []step{
			{0, "fail", CircuitClosed, 0, ""}, {1, "fail", CircuitClosed, 0, ""}, {2, "fail", CircuitClosed, 0, ""},
			{3, "allow", CircuitClosed, 0, "still closed after 3 failures of 3"},
		}},
		{"half failing of MinRequests opens", []step{
			{0, "ok", CircuitClosed, 0, ""}, {1, "fail", CircuitClosed, 0, ""}, {2, "ok", CircuitClosed, 0, ""},
			{3, "fail", CircuitOpen, 0, "2 of 4 failed"},
			{4, "deny", CircuitOpen, 4 * time.Second, "cooling down"},
		}},
		{"a window's old failures are forgotten", []step{
			{0, "fail", CircuitClosed, 0, ""}, {1, "fail", CircuitClosed, 0, ""}, {2, "fail", CircuitClosed, 0, ""},
			{12, "fail", CircuitClosed, 0, "a new window: 1 of 1"},
			{13, "ok", CircuitClosed, 0, ""}, {14, "ok", CircuitClosed, 0, ""}, {15, "ok", CircuitClosed, 0, "1 of 4"},
		}},
		{"a probe after the cool-down closes on success", []step{
			{0, "fail", CircuitClosed, 0, ""}, {0, "fail", CircuitClosed, 0, ""}, {0, "fail", CircuitClosed, 0, ""}, {0, "fail", CircuitOpen, 0, ""},
			{5, "allow", CircuitHalfOpen, 0, "the probe"},
			{5, "deny", CircuitHalfOpen, 5 * time.Second, "one probe at a time"},
			{6, "report-ok", CircuitClosed, 0, "the probe succeeded"},
			{6, "allow", CircuitClosed, 0, ""},
		}},
		{"a failed probe opens again", []step{
			{0, "fail", CircuitClosed, 0, ""}, {0, "fail", CircuitClosed, 0, ""}, {0, "fail", CircuitClosed, 0, ""}, {0, "fail", CircuitOpen, 0, ""},
			{5, "fail", CircuitOpen, 0, "probe failed"},
			{9, "deny", CircuitOpen, time.Second, "a new cool-down from the probe's failure"},
			{10, "allow", CircuitHalfOpen, 0, ""},
		}},
		{"a lost probe is replaced after a cool-down", []step{
			{0, "fail", CircuitClosed, 0, ""}, {0, "fail", CircuitClosed, 0, ""}, {0, "fail", CircuitClosed, 0, ""}, {0, "fail", CircuitOpen, 0, ""},
			{5, "allow", CircuitHalfOpen, 0, "a probe that never reports"},
			{9, "deny", CircuitHalfOpen, time.Second, ""},
			{10, "allow", CircuitHalfOpen, 0, "its replacement"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var changes []CircuitState
			c := newCircuit(cfg, func(s CircuitState) { changes = append(changes, s) })
			for i, s := range tc.steps {
				now := t0.Add(s.at * time.Second)
				switch s.do {
				case "report-ok":
					c.record(now, false)
				case "deny", "allow":
					ok, wait := c.allow(now)
					if ok != (s.do == "allow") || (!ok && wait != s.wait) {
						t.Fatalf("step %d (%s): allow = %v, wait %v; want %s, wait %v", i, s.reason, ok, wait, s.do, s.wait)
					}
				default:
					if ok, _ := c.allow(now); !ok {
						t.Fatalf("step %d (%s): a send refused", i, s.reason)
					}
					c.record(now, s.do == "fail")
				}
				if got := c.current(); got != s.want {
					t.Fatalf("step %d (%s): state %v, want %v", i, s.reason, got, s.want)
				}
			}
			if len(changes) > 0 && changes[len(changes)-1] != c.current() {
				t.Fatalf("last reported state %v, state %v", changes[len(changes)-1], c.current())
			}
		})
	}
}

func TestCircuitDefaults(t *testing.T) {
	t.Parallel()
	var c CircuitConfig
	c.setDefaults()
	if c.Window != 10*time.Second || c.MinRequests != 20 || c.FailureRatio != 0.5 || c.CoolDown != 5*time.Second {
		t.Fatalf("defaults: %+v", c)
	}
}
