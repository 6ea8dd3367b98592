//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/stacktest"
	"github.com/heraldhq/herald/policy"
	"github.com/heraldhq/herald/store/cassandra"
)

// The notification policy (issue 12) on the real stack: enricher
// processes with a policy: section in their --config file, crashed,
// stopped and reloaded (SIGHUP) while digest windows are open. The
// verdict is always drawn from the store and herald.deliveries
// (read_committed): every like produced is counted in exactly one digest,
// each digest is stored once at contiguous seqs and delivered once.
//
// Each user gets at most policyMaxEvents likes, so that every window holds
// at most the 10 newest event ids a digest lists: the event ids of all the
// digests of a user are then exactly the likes produced for them, which
// shows that no like was counted in two windows (a replay folding it
// again) and none was lost, not just that the counts add up.

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

// TestPolicyDigestKill9: an enricher with a digest on likes is killed
// with SIGKILL while the likes of 100 users stream in, once it has
// committed some of them (their windows open, holding events; a batch
// likely in flight, its policy state possibly written and its transaction
// not committed); the rest of the likes are produced while it is down,
// and it stays down until every window opened before the crash is due.
// Restarted with the same transactional id, it replays what was not
// committed (with the decisions its state recorded for those offsets),
// closes the past-due windows (by the due scanner's ticks, or the next
// like folded into a past-due window), opens new ones for the later likes
// and closes them when due. Each like must end up in exactly one digest,
// each digest stored and delivered once (checkDigests).
//
// The kill aims at the moment a batch has written its users' policy
// states and not yet committed (the replay of recorded decisions is what
// this test is for): it polls the stored state of one user after the
// other until one records a decision for a record of the user's partition
// that the group has not committed, and kills then; when it sees none
// within 5 s it kills anyway. What the restart replayed is logged either
// way.
func TestPolicyDigestKill9(t *testing.T) {
	deadline := time.Now().Add(3 * time.Minute)
	e := newEnv(t)
	cfg := filepath.Join(e.dir, "herald.yaml")
	writeConfig(t, cfg, digestYAML("like", policyWindow))
	settings := []string{"HERALD_TRANSACTIONAL_ID=" + e.prefix + "enricher", "HERALD_CONFIG=" + cfg}
	a := e.start("enricher-1", "enricher", settings...)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	st := openStore(ctx, t, e)
	adm := admin(t)

	users := make([]string, 100)
	for i := range users {
		users[i] = e.u(fmt.Sprintf("pk-%d", i))
	}
	s := startLikes(e, producer(t), users, policyMaxEvents, 200*time.Millisecond)
	defer s.wait(t) // a failed test must not leave the producer running
	waitUntil(t, deadline, "the enricher committing folded likes", func() bool {
		return metric(t, a, "herald_policy_total", `action="digested"`) > 0
	}, a)
	aimed := "none seen in 5s"
	for i, until := 0, time.Now().Add(5*time.Second); time.Now().Before(until); i++ {
		user := users[i%len(users)]
		if part, ok := s.partition(user); ok && stateAhead(ctx, t, st, adm, e.prefix+"enricher", e.prefix+"events", user, part) {
			aimed = "seen for " + user
			break
		}
	}
	digested := metric(t, a, "herald_policy_total", `action="digested"`)
	produced := s.acked() * len(users)
	a.kill()
	killedAt := time.Now()
	t.Logf("enricher killed with SIGKILL (a state ahead of the commit: %s) after committing %.0f folded likes (%d acknowledged by then, %d in all)",
		aimed, digested, produced, policyMaxEvents*len(users))
	want := s.wait(t)
	// Every window open at the crash opened before it: it is due by
	// killedAt+policyWindow. Stay down past that, so that windows fall
	// due during the outage.
	time.Sleep(time.Until(killedAt.Add(policyWindow + 2*time.Second)))
	// For the log: the folds the stored states hold against the likes the
	// group committed (herald.events holds only likes until the first
	// tick, and no tick is produced while no enricher runs). More folds
	// than committed likes: a batch wrote its states and died before its
	// commit, so the restart replays those likes, which must reuse the
	// decisions recorded for their offsets rather than fold them again.
	folds, committed := storedFolds(ctx, t, st, users), committedRecords(ctx, t, e.prefix+"enricher")
	replay := "no replay of recorded decisions this run"
	if int64(folds) > committed {
		replay = fmt.Sprintf("%d folds recorded but not committed: replayed", int64(folds)-committed)
	}
	t.Logf("at the restart the stored policy states hold %d folded likes, the group committed %d likes (%s)", folds, committed, replay)
	t.Logf("restarting the enricher %s after the kill", time.Since(killedAt).Round(100*time.Millisecond))
	b := e.start("enricher-2", "enricher", settings...)

	inboxes := waitFolded(ctx, t, st, want, deadline, b)
	windows := checkDigests(ctx, t, e, "post-1", want, inboxes)
	t.Logf("%d likes for %d users in digests, each once: %s; restarted enricher: %.0f folded, %.0f ticks produced, %.0f digests emitted",
		policyMaxEvents*len(users), len(users), histogram(windows), metric(t, b, "herald_policy_total", `action="digested"`),
		metric(t, b, "herald_enricher_policy_ticks_total"), metric(t, b, "herald_policy_total", `action="emitted"`))
}

// TestPolicyDigestPartitionMove: two enrichers share the group, each
// folding likes of its partitions' users into open windows; mid-stream
// one of them is stopped (SIGTERM: it leaves the group at once, so its
// partitions move to the other without waiting for the session timeout
// or its open transaction's timeout). The survivor takes over the
// partitions with their open windows, which live in the store: it folds
// the rest of the likes into them, finds them in the due index when due
// and closes each exactly once with the full count (checkDigests).
func TestPolicyDigestPartitionMove(t *testing.T) {
	deadline := time.Now().Add(3 * time.Minute)
	e := newEnv(t)
	cfg := filepath.Join(e.dir, "herald.yaml")
	writeConfig(t, cfg, digestYAML("like", policyWindow))
	group := e.prefix + "enricher"
	adm := admin(t)
	settings := func(txn string) []string {
		return []string{"HERALD_TRANSACTIONAL_ID=" + e.prefix + txn, "HERALD_CONFIG=" + cfg,
			"HERALD_SESSION_TIMEOUT=" + zombieSessionTimeout.String()}
	}
	a := e.start("enricher-a", "enricher", settings("enricher-a")...)
	b := e.start("enricher-b", "enricher", settings("enricher-b")...)
	waitUntil(t, deadline, "both enrichers in the group", func() bool {
		st, ms := describeGroup(adm, group)
		return st == "Stable" && len(ms) == 2
	}, a, b)

	users := make([]string, 40)
	for i := range users {
		users[i] = e.u(fmt.Sprintf("pm-%d", i))
	}
	s := startLikes(e, producer(t), users, policyMaxEvents, 400*time.Millisecond)
	defer s.wait(t) // a failed test must not leave the producer running
	var foldedA, foldedB float64
	waitUntil(t, deadline, "both enrichers committing folded likes", func() bool {
		foldedA = metric(t, a, "herald_policy_total", `action="digested"`)
		foldedB = metric(t, b, "herald_policy_total", `action="digested"`)
		return foldedA > 0 && foldedB > 0
	}, a, b)
	emittedA := metric(t, a, "herald_policy_total", `action="emitted"`)
	rounds := s.acked()
	a.stop(t)
	t.Logf("enricher A stopped (SIGTERM) after %d of %d rounds, having committed %.0f folded likes and emitted %.0f digests; B had folded %.0f",
		rounds, policyMaxEvents, foldedA, emittedA, foldedB)
	waitUntil(t, deadline, "enricher B alone in the group", func() bool {
		st, ms := describeGroup(adm, group)
		return st == "Stable" && len(ms) == 1
	}, b)
	want := s.wait(t)

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	st := openStore(ctx, t, e)
	inboxes := waitFolded(ctx, t, st, want, deadline, b)
	windows := checkDigests(ctx, t, e, "post-1", want, inboxes)
	t.Logf("%d likes for %d users in digests, each once: %s; B emitted %.0f digests",
		policyMaxEvents*len(users), len(users), histogram(windows), metric(t, b, "herald_policy_total", `action="emitted"`))
}

// TestPolicyReloadSIGHUP: the policy of a running enricher changes on
// SIGHUP. It starts with a policy that does not govern likes: likes are
// delivered one by one. The config file gains a digest on likes and the
// process gets SIGHUP: the next likes come as one digest. The file then
// gets an invalid policy and another SIGHUP: the process logs the error,
// keeps running and keeps the digest in force.
func TestPolicyReloadSIGHUP(t *testing.T) {
	deadline := time.Now().Add(3 * time.Minute)
	e := newEnv(t)
	cfg := filepath.Join(e.dir, "herald.yaml")
	writeConfig(t, cfg, "policy:\n  types:\n    marketing:\n      daily_cap: 2\n")
	p := e.start("enricher", "enricher", "HERALD_TRANSACTIONAL_ID="+e.prefix+"enricher", "HERALD_CONFIG="+cfg)
	user := e.u("reload")
	cl := producer(t)
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	st := openStore(ctx, t, e)
	var inbox []herald.Notification
	waitInbox := func(what string, n int) {
		t.Helper()
		waitUntil(t, deadline, what, func() bool {
			inbox = listAll(ctx, t, st, user)
			return len(inbox) >= n
		}, p)
	}
	likesFrom := func(from, to int) []string {
		var ids []string
		for i := from; i < to; i++ {
			id := fmt.Sprintf("like-%02d", i)
			e.produce(t, cl, typedRecord(id, user, "like", "liked "+id, "post-1"))
			ids = append(ids, id)
		}
		return ids
	}
	reload := func(result string) {
		t.Helper()
		before := metric(t, p, "herald_policy_reloads_total", `result="`+result+`"`)
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, deadline, "a reload with result "+result, func() bool {
			return metric(t, p, "herald_policy_reloads_total", `result="`+result+`"`) > before
		}, p)
	}
	// wantDigest checks that n is a digest of exactly ids (newest first).
	wantDigest := func(n herald.Notification, ids []string) {
		t.Helper()
		d, ok := digestOf(n)
		if !ok {
			t.Fatalf("seq %d is %s, want a digest of %v", n.Seq, n.EventID, ids)
		}
		newestFirst := make([]string, len(ids))
		for i, id := range ids {
			newestFirst[len(ids)-1-i] = id
		}
		if d.Count != len(ids) || strings.Join(d.EventIDs, ",") != strings.Join(newestFirst, ",") {
			t.Fatalf("digest %s (seq %d) = count %d ids %v, want %v", n.EventID, n.Seq, d.Count, d.EventIDs, newestFirst)
		}
	}

	// 1. Likes are not governed: delivered one by one.
	single := likesFrom(0, 3)
	waitInbox("the ungoverned likes", 3)
	for i, n := range inbox {
		if n.EventID != single[i] {
			t.Fatalf("before the reload: inbox %d is %s, want %s", i, n.EventID, single[i])
		}
	}

	// 2. A digest on likes, put in force by SIGHUP.
	writeConfig(t, cfg, digestYAML("like", 3*time.Second))
	reload("ok")
	held := likesFrom(3, 7)
	waitInbox("the first digest", 4)
	wantDigest(inbox[3], held)

	// 3. An invalid policy: refused, logged, the digest stays in force.
	logSize := fileSize(p.log)
	writeConfig(t, cfg, digestYAML("like", 0))
	reload("error")
	select {
	case <-p.done:
		t.Fatalf("the enricher exited on an invalid policy:\n%s", p.tail())
	default:
	}
	if lines := linesSince(p.log, logSize, regexpPolicyReloadFailed); len(lines) == 0 {
		t.Errorf("no reload error in the log after the invalid policy:\n%s", p.tail())
	} else {
		t.Logf("logged: %s", lines[0])
	}
	held2 := likesFrom(7, 10)
	waitInbox("the second digest", 5)
	wantDigest(inbox[4], held2)
	if len(inbox) != 5 {
		t.Fatalf("inbox has %d notifications, want 5: %v", len(inbox), eventIDsOf(inbox))
	}

	got := deliveriesBy(ctx, t, e, len(inbox))
	ids := eventIDsOf(inbox)
	problems := append(compareUser(user, ids, got[user], inbox), orderAndLinks(user, "herald.deliveries", ids, got[user])...)
	if len(problems) > 0 {
		t.Fatalf("%d problems:\n%s", len(problems), strings.Join(first(problems, 20), "\n"))
	}
}

func eventIDsOf(ns []herald.Notification) []string {
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.EventID
	}
	return ids
}

// TestPolicyThroughput is the real-stack half of issue 12's benchmark
// (the in-process one is pipeline's BenchmarkEnricherPolicy): the
// enricher's records/s on the same events, half likes and half mentions
// for 1000 users, with no policy and with a digest on likes (an hour: no
// window closes during the run). It asserts nothing about speed; it logs
// both figures and their ratio. Opt-in (HERALD_BENCH_POLICY=1), and
// meaningful only with a binary built without -race
// (HERALD_IT_BIN=$(go build -o … ./cmd/herald)); HERALD_BENCH_POLICY_EVENTS
// sets the number of events (20000).
func TestPolicyThroughput(t *testing.T) {
	if os.Getenv("HERALD_BENCH_POLICY") != "1" {
		t.Skip("a benchmark: set HERALD_BENCH_POLICY=1 to run it")
	}
	n := 20000
	if v, err := strconv.Atoi(os.Getenv("HERALD_BENCH_POLICY_EVENTS")); err == nil && v > 0 {
		n = v
	}
	if os.Getenv("HERALD_IT_BIN") == "" {
		t.Log("the roles run from a -race build: the figures are the race detector's (set HERALD_IT_BIN)")
	}
	rates := map[string]float64{}
	for _, mode := range []string{"none", "digest-half"} {
		t.Run(mode, func(t *testing.T) {
			rates[mode] = policyThroughput(t, mode, n)
		})
	}
	if rates["none"] > 0 && rates["digest-half"] > 0 {
		t.Logf("%d events: none %.0f records/s, digest-half %.0f records/s, ratio digest-half/none %.2f",
			n, rates["none"], rates["digest-half"], rates["digest-half"]/rates["none"])
	}
}

// policyThroughput runs one mode of TestPolicyThroughput and returns its
// records/s: from the first produce until the enricher has committed
// every event (herald_events_in_total counts a batch once committed).
func policyThroughput(t *testing.T, mode string, n int) float64 {
	deadline := time.Now().Add(10 * time.Minute)
	e := newEnv(t)
	cfg := filepath.Join(e.dir, "herald.yaml")
	content := "policy:\n  types: {}\n"
	if mode == "digest-half" {
		content = digestYAML("like", time.Hour)
	}
	writeConfig(t, cfg, content)
	p := e.start("enricher", "enricher", "HERALD_TRANSACTIONAL_ID="+e.prefix+"enricher", "HERALD_CONFIG="+cfg)
	cl := producer(t)
	e.produce(t, cl, typedRecord("warm", e.u("warm"), "mention", "warm", ""))
	waitUntil(t, deadline, "the warm-up event", func() bool {
		return metric(t, p, "herald_events_in_total") >= 1
	}, p)

	const users = 1000
	recs := make([]*kgo.Record, n)
	likes := 0
	for i := range recs {
		user := e.u(fmt.Sprint("tp-", i%users))
		id := fmt.Sprint("tp-", i)
		if (i/users)%2 == 1 {
			recs[i] = typedRecord(id, user, "like", "Ada liked your post", "post-1")
			likes++
		} else {
			recs[i] = typedRecord(id, user, "mention", "Ada mentioned you in #general", "")
		}
		recs[i].Topic = e.prefix + "events"
	}
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	produced := time.Since(start)
	waitUntil(t, deadline, fmt.Sprintf("the enricher committing %d events", n), func() bool {
		return metric(t, p, "herald_events_in_total") >= float64(n+1)
	}, p)
	elapsed := time.Since(start)
	rate := float64(n) / elapsed.Seconds()
	out := metric(t, p, "herald_notifications_out_total")
	digested := metric(t, p, "herald_policy_total", `action="digested"`)
	t.Logf("%s: %d events (%d likes) in %s (produced in %s): %.0f records/s; %.0f notifications out, %.0f likes digested",
		mode, n, likes, elapsed.Round(time.Millisecond), produced.Round(time.Millisecond), rate, out, digested)
	var stages []string
	for _, stage := range []string{"preferences", "policy", "claim", "append", "produce", "commit"} {
		stages = append(stages, fmt.Sprintf("%s %.1fs", stage, metric(t, p, "herald_enricher_stage_seconds_sum", `stage="`+stage+`"`)))
	}
	t.Logf("%s: time in the batch stages, summed over batches: %s", mode, strings.Join(stages, ", "))
	wantOut, wantDigested := float64(n+1), 0.0
	if mode == "digest-half" {
		wantOut, wantDigested = float64(n-likes+1), float64(likes)
	}
	if out != wantOut || digested != wantDigested {
		t.Errorf("%s: %.0f notifications out and %.0f digested, want %.0f and %.0f", mode, out, digested, wantOut, wantDigested)
	}
	return rate
}
