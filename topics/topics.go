package topics

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// DefaultPrefix is the topic prefix used when none is configured.
const DefaultPrefix = "herald."

// Names are the full names of Herald's topics under one prefix.
type Names struct {
	Events     string // upstream events, key = user id
	EventsDLQ  string // rejected events, as received, with the reason in headers
	Deliveries string // stored notifications, key = user id, transactional
	Push       string // push jobs, key = user id
	PushDLQ    string // push jobs that could not be delivered
	// Fanout holds multi-recipient events (user_ids, audience) and their
	// continuations, key = event id, for the fan-out stage.
	Fanout string
}

// WithPrefix returns the topic names under prefix; "" means DefaultPrefix.
func WithPrefix(prefix string) Names {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Names{
		Events:     prefix + "events",
		EventsDLQ:  prefix + "events.dlq",
		Deliveries: prefix + "deliveries",
		Push:       prefix + "push",
		PushDLQ:    prefix + "push.dlq",
		Fanout:     prefix + "fanout",
	}
}

// IsZero reports whether n is the zero Names (components then default to
// WithPrefix("")).
func (n Names) IsZero() bool { return n == Names{} }

// All lists the topic names in pipeline order.
func (n Names) All() []string {
	return []string{n.Events, n.EventsDLQ, n.Deliveries, n.Push, n.PushDLQ, n.Fanout}
}

// Spec is the definition of one topic.
type Spec struct {
	Name       string
	Partitions int32
	// Retention is retention.ms; zero leaves the broker default.
	Retention time.Duration
	// CleanupPolicy is cleanup.policy ("delete" or "compact"); "" leaves the
	// broker default.
	CleanupPolicy string
	// MinInsyncReplicas is min.insync.replicas for topics whose loss would
	// lose data. It is applied only when the replication factor is explicit
	// and leaves room for one replica to be down (replication > min ISR);
	// with the broker-default replication (-1) or a 1-node cluster, a
	// min.insync.replicas of 2 would refuse every acks=all write.
	MinInsyncReplicas int
}

// Specs returns Herald's topic definitions for names n, the push retry
// topics of DefaultPushRetryTiers included (a deployment with other tiers
// adds PushRetrySpecs of its own).
//
// Partition counts bound consumer parallelism: events and deliveries are
// keyed by user id, so their partition count is also the number of enricher
// and gateway instances that can share the work.
func Specs(n Names) []Spec {
	const day = 24 * time.Hour
	return append([]Spec{
		{Name: n.Events, Partitions: 12, Retention: 7 * day, CleanupPolicy: "delete", MinInsyncReplicas: 2},
		{Name: n.EventsDLQ, Partitions: 3, Retention: 30 * day, CleanupPolicy: "delete", MinInsyncReplicas: 2},
		// Deliveries are a hand-off to the gateways: the inbox is the durable
		// copy, so a day covers any gateway outage worth replaying.
		{Name: n.Deliveries, Partitions: 12, Retention: day, CleanupPolicy: "delete", MinInsyncReplicas: 2},
		{Name: n.Push, Partitions: 6, Retention: 3 * day, CleanupPolicy: "delete", MinInsyncReplicas: 2},
		{Name: n.PushDLQ, Partitions: 3, Retention: 30 * day, CleanupPolicy: "delete", MinInsyncReplicas: 2},
		// A broadcast waits here, page by page, until every recipient's
		// event is in herald.events: as long as the events topic keeps them.
		{Name: n.Fanout, Partitions: 12, Retention: 7 * day, CleanupPolicy: "delete", MinInsyncReplicas: 2},
	}, PushRetrySpecs(n, nil)...)
}

// DefaultPushRetryTiers are the delays of the push retry topics created
// by Specs: a push job waiting for its next attempt (or for its per-type
// push delay, or for an open circuit to cool down) goes to the smallest
// tier at least as long as its delay (the longest tier when none is, and
// hops on from there), so a tier's records are nearly in not-before order.
var DefaultPushRetryTiers = []time.Duration{5 * time.Second, 30 * time.Second, 5 * time.Minute}

// PushRetry is the name of the push retry topic of delay tier d:
// n.Push + ".retry." + the delay in the shortest unit that writes it
// whole ("herald.push.retry.5s", ".30s", ".5m", ".1500ms", ".2h").
func (n Names) PushRetry(d time.Duration) string {
	return n.Push + ".retry." + tierName(d)
}

func tierName(d time.Duration) string {
	switch {
	case d <= 0:
		return "0s"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + "s"
	default:
		return strconv.FormatInt(d.Milliseconds(), 10) + "ms"
	}
}

// PushRetrySpecs returns the specs of the push retry topics of tiers
// (DefaultPushRetryTiers when empty). They are partitioned like herald.push
// and keyed by user id; a retry record is a hand-off kept until it is
// worked, so a day's retention (far beyond any tier) is enough, and their
// loss would lose pushes: min.insync.replicas 2 like herald.push.
func PushRetrySpecs(n Names, tiers []time.Duration) []Spec {
	if len(tiers) == 0 {
		tiers = DefaultPushRetryTiers
	}
	specs := make([]Spec, 0, len(tiers))
	seen := map[string]bool{}
	for _, d := range tiers {
		name := n.PushRetry(d)
		if seen[name] {
			continue
		}
		seen[name] = true
		specs = append(specs, Spec{Name: name, Partitions: 6, Retention: max(24*time.Hour, 4*d), CleanupPolicy: "delete", MinInsyncReplicas: 2})
	}
	return specs
}

// Configs returns the topic-level configs s manages at this replication
// factor (-1 = broker default).
func (s Spec) Configs(replication int16) map[string]string {
	c := map[string]string{}
	if s.Retention > 0 {
		c["retention.ms"] = strconv.FormatInt(s.Retention.Milliseconds(), 10)
	}
	if s.CleanupPolicy != "" {
		c["cleanup.policy"] = s.CleanupPolicy
	}
	if s.MinInsyncReplicas > 0 && int(replication) > s.MinInsyncReplicas {
		c["min.insync.replicas"] = strconv.Itoa(s.MinInsyncReplicas)
	}
	return c
}

// Action is what Ensure did to a topic.
type Action string

// The actions Ensure reports.
const (
	ActionCreated       Action = "created"
	ActionAddPartitions Action = "add_partitions"
	ActionAlterConfig   Action = "alter_config"
)

// Change is one modification made by Ensure.
type Change struct {
	Topic  string
	Action Action
	Detail string // human-readable: "12 partitions", "3 -> 12 partitions", "retention.ms: 1000 -> 604800000"
}

func (c Change) String() string { return c.Topic + ": " + string(c.Action) + " " + c.Detail }

// Apply creates Herald's topics under prefix ("" = DefaultPrefix) or
// converges existing ones to their Spec; see Ensure. replication is the
// replication factor of created topics, -1 for the broker default.
func Apply(ctx context.Context, adm *kadm.Client, prefix string, replication int16) error {
	_, err := Ensure(ctx, adm, Specs(WithPrefix(prefix)), replication)
	return err
}

// Ensure makes every spec hold on the cluster and returns what it changed
// (nothing on a second run). It is idempotent and safe to run concurrently
// with itself:
//   - a missing topic is created with its partitions, replication and configs;
//   - an existing topic with fewer partitions gets partitions added (never
//     removed: Kafka cannot shrink a topic). Adding partitions remaps keys,
//     so a user's events produced around the change may be enriched out of
//     order; grow topics while producers are quiet;
//   - a managed config that drifted (or was never set) is set back with
//     IncrementalAlterConfigs. Unmanaged configs are left alone. The
//     replication factor of existing topics is not changed.
//
// It blocks for a few admin round trips and honours ctx.
func Ensure(ctx context.Context, adm *kadm.Client, specs []Spec, replication int16) ([]Change, error) {
	if replication == 0 || replication < -1 {
		return nil, fmt.Errorf("topics: replication factor must be -1 (broker default) or positive, got %d", replication)
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		if s.Name == "" || s.Partitions <= 0 {
			return nil, fmt.Errorf("topics: invalid spec %+v", s)
		}
		names[i] = s.Name
	}
	// WithAuthorizedOps makes kadm issue a direct metadata request instead
	// of answering from the client's metadata cache, which may predate a
	// previous Ensure on the same client (topics seen as missing).
	details, err := adm.ListTopics(kadm.WithAuthorizedOps(ctx), names...)
	if err != nil {
		return nil, fmt.Errorf("topics: list: %w", err)
	}

	var changes []Change
	var existing []Spec
	for _, s := range specs {
		d, ok := details[s.Name]
		if ok && d.Err == nil {
			existing = append(existing, s)
			if have := int32(len(d.Partitions)); have < s.Partitions {
				resp, err := adm.UpdatePartitions(ctx, int(s.Partitions), s.Name)
				if err == nil {
					err = resp.Error()
				}
				if err != nil {
					return changes, fmt.Errorf("topics: add partitions to %s (%d -> %d): %w", s.Name, have, s.Partitions, err)
				}
				changes = append(changes, Change{s.Name, ActionAddPartitions, fmt.Sprintf("%d -> %d partitions", have, s.Partitions)})
			}
			continue
		}
		if ok && !errors.Is(d.Err, kerr.UnknownTopicOrPartition) {
			return changes, fmt.Errorf("topics: describe %s: %w", s.Name, d.Err)
		}
		cfg := map[string]*string{}
		for k, v := range s.Configs(replication) {
			cfg[k] = kadm.StringPtr(v)
		}
		resp, err := adm.CreateTopic(ctx, s.Partitions, replication, cfg, s.Name)
		switch {
		case errors.Is(err, kerr.TopicAlreadyExists):
			// Created concurrently since we listed: converge its configs below.
			existing = append(existing, s)
		case err != nil:
			msg := ""
			if resp.ErrMessage != "" {
				msg = " (" + resp.ErrMessage + ")"
			}
			return changes, fmt.Errorf("topics: create %s: %w%s", s.Name, err, msg)
		default:
			changes = append(changes, Change{s.Name, ActionCreated, fmt.Sprintf("%d partitions", s.Partitions)})
		}
	}

	drift, err := alterDrifted(ctx, adm, existing, replication)
	return append(changes, drift...), err
}

// alterDrifted sets back the managed configs of existing topics that differ
// from their spec.
func alterDrifted(ctx context.Context, adm *kadm.Client, specs []Spec, replication int16) ([]Change, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.Name
	}
	described, err := adm.DescribeTopicConfigs(ctx, names...)
	if err != nil {
		return nil, fmt.Errorf("topics: describe configs: %w", err)
	}
	var changes []Change
	for _, s := range specs {
		rc, err := described.On(s.Name, nil)
		if err == nil {
			err = rc.Err
		}
		if err != nil {
			return changes, fmt.Errorf("topics: describe configs of %s: %w", s.Name, err)
		}
		have := map[string]string{}
		for _, c := range rc.Configs {
			have[c.Key] = c.MaybeValue()
		}
		want := s.Configs(replication)
		keys := make([]string, 0, len(want))
		for k := range want {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var alter []kadm.AlterConfig
		var detail []Change
		for _, k := range keys {
			if v, ok := have[k]; ok && v == want[k] {
				continue
			}
			alter = append(alter, kadm.AlterConfig{Op: kadm.SetConfig, Name: k, Value: kadm.StringPtr(want[k])})
			detail = append(detail, Change{s.Name, ActionAlterConfig, fmt.Sprintf("%s: %q -> %q", k, have[k], want[k])})
		}
		if len(alter) == 0 {
			continue
		}
		resp, err := adm.AlterTopicConfigs(ctx, alter, s.Name)
		if err == nil {
			var r kadm.AlterConfigsResponse
			if r, err = resp.On(s.Name, nil); err == nil {
				err = r.Err
			}
		}
		if err != nil {
			return changes, fmt.Errorf("topics: alter configs of %s: %w", s.Name, err)
		}
		changes = append(changes, detail...)
	}
	return changes, nil
}

// Prefix is the prefix the names were built with.
func (n Names) Prefix() string { return strings.TrimSuffix(n.Events, "events") }
