package pipeline

import (
	"sync"
	"time"
)

// CircuitConfig tunes the Pusher's circuit breaker, one per (provider,
// app). Zero values mean the documented defaults.
type CircuitConfig struct {
	// Window is the span over which sends are counted; the counts restart
	// when it has passed. Zero value: 10s.
	Window time.Duration
	// MinRequests is the number of sends in a window below which the
	// circuit never opens (a few failures of a quiet app are not an
	// outage). Zero value: 20.
	MinRequests int
	// FailureRatio opens the circuit when at least this share of a
	// window's sends (≥ MinRequests) failed transiently. Zero value: 0.5.
	FailureRatio float64
	// CoolDown is how long an open circuit refuses sends before letting
	// one probe through (half-open); a probe that has not reported after
	// another CoolDown is presumed lost and a new one is let through. Zero
	// value: 5s.
	CoolDown time.Duration
}

func (c *CircuitConfig) setDefaults() {
	if c.Window <= 0 {
		c.Window = 10 * time.Second
	}
	if c.MinRequests <= 0 {
		c.MinRequests = 20
	}
	if c.FailureRatio <= 0 || c.FailureRatio > 1 {
		c.FailureRatio = 0.5
	}
	if c.CoolDown <= 0 {
		c.CoolDown = 5 * time.Second
	}
}

// CircuitState is the state of one circuit, as exported by the
// herald_push_circuit_state gauge.
type CircuitState int

// The states of a circuit.
const (
	CircuitClosed   CircuitState = 0 // sends go through
	CircuitHalfOpen CircuitState = 1 // one probe goes through, the rest wait
	CircuitOpen     CircuitState = 2 // no send goes through until CoolDown has passed
)

func (s CircuitState) String() string {
	switch s {
	case CircuitClosed:
		return "closed"
	case CircuitHalfOpen:
		return "half_open"
	case CircuitOpen:
		return "open"
	}
	return "unknown"
}

// circuit is one (provider, app)'s breaker. It is safe for concurrent use.
type circuit struct {
	cfg CircuitConfig
	// onChange, if set, is called (under the lock) with each new state.
	onChange func(CircuitState)

	mu             sync.Mutex
	state          CircuitState
	windowStart    time.Time
	total, failed  int
	openedAt       time.Time // when it last opened
	probing        bool      // half-open and a probe is out
	probeStartedAt time.Time
}

func newCircuit(cfg CircuitConfig, onChange func(CircuitState)) *circuit {
	cfg.setDefaults()
	return &circuit{cfg: cfg, onChange: onChange}
}

func (c *circuit) set(s CircuitState) {
	if c.state == s {
		return
	}
	c.state = s
	if c.onChange != nil {
		c.onChange(s)
	}
}

// allow reports whether a send may go to the provider at now. When it
// may not, wait is how long until the circuit lets a probe through (at
// least a millisecond). An allowed send must be followed by one record.
func (c *circuit) allow(now time.Time) (ok bool, wait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case CircuitClosed:
		return true, 0
	case CircuitOpen:
		if until := c.openedAt.Add(c.cfg.CoolDown); now.Before(until) {
			return false, max(until.Sub(now), time.Millisecond)
		}
		c.set(CircuitHalfOpen)
		c.probing = false
	}
	// Half-open: one probe at a time; a probe lost for a CoolDown is
	// replaced.
	if c.probing && now.Before(c.probeStartedAt.Add(c.cfg.CoolDown)) {
		return false, max(c.probeStartedAt.Add(c.cfg.CoolDown).Sub(now), time.Millisecond)
	}
	c.probing, c.probeStartedAt = true, now
	return true, 0
}

// record counts the outcome of an allowed send: failed is a transient
// failure (a token the provider calls dead, or a permanent refusal, is an
// answer from a working provider: a success here).
func (c *circuit) record(now time.Time, failed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch c.state {
	case CircuitHalfOpen:
		if failed {
			c.openedAt, c.probing = now, false
			c.set(CircuitOpen)
			return
		}
		c.probing = false
		c.total, c.failed, c.windowStart = 0, 0, now
		c.set(CircuitClosed)
		return
	case CircuitOpen:
		// A send allowed before the circuit opened, reporting late.
		return
	}
	if c.windowStart.IsZero() || now.Sub(c.windowStart) >= c.cfg.Window {
		c.windowStart, c.total, c.failed = now, 0, 0
	}
	c.total++
	if failed {
		c.failed++
	}
	if c.total >= c.cfg.MinRequests && float64(c.failed) >= c.cfg.FailureRatio*float64(c.total) {
		c.openedAt = now
		c.set(CircuitOpen)
	}
}

// current is the circuit's state.
func (c *circuit) current() CircuitState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}
