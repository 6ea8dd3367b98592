package migrations

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Replication strategy classes.
const (
	SimpleStrategy          = "SimpleStrategy"
	NetworkTopologyStrategy = "NetworkTopologyStrategy"
)

// Replication is the replication of a keyspace the migrator creates. The zero
// value is SimpleStrategy with replication factor 1 (one node: development
// and CI).
type Replication struct {
	// Class is SimpleStrategy or NetworkTopologyStrategy; "" means
	// NetworkTopologyStrategy when DataCenters is set, SimpleStrategy
	// otherwise.
	Class string
	// Factor is the SimpleStrategy replication factor; 0 means 1.
	Factor int
	// DataCenters maps each datacenter to its replication factor
	// (NetworkTopologyStrategy only; at least one).
	DataCenters map[string]int
}

// ErrBadReplication is wrapped by ParseReplication and Replication.CQL.
var ErrBadReplication = errors.New("migrations: bad replication")

var dcName = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// ParseReplication parses the textual form used by flags and environment
// variables:
//
//	""                                  SimpleStrategy, factor 1
//	"3", "simple:3", "SimpleStrategy:3" SimpleStrategy, factor 3
//	"dc1=3,dc2=2", "NetworkTopologyStrategy:dc1=3,dc2=2", "nts:dc1=3"
func ParseReplication(s string) (Replication, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Replication{}, nil
	}
	class, rest, hasClass := strings.Cut(s, ":")
	if !hasClass {
		class, rest = "", s
	}
	switch strings.ToLower(class) {
	case "":
		if !strings.Contains(rest, "=") {
			class = SimpleStrategy
		} else {
			class = NetworkTopologyStrategy
		}
	case "simple", "simplestrategy":
		class = SimpleStrategy
	case "nts", "networktopology", "networktopologystrategy":
		class = NetworkTopologyStrategy
	default:
		return Replication{}, fmt.Errorf("%w: unknown class %q (SimpleStrategy or NetworkTopologyStrategy)", ErrBadReplication, class)
	}
	r := Replication{Class: class}
	if class == SimpleStrategy {
		n, err := strconv.Atoi(strings.TrimSpace(rest))
		if err != nil || n < 1 {
			return Replication{}, fmt.Errorf("%w: %q: SimpleStrategy needs a replication factor >= 1", ErrBadReplication, s)
		}
		r.Factor = n
		return r, nil
	}
	r.DataCenters = map[string]int{}
	for _, part := range strings.Split(rest, ",") {
		dc, f, ok := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(strings.TrimSpace(f))
		dc = strings.TrimSpace(dc)
		if !ok || err != nil || n < 0 || !dcName.MatchString(dc) {
			return Replication{}, fmt.Errorf("%w: %q: expected dc=factor[,dc=factor...]", ErrBadReplication, part)
		}
		if _, dup := r.DataCenters[dc]; dup {
			return Replication{}, fmt.Errorf("%w: datacenter %q given twice", ErrBadReplication, dc)
		}
		r.DataCenters[dc] = n
	}
	return r, nil
}

// CQL renders r as the map of a CREATE KEYSPACE ... WITH replication = clause.
func (r Replication) CQL() (string, error) {
	class := r.Class
	if class == "" {
		class = SimpleStrategy
		if len(r.DataCenters) > 0 {
			class = NetworkTopologyStrategy
		}
	}
	switch class {
	case SimpleStrategy:
		if len(r.DataCenters) > 0 {
			return "", fmt.Errorf("%w: SimpleStrategy takes no datacenters", ErrBadReplication)
		}
		f := r.Factor
		if f == 0 {
			f = 1
		}
		if f < 1 {
			return "", fmt.Errorf("%w: replication factor %d", ErrBadReplication, f)
		}
		return fmt.Sprintf("{'class': 'SimpleStrategy', 'replication_factor': %d}", f), nil
	case NetworkTopologyStrategy:
		if len(r.DataCenters) == 0 {
			return "", fmt.Errorf("%w: NetworkTopologyStrategy needs at least one datacenter", ErrBadReplication)
		}
		dcs := make([]string, 0, len(r.DataCenters))
		for dc := range r.DataCenters {
			dcs = append(dcs, dc)
		}
		sort.Strings(dcs)
		var b strings.Builder
		b.WriteString("{'class': 'NetworkTopologyStrategy'")
		for _, dc := range dcs {
			n := r.DataCenters[dc]
			if !dcName.MatchString(dc) || n < 0 {
				return "", fmt.Errorf("%w: datacenter %q factor %d", ErrBadReplication, dc, n)
			}
			fmt.Fprintf(&b, ", '%s': %d", dc, n)
		}
		b.WriteString("}")
		return b.String(), nil
	}
	return "", fmt.Errorf("%w: unknown class %q", ErrBadReplication, class)
}

// String is the ParseReplication form of r.
func (r Replication) String() string {
	if len(r.DataCenters) == 0 && r.Class != NetworkTopologyStrategy {
		f := r.Factor
		if f == 0 {
			f = 1
		}
		return fmt.Sprintf("%s:%d", SimpleStrategy, f)
	}
	dcs := make([]string, 0, len(r.DataCenters))
	for dc, n := range r.DataCenters {
		dcs = append(dcs, fmt.Sprintf("%s=%d", dc, n))
	}
	sort.Strings(dcs)
	return NetworkTopologyStrategy + ":" + strings.Join(dcs, ",")
}

// matches reports whether the replication map Cassandra reports for an
// existing keyspace (system_schema.keyspaces) is r.
func (r Replication) matches(got map[string]string) bool {
	class := got["class"]
	class = class[strings.LastIndexByte(class, '.')+1:]
	want := r.Class
	if want == "" {
		want = SimpleStrategy
		if len(r.DataCenters) > 0 {
			want = NetworkTopologyStrategy
		}
	}
	if class != want {
		return false
	}
	if want == SimpleStrategy {
		f := r.Factor
		if f == 0 {
			f = 1
		}
		return got["replication_factor"] == strconv.Itoa(f)
	}
	n := 0
	for k, v := range got {
		if k == "class" {
			continue
		}
		n++
		if want, ok := r.DataCenters[k]; !ok || strconv.Itoa(want) != v {
			return false
		}
	}
	return n == len(r.DataCenters)
}

// DurableFactor is the replication factor, in every datacenter that holds
// replicas, that Herald's guarantees need: with LOCAL_QUORUM writes and
// LOCAL_SERIAL conditions, three replicas keep every acknowledged write and
// keep accepting writes through the loss of one node. Below it, one failed
// node or disk can lose acknowledged notifications and hand their seqs to
// other notifications (docs/OPERATIONS.md).
const DurableFactor = 3

// Undurable says why r is below DurableFactor ("" when it is not): the
// SimpleStrategy factor, or each datacenter whose factor is 1 or 2. A
// datacenter given factor 0 holds no replicas and is not counted; r with no
// replicas at all is undurable.
func (r Replication) Undurable() string {
	if len(r.DataCenters) == 0 && r.Class != NetworkTopologyStrategy {
		f := r.Factor
		if f == 0 {
			f = 1
		}
		if f < DurableFactor {
			return fmt.Sprintf("SimpleStrategy replication factor %d is below %d", f, DurableFactor)
		}
		return ""
	}
	dcs := make([]string, 0, len(r.DataCenters))
	for dc := range r.DataCenters {
		dcs = append(dcs, dc)
	}
	sort.Strings(dcs)
	var weak []string
	replicas := 0
	for _, dc := range dcs {
		n := r.DataCenters[dc]
		replicas += n
		if n > 0 && n < DurableFactor {
			weak = append(weak, fmt.Sprintf("datacenter %s has replication factor %d", dc, n))
		}
	}
	if replicas == 0 {
		return "no datacenter holds a replica"
	}
	if len(weak) == 0 {
		return ""
	}
	return strings.Join(weak, ", ") + fmt.Sprintf(", below %d", DurableFactor)
}

// MinFactor is the smallest replication factor of a datacenter holding
// replicas (the SimpleStrategy factor, 0 when there are no replicas).
func (r Replication) MinFactor() int {
	if len(r.DataCenters) == 0 && r.Class != NetworkTopologyStrategy {
		if r.Factor == 0 {
			return 1
		}
		return r.Factor
	}
	m := 0
	for _, n := range r.DataCenters {
		if n > 0 && (m == 0 || n < m) {
			m = n
		}
	}
	return m
}

// WarnUndurable logs a warning on log when r, the replication of keyspace,
// is below DurableFactor, and reports whether it did. Only a warning: a
// one-node development or test cluster legitimately runs with factor 1.
func WarnUndurable(ctx context.Context, log *slog.Logger, keyspace string, r Replication) bool {
	why := r.Undurable()
	if why == "" {
		return false
	}
	log.WarnContext(ctx, "cassandra keyspace replication is below 3: losing one node or its disk can lose "+
		"notifications already accepted and reuse their seqs; fine for a one-node development or test cluster, "+
		"not for production (set --replication-cql, e.g. \"dc1=3\"; see docs/OPERATIONS.md)",
		"keyspace", keyspace, "replication", r.String(), "factor", r.MinFactor(), "why", why)
	return true
}
