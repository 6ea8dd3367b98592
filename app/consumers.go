package app

import (
	"context"
	"errors"
	"os"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/internal/lifecycle"
)

// consumer is a supervised Kafka group consumer (the enricher, the
// router, the pusher) that says whether it is consuming.
type consumer interface {
	lifecycle.Runner
	// Ready is nil once the consumer holds its assignment (possibly
	// empty) and polls; cheap and non-blocking.
	Ready() error
}

// superviseConsumer is supervise for a consumer, plus a readiness check
// named name that asks the instance currently running: a consuming role
// is ready only once its consumer holds an assignment and is consuming
// (or knows there is nothing to own), not as soon as Kafka answers. After
// a fatal error the rebuilt instance is asked, not ready until it has
// rejoined.
func (p *Process) superviseConsumer(phase int, name string, build func() (consumer, error)) {
	var cur atomic.Pointer[consumer]
	p.mu.Lock()
	p.check(name, func(context.Context) error {
		c := cur.Load()
		if c == nil {
			return errors.New("not started")
		}
		return (*c).Ready()
	})
	p.mu.Unlock()
	p.supervise(phase, name, func() (lifecycle.Runner, error) {
		c, err := build()
		if err != nil {
			return nil, err
		}
		cur.Store(&c)
		return c, nil
	})
}

// instanceID is the static group membership id (group.instance.id) of
// this process's consumer in a role's group: --group-instance-id, or
// derived when that is empty, from an id that already has to be unique
// per live process and stable per instance (the enricher's transactional
// id, the gateway id; the pusher has none, so "herald-pusher-<host
// name>"); "" (dynamic membership) for "off" or when nothing can be
// derived. Groups are per role, so herald dev's roles may share one.
func (p *Process) instanceID(derived string) string {
	switch id := p.cfg.GroupInstanceID; id {
	case "off":
		return ""
	case "":
		return derived
	default:
		return id
	}
}

// pusherInstanceID is the pusher's derived instance id.
func pusherInstanceID() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		return ""
	}
	return "herald-pusher-" + host
}

// heartbeatInterval is the group heartbeat of a session timeout: a tenth
// of it, at most franz-go's default of 3s. A member learns of a rebalance
// at its next heartbeat, so the interval bounds how long a rebalance
// waits for the live members (a crashed member's partitions move that
// much sooner once its session expires); ten of them per session leave
// room for a few lost or late ones before the coordinator gives up on the
// member. One small request a second per member is nothing to Kafka.
func heartbeatInterval(session time.Duration) time.Duration {
	return min(session/10, 3*time.Second)
}
