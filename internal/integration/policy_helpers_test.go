//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/stacktest"
	"github.com/heraldhq/herald/policy"
	"github.com/heraldhq/herald/store/cassandra"
)

// The helpers of the policy tests (policy_test.go, policy_bench_test.go).

// policyWindow is the digest window of the crash tests: long enough that
// windows are still open when the enricher dies or its partitions move.
const policyWindow = 20 * time.Second

// regexpPolicyReloadFailed matches the log line of a refused reload.
var regexpPolicyReloadFailed = regexp.MustCompile(`policy reload failed`)

// policyMaxEvents is the most event ids a digest lists (the newest 10).
const policyMaxEvents = 10

// digestYAML is a --config file with a digest on type typ.
func digestYAML(typ string, window time.Duration) string {
	return fmt.Sprintf("policy:\n  types:\n    %s:\n      digest: {window: %s}\n", typ, window)
}

// writeConfig writes the --config file at path through a rename, so that
// a SIGHUP never reads half of it.
func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// typedRecord is an event record of type typ for user, with a collapse key
// (the digest's key) when collapse is set.
func typedRecord(id, user, typ, title, collapse string) *kgo.Record {
	m := map[string]any{"id": id, "user_id": user, "type": typ, "title": title,
		"created_at": time.Now().UTC().Format(time.RFC3339Nano)}
	if collapse != "" {
		m["collapse_key"] = collapse
	}
	v, _ := json.Marshal(m)
	return &kgo.Record{Key: []byte(user), Value: v}
}

// digestData is data.digest of a digest notification.
type digestData struct {
	Count    int       `json:"count"`
	Key      string    `json:"key"`
	FirstAt  time.Time `json:"first_at"`
	LastAt   time.Time `json:"last_at"`
	EventIDs []string  `json:"event_ids"`
	Titles   []string  `json:"titles"`
}

// digestOf returns n's data.digest, false when n is not a digest.
func digestOf(n herald.Notification) (digestData, bool) {
	var data struct {
		Digest *digestData `json:"digest"`
	}
	if !strings.HasPrefix(n.EventID, "herald-digest-") || json.Unmarshal(n.Data, &data) != nil || data.Digest == nil {
		return digestData{}, false
	}
	return *data.Digest, true
}

// openStore opens the env's keyspace for the test's reads; closed at the
// test's end.
func openStore(ctx context.Context, t *testing.T, e *env) *cassandra.Store {
	t.Helper()
	cs := stacktest.Cassandra()
	st, err := cassandra.Open(ctx, cassandra.Config{Hosts: cs.Hosts, Username: cs.User, Password: cs.Password,
		TLS: cs.TLSConfig(), LocalDC: cs.LocalDC, Keyspace: e.keyspace, Consistency: "ONE"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() }) // read-only use; nothing to report on close
	return st
}

// folded is the sum of the digest counts in ns.
func folded(ns []herald.Notification) int {
	n := 0
	for _, x := range ns {
		if d, ok := digestOf(x); ok {
			n += d.Count
		}
	}
	return n
}

// waitFolded waits until the digests in the inbox of every user of want
// count at least as many events as were produced for them, and returns
// the inboxes. Windows close one PolicyTick after they are due, so this
// is bounded by the test's deadline only.
func waitFolded(ctx context.Context, t *testing.T, st *cassandra.Store, want map[string][]string, deadline time.Time, procs ...*proc) map[string][]herald.Notification {
	t.Helper()
	inboxes := map[string][]herald.Notification{}
	pending := func() []string {
		var users []string
		for user, ids := range want {
			if folded(inboxes[user]) >= len(ids) {
				continue
			}
			inboxes[user] = listAll(ctx, t, st, user)
			if folded(inboxes[user]) < len(ids) {
				users = append(users, user)
			}
		}
		return users
	}
	logged := false
	waitUntil(t, deadline, "every like in a digest", func() bool {
		left := pending()
		if len(left) > 0 && !logged && time.Until(deadline) < 10*time.Second {
			logged = true
			sort.Strings(left)
			t.Logf("%d users still short of digests near the deadline, first %v", len(left), first(left, 5))
		}
		return len(left) == 0
	}, procs...)
	// Read every inbox once more: a digest stored after the user's sum was
	// reached (one counted twice) must show.
	for user := range want {
		inboxes[user] = listAll(ctx, t, st, user)
	}
	return inboxes
}

// checkDigests is the verdict of the policy crash tests. For each user of
// want (the like ids produced for them, at most policyMaxEvents): the inbox
// holds digests only, of key collapse, each listing count event ids (a
// window of at most 10 lists them all), no like in two digests, the likes
// of all the digests exactly the likes produced; then herald.deliveries
// holds each of those digests exactly once, at the seqs of the store,
// 1..n with prev = seq-1 (compareUser, orderAndLinks). It returns the
// number of digests per user, for the log.
func checkDigests(ctx context.Context, t *testing.T, e *env, collapse string, want map[string][]string, inboxes map[string][]herald.Notification) map[string]int {
	t.Helper()
	var problems []string
	windows := map[string]int{}
	total := 0
	for user, ids := range want {
		seen := map[string]string{}
		for _, n := range inboxes[user] {
			d, ok := digestOf(n)
			if !ok {
				problems = append(problems, fmt.Sprintf("user %s: seq %d is event %s, not a digest (a like delivered on its own)", user, n.Seq, n.EventID))
				continue
			}
			windows[user]++
			if d.Key != collapse || n.Type != "like" {
				problems = append(problems, fmt.Sprintf("user %s: digest %s has type %q key %q, want like/%s", user, n.EventID, n.Type, d.Key, collapse))
			}
			if d.Count < 1 || d.Count > policyMaxEvents || len(d.EventIDs) != d.Count {
				problems = append(problems, fmt.Sprintf("user %s: digest %s has count %d and %d event ids", user, n.EventID, d.Count, len(d.EventIDs)))
			}
			for _, id := range d.EventIDs {
				if other, dup := seen[id]; dup {
					problems = append(problems, fmt.Sprintf("user %s: like %s counted in digests %s and %s", user, id, other, n.EventID))
				}
				seen[id] = n.EventID
			}
		}
		if c := folded(inboxes[user]); c != len(ids) {
			problems = append(problems, fmt.Sprintf("user %s: digests count %d likes, %d produced", user, c, len(ids)))
		}
		for _, id := range ids {
			if _, ok := seen[id]; !ok {
				problems = append(problems, fmt.Sprintf("user %s: like %s in no digest", user, id))
			}
			delete(seen, id)
		}
		for id, dg := range seen {
			problems = append(problems, fmt.Sprintf("user %s: digest %s lists %s, never produced", user, dg, id))
		}
		total += len(inboxes[user])
		if len(problems) > 20 {
			break
		}
	}
	if len(problems) == 0 {
		got := deliveriesBy(ctx, t, e, total)
		for user := range want {
			stored := inboxes[user]
			ids := make([]string, len(stored))
			for i, n := range stored {
				ids[i] = n.EventID
			}
			problems = append(problems, compareUser(user, ids, got[user], stored)...)
			problems = append(problems, orderAndLinks(user, "herald.deliveries", ids, got[user])...)
			problems = append(problems, orderAndLinks(user, "the store", ids, stored)...)
		}
		for user := range got {
			if _, ok := want[user]; !ok {
				problems = append(problems, fmt.Sprintf("user %s: deliveries for a user no event was produced for", user))
			}
		}
	}
	if len(problems) > 0 {
		t.Fatalf("%d problems (first ones):\n%s", len(problems), strings.Join(first(problems, 20), "\n"))
	}
	return windows
}

// storedFolds is the number of events held in the open windows of the
// users' stored policy states.
func storedFolds(ctx context.Context, t *testing.T, st *cassandra.Store, users []string) int {
	t.Helper()
	n := 0
	for _, user := range users {
		raw, err := st.PolicyState(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		ps, err := policy.Decode(raw)
		if err != nil {
			t.Fatalf("policy state of %s: %v", user, err)
		}
		for _, w := range ps.Windows {
			n += w.Count
		}
	}
	return n
}

// stateAhead reports whether user's stored policy state records a
// decision for a record of the user's partition (of topic) at or past
// group's committed offset: a batch wrote the state and has not committed.
func stateAhead(ctx context.Context, t *testing.T, st *cassandra.Store, adm *kadm.Client, group, topic, user string, partition int32) bool {
	t.Helper()
	raw, err := st.PolicyState(ctx, user)
	if err != nil || len(raw) == 0 {
		return false
	}
	ps, err := policy.Decode(raw)
	if err != nil || len(ps.Decisions) == 0 {
		return false
	}
	last := ps.Decisions[len(ps.Decisions)-1].Offset // sorted ascending
	resps, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		return false
	}
	o, ok := resps.Lookup(topic, partition)
	if !ok || o.Err != nil {
		return last >= 0 // nothing committed yet on the partition
	}
	return last >= o.At
}

// committedRecords is the sum of the committed offsets of group: the
// records it consumed, on a topic of records only (no transaction markers).
func committedRecords(ctx context.Context, t *testing.T, group string) int64 {
	t.Helper()
	resps, err := admin(t).FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	resps.Each(func(o kadm.OffsetResponse) {
		if o.Err == nil && o.At > 0 {
			n += o.At
		}
	})
	return n
}

// histogram renders how many users had how many digests.
func histogram(windows map[string]int) string {
	h := map[int]int{}
	for _, n := range windows {
		h[n]++
	}
	var keys []int
	for k := range h {
		keys = append(keys, k)
	}
	sort.Ints(keys)
	var parts []string
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%d user(s) with %d digest(s)", h[k], k))
	}
	return strings.Join(parts, ", ")
}

// likeStream produces rounds of likes in the background, one like per
// user a round (like-00, like-01, …), a round every `every`: the rounds
// go on while the test kills or stops an enricher. Its goroutine does not
// fail the test: wait returns the likes acknowledged per user (in round
// order, each user's likes in one partition, so in order) and the first
// produce error.
type likeStream struct {
	done   chan struct{}
	rounds int // rounds acknowledged so far, for the log
	want   map[string][]string
	err    error
	mu     sync.Mutex
	// part is the partition of each user's likes, once one is acknowledged.
	part map[string]int32
}

func startLikes(e *env, cl *kgo.Client, users []string, rounds int, every time.Duration) *likeStream {
	s := &likeStream{done: make(chan struct{}), want: map[string][]string{}, part: map[string]int32{}}
	go func() {
		defer close(s.done)
		for r := range rounds {
			id := fmt.Sprintf("like-%02d", r)
			recs := make([]*kgo.Record, len(users))
			for i, user := range users {
				recs[i] = typedRecord(id, user, "like", fmt.Sprintf("liker %d liked your post", r), "post-1")
				recs[i].Topic = e.prefix + "events"
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			err := cl.ProduceSync(ctx, recs...).FirstErr()
			cancel()
			s.mu.Lock()
			if err != nil {
				s.err = err
				s.mu.Unlock()
				return
			}
			for i, user := range users {
				s.want[user] = append(s.want[user], id)
				s.part[user] = recs[i].Partition
			}
			s.rounds++
			s.mu.Unlock()
			time.Sleep(every)
		}
	}()
	return s
}

// acked is the number of rounds acknowledged so far.
func (s *likeStream) acked() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.rounds
}

// partition is the partition of user's likes, false before the first is
// acknowledged.
func (s *likeStream) partition(user string) (int32, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.part[user]
	return p, ok
}

// wait waits for the last round and fails the test if a produce failed.
func (s *likeStream) wait(t *testing.T) map[string][]string {
	t.Helper()
	<-s.done
	if s.err != nil {
		t.Fatalf("producing likes: %v", s.err)
	}
	return s.want
}

func eventIDsOf(ns []herald.Notification) []string {
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.EventID
	}
	return ids
}
