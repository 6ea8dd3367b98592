package pipeline

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// membership is the consumer group side of the Enricher, the Router and
// the Pusher: the group and static membership options, what Ready
// reports, and the leave of a clean shutdown.
//
// # Static membership
//
// With an instance id (kgo.InstanceID, Kafka's group.instance.id) a member
// is static: the coordinator remembers it by that id, not by the member id
// of one connection. A process that crashes and restarts with the same
// id within the session timeout gets its old partitions back at once,
// without a rebalance: the other members are not even told, and keep
// consuming. Without one, the crashed member's partitions stall until
// its session expires, and then every member goes through a rebalance.
//
// The id must be unique per live process in the group, and stable across
// restarts of the same instance (a StatefulSet pod name, a host name:
// Herald derives it from the transactional id, the gateway id or the
// host name, see the app's --group-instance-id). Two live processes with
// one id fence each other: the one that joined last takes the member's
// place, and the other's rejoins are refused with FENCED_INSTANCE_ID
// (franz-go rejoins with its old member id; seen on Kafka 4.4), so it
// consumes nothing until it is stopped or given its own id. Herald logs
// each refusal at error level, naming the group and the id, and Ready
// reports "fenced" until the member is assigned again. (An enricher whose
// producer is fenced too is rebuilt, joins afresh and takes the place
// back: two enrichers sharing an id can alternate.)
//
// # Leaving on a clean shutdown
//
// franz-go does not send LeaveGroup when a static member closes (so that
// a restart takes its partitions back). Herald leaves anyway on a clean
// Close (SIGTERM): the process may not come back (a scale-down, a drained
// node), and its partitions should move now, not after the session
// timeout. A rolling restart then costs two short rebalances instead of
// none; a crash (kill -9, OOM, a frozen process) sends nothing, and that
// is where static membership pays: the restarted process takes its
// partitions back without a rebalance.
//
// # Balancers
//
// The groups use franz-go's default, the cooperative sticky balancer: in a
// rebalance a member gives up only the partitions that move and keeps
// consuming the others; with static membership a restarted member's
// assignment is kept as it was. The Enricher's GroupTransactSession
// aborts the open transaction only if something was actually revoked.
type membership struct {
	group    string
	instance string // "" = dynamic membership
	log      *slog.Logger

	mu      sync.Mutex
	running bool  // Run is polling
	done    bool  // Run returned
	joined  bool  // a group session began and was not lost since
	err     error // what ended the last session, until the next one
	owned   map[topicPartition]struct{}
	// sessions counts the assignments (one per join), taken counts the
	// partitions revoked or lost: what tests observe of rebalances.
	sessions, taken int
}

// leaveTimeout bounds the LeaveGroup of a clean shutdown; past it the
// member stays in the group until its session expires.
const leaveTimeout = 5 * time.Second

// validInstanceID is Kafka's rule for group.instance.id (the topic name
// characters, at most 249 of them).
var validInstanceID = regexp.MustCompile(`^[a-zA-Z0-9._-]{1,249}$`)

func newMembership(component, group, instance string, log *slog.Logger) (*membership, error) {
	if instance != "" && !validInstanceID.MatchString(instance) {
		return nil, fmt.Errorf("%w: %s: InstanceID %q: want 1 to 249 of a-z A-Z 0-9 . _ -", ErrInvalidConfig, component, instance)
	}
	return &membership{group: group, instance: instance, log: log, owned: map[topicPartition]struct{}{}}, nil
}

// opts are the group options: the group, the instance id, and the
// callbacks that keep Ready up to date, which run the component's own
// (each may be nil): assigned before their bookkeeping, revoked and lost
// after it.
func (m *membership) opts(assigned, revoked, lost func(context.Context, *kgo.Client, map[string][]int32)) []kgo.Opt {
	opts := []kgo.Opt{
		kgo.ConsumerGroup(m.group),
		kgo.OnPartitionsAssigned(func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
			if assigned != nil {
				assigned(ctx, cl, parts)
			}
			m.assigned(ctx, cl, parts)
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
			m.revoked(parts)
			if revoked != nil {
				revoked(ctx, cl, parts)
			}
		}),
		kgo.OnPartitionsLost(func(ctx context.Context, cl *kgo.Client, parts map[string][]int32) {
			m.lost()
			if lost != nil {
				lost(ctx, cl, parts)
			}
		}),
		kgo.WithHooks(m),
	}
	if m.instance != "" {
		opts = append(opts, kgo.InstanceID(m.instance))
	}
	return opts
}

// assigned runs after every join: franz-go calls it even when nothing new
// is assigned, so a member with no partition (more members than
// partitions) also learns that its session began.
func (m *membership) assigned(_ context.Context, _ *kgo.Client, added map[string][]int32) {
	m.mu.Lock()
	first := !m.joined
	m.joined, m.err = true, nil
	m.sessions++
	for t, ps := range added {
		for _, p := range ps {
			m.owned[topicPartition{t, p}] = struct{}{}
		}
	}
	owned := len(m.owned)
	m.mu.Unlock()
	if first {
		m.log.Info("group session began", "partitions", owned, "instance_id", m.instance)
	}
}

// revoked keeps the member ready: a revocation is a rebalance in progress
// (cooperative: the rest is still consumed; eager: everything comes back
// at the next assignment), not a lost session.
func (m *membership) revoked(parts map[string][]int32) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for t, ps := range parts {
		for _, p := range ps {
			if _, ok := m.owned[topicPartition{t, p}]; ok {
				delete(m.owned, topicPartition{t, p})
				m.taken++
			}
		}
	}
}

func (m *membership) lost() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.joined = false
	m.taken += len(m.owned)
	clear(m.owned)
}

// OnGroupManageError implements kgo.HookGroupManageError: franz-go calls it
// with the error that ended a group session (after OnPartitionsLost), then
// rejoins after a backoff.
func (m *membership) OnGroupManageError(err error) {
	m.lost()
	m.mu.Lock()
	m.err = err
	m.mu.Unlock()
	if errors.Is(err, kerr.FencedInstanceID) {
		m.log.Error("fenced out of the consumer group: another live process joined it with this instance id; "+
			"instance ids must be unique per live process; this member consumes nothing until it is stopped or given its own id",
			"instance_id", m.instance, "err", err)
		return
	}
	if !errors.Is(err, context.Canceled) {
		m.log.Warn("consumer group session ended, rejoining", "err", err)
	}
}

// assignment returns the partitions held, sorted, and the counters.
func (m *membership) assignment() (owned []topicPartition, sessions, taken int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for tp := range m.owned {
		owned = append(owned, tp)
	}
	slices.SortFunc(owned, func(a, b topicPartition) int {
		return cmp.Or(cmp.Compare(a.topic, b.topic), cmp.Compare(a.partition, b.partition))
	})
	return owned, m.sessions, m.taken
}

// setRunning records that Run started (true) or returned (false).
func (m *membership) setRunning(on bool) {
	m.mu.Lock()
	m.running = on
	if !on {
		m.done = true
	}
	m.mu.Unlock()
}

// ready is the component's Ready: nil once Run is polling and a group
// session began (holding partitions or, with more members than
// partitions, none), else why not.
func (m *membership) ready() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.done:
		return errors.New("stopped")
	case !m.running:
		return errors.New("not running")
	case m.joined:
		return nil
	case errors.Is(m.err, kerr.FencedInstanceID):
		return fmt.Errorf("fenced: another live process joined group %s with instance id %q", m.group, m.instance)
	case m.err != nil:
		return fmt.Errorf("rejoining group %s after: %w", m.group, m.err)
	}
	return fmt.Errorf("joining group %s: no assignment yet", m.group)
}

// leave ends a static member's membership on a clean shutdown, right
// before cl is closed (see "Leaving on a clean shutdown"). It first stops
// franz-go's group management (heartbeats, rejoins: LeaveGroupContext
// sends nothing for a static member), so that nothing rejoins after the
// LeaveGroup it then sends itself. The LeaveGroup names this member's id
// too: a process that was replaced meanwhile by a newer one with the same
// instance id is refused (FENCED_INSTANCE_ID) instead of evicting it.
// A dynamic member needs none of this: Close leaves.
func (m *membership) leave(cl *kgo.Client) {
	if m.instance == "" {
		return
	}
	memberID, _ := cl.GroupMetadata()
	ctx, cancel := context.WithTimeout(context.Background(), leaveTimeout)
	defer cancel()
	if err := cl.LeaveGroupContext(ctx); err != nil {
		m.log.Warn("stopping the group session before leaving", "err", err)
		return
	}
	if memberID == "" {
		return // never joined, or the session was lost: nothing to leave
	}
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = m.group
	member := kmsg.NewLeaveGroupRequestMember()
	member.MemberID = memberID
	member.InstanceID = &m.instance
	member.Reason = kmsg.StringPtr("herald: clean shutdown of a static member")
	req.Members = append(req.Members, member)
	resp, err := req.RequestWith(ctx, cl)
	if err == nil {
		err = kerr.ErrorForCode(resp.ErrorCode)
	}
	if err == nil && len(resp.Members) > 0 {
		err = kerr.ErrorForCode(resp.Members[0].ErrorCode)
	}
	switch {
	case err == nil:
		m.log.Info("left the consumer group", "instance_id", m.instance)
	case errors.Is(err, kerr.UnknownMemberID):
		// Already out: franz-go left itself (a cooperative revoke not
		// yet rejoined) or the session had expired.
	default:
		m.log.Warn("leaving the consumer group; its partitions move after the session timeout", "instance_id", m.instance, "err", err)
	}
}
