//go:build integration

package integration

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/stacktest"
	"github.com/heraldhq/herald/store/cassandra"
)

// zombieSessionTimeout is the enrichers' HERALD_SESSION_TIMEOUT in the
// zombie test: how long a silent member keeps its partitions. 6 s is the
// broker's floor (group.min.session.timeout.ms, Kafka's default, which
// scripts/stack/stack.sh keeps); the roles' default is 15 s.
const zombieSessionTimeout = 6 * time.Second

// zombieNoticed matches the lines an enricher logs when it finds out that
// it lost its partitions or its transactional producer (a batch aborted by
// a rebalance, a fenced store writer or producer, a fatal transaction
// error and the supervisor's rebuild). It is only used to report what the
// zombie did: the verdict comes from the inboxes.
var zombieNoticed = regexp.MustCompile(`(?i)fenc|rebalance|revoked|lost|epoch|generation|unknown.member|abort|fatal|restart|stopping`)

// TestZombieEnricherFenced is issue 9's zombie test. Enricher A consumes a
// steady stream of events for 50 users; mid-stream it is frozen with
// SIGSTOP for longer than its group session timeout, so that the group
// evicts it and enricher B (another process and transactional id, the same
// group) takes over its partitions and keeps consuming. A is then resumed
// (SIGCONT) with whatever it was doing in flight: a batch half written to
// Cassandra, an open transaction, records it polled before the freeze. It
// runs until it shows that it noticed (it exits, logs the abort or fencing,
// or rejoins the group as a new member), the stream goes on a little, and
// B (with A, if it rejoined) finishes. Then, per user, herald.deliveries
// (read_committed) and the store must hold every accepted event exactly
// once, at seqs 1..n with prev = seq-1, in production order, no seq given
// to two events, and the unread count must be n: none of the zombie's late
// writes may land.
//
// The moment of the freeze, its least length (8 s to 44 s: on either side
// of franz-go's 40 s transaction timeout, after which the broker aborts
// A's open transaction itself) and whether B joins before the freeze or
// during it are drawn from a seed that is logged; HERALD_IT_ZOMBIE_SEED
// replays one. Whatever the draw, A stays frozen until the group has
// evicted it and B has committed since. The test asserts no timing: it
// waits on observed states (the group's members, the roles' counters,
// the zombie's log), all bounded by one deadline on the whole test.
func TestZombieEnricherFenced(t *testing.T) {
	deadline := time.Now().Add(12 * time.Minute)
	seed := uint64(time.Now().UnixNano())
	if s, err := strconv.ParseUint(os.Getenv("HERALD_IT_ZOMBIE_SEED"), 10, 64); err == nil {
		seed = s
	}
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	var (
		bFirst  = rng.IntN(2) == 0                                                               // B shares the partitions before the freeze
		warmup  = 100 + rng.IntN(900)                                                            // A's committed notifications before it
		jitter  = time.Duration(rng.IntN(300)) * time.Millisecond                                // after one of A's commits
		stopFor = zombieSessionTimeout + 2*time.Second + time.Duration(rng.IntN(37))*time.Second // 8 s to 44 s
		tail    = 2*time.Second + time.Duration(rng.IntN(6))*time.Second                         // stream after A noticed
	)
	t.Logf("seed %d (HERALD_IT_ZOMBIE_SEED=%d replays it): B before the freeze %v, freeze after %d notifications + %s, for %s, stream %s after A noticed",
		seed, seed, bFirst, warmup, jitter, stopFor, tail)

	e := newEnv(t)
	group := e.prefix + "enricher" // the role's group: the topic prefix + "enricher"
	settings := func(txn string) []string {
		return []string{"HERALD_TRANSACTIONAL_ID=" + e.prefix + txn, "HERALD_SESSION_TIMEOUT=" + zombieSessionTimeout.String()}
	}
	adm := admin(t)

	a := e.start("enricher-a", "enricher", settings("enricher-a")...)
	// A stopped process handles no SIGTERM: resume it before the harness
	// stops it (cleanups run last registered first).
	t.Cleanup(func() { _ = a.cmd.Process.Signal(syscall.SIGCONT) })
	// A's member id, taken while it is alone in the group, tells it from B.
	var memberA string
	waitUntil(t, deadline, "enricher A alone and stable in its group", func() bool {
		st, ms := describeGroup(adm, group)
		if st == "Stable" && len(ms) == 1 {
			memberA = ms[0]
			return true
		}
		return false
	}, a)

	users := make([]string, 50)
	for i := range users {
		users[i] = e.u(fmt.Sprintf("z-%d", i))
	}
	const rate = 100 // events/s: a few thousand over the test
	s := startStream(e, producer(t), users, rate)
	defer s.finish() // a failed test must not leave the producer running

	var b *proc
	startB := func() { b = e.start("enricher-b", "enricher", settings("enricher-b")...) }
	if bFirst {
		startB()
	}
	waitUntil(t, deadline, fmt.Sprintf("enricher A past %d notifications", warmup), func() bool {
		return scrapeQuiet(a, "herald_notifications_out_total") >= float64(warmup)
	}, a)
	// Freeze right after one of A's commits plus a random delay, so that
	// repeated runs catch it polling, writing to Cassandra, producing or
	// committing.
	afterProgress(a, 5*time.Second)
	outA := scrapeQuiet(a, "herald_notifications_out_total")
	time.Sleep(jitter)
	if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	frozenAt := time.Now()
	t.Logf("enricher A frozen (SIGSTOP) as member %s, %.0f notifications committed", memberA, outA)
	if !bFirst {
		startB()
	}

	// Resume only once the group has evicted A and B alone holds every
	// partition, and B has gone on committing since: A's in-flight work
	// is then for partitions that are B's.
	waitUntil(t, deadline, "the group without A, B holding every partition", func() bool {
		st, ms := describeGroup(adm, group)
		return st == "Stable" && len(ms) == 1 && ms[0] != memberA
	}, a, b)
	outB := scrapeQuiet(b, "herald_notifications_out_total")
	waitUntil(t, deadline, "enricher B consuming after the takeover", func() bool {
		return scrapeQuiet(b, "herald_notifications_out_total") >= outB+100
	}, b)
	if d := time.Until(frozenAt.Add(stopFor)); d > 0 {
		time.Sleep(d)
	}
	logSize := fileSize(a.log)
	if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	t.Logf("enricher A resumed (SIGCONT) after %s frozen", time.Since(frozenAt).Round(100*time.Millisecond))

	// Let the zombie run until it shows it noticed; 90 s without a sign is
	// recorded, not failed: the inboxes are the verdict.
	how := ""
	noticeBy := time.Now().Add(90 * time.Second)
	for how == "" && time.Now().Before(noticeBy) && time.Now().Before(deadline) {
		select {
		case <-a.done:
			how = "exited (" + a.cmd.ProcessState.String() + ")"
			continue
		default:
		}
		if lines := linesSince(a.log, logSize, zombieNoticed); len(lines) > 0 {
			how = "logged " + lines[0]
		} else if st, ms := describeGroup(adm, group); st == "Stable" && len(ms) == 2 {
			how = "rejoined the group as a new member"
		}
		time.Sleep(200 * time.Millisecond)
	}
	if how == "" {
		how = "showed no sign within 90s"
	}
	t.Logf("enricher A after SIGCONT: %s", how)
	time.Sleep(tail)
	want, distinct := s.finish()
	t.Logf("%d of %d events accepted (%d produces failed) for %d users", distinct, s.sent, s.failed, len(want))

	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	got := deliveriesBy(ctx, t, e, distinct)
	checkZombie(ctx, t, e, want, got)

	alive := "still running"
	select {
	case <-a.done:
		alive = "exited: " + a.cmd.ProcessState.String()
	default:
	}
	_, ms := describeGroup(adm, group)
	t.Logf("enricher A %s at the end (%d group members); its lines after SIGCONT that mention the fencing:\n%s",
		alive, len(ms), strings.Join(first(linesSince(a.log, logSize, zombieNoticed), 8), "\n"))
}

// stream is a steady producer of events, one second of e.load after the
// other until finish: each second's acknowledged ids follow the previous
// second's, so the ids per user stay in production order.
type stream struct {
	stop, done   chan struct{}
	want         map[string][]string
	distinct     int
	sent, failed int
}

func startStream(e *env, cl *kgo.Client, users []string, rate int) *stream {
	s := &stream{stop: make(chan struct{}), done: make(chan struct{}), want: map[string][]string{}}
	go func() {
		defer close(s.done)
		for round := 0; ; round++ {
			select {
			case <-s.stop:
				return
			default:
			}
			res := e.load(cl, fmt.Sprintf("z%d", round), users, rate, time.Second)
			for user, ids := range res.acked {
				s.want[user] = append(s.want[user], ids...)
				s.distinct += len(ids)
			}
			s.sent += res.sent
			s.failed += res.failed
		}
	}()
	return s
}

// finish stops the stream, waits for its last acks and returns the
// accepted event ids per user, in production order, and their number.
// It may be called again.
func (s *stream) finish() (map[string][]string, int) {
	select {
	case <-s.stop:
	default:
		close(s.stop)
	}
	<-s.done
	return s.want, s.distinct
}

func admin(t *testing.T) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(stacktest.KafkaOpts()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// describeGroup returns the group's state and member ids, or "" when the
// broker did not answer (a caller polls again).
func describeGroup(adm *kadm.Client, group string) (string, []string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		return "", nil
	}
	g, ok := gs[group]
	if !ok || g.Err != nil {
		return "", nil
	}
	var ms []string
	for _, m := range g.Members {
		ms = append(ms, m.MemberID)
	}
	return g.State, ms
}

// waitUntil polls cond until it holds; at the test's deadline, or when one
// of procs exits, it fails the test with what it waited for and their logs.
func waitUntil(t *testing.T, deadline time.Time, what string, cond func() bool, procs ...*proc) {
	t.Helper()
	fail := func(why string) {
		var logs []string
		for _, p := range procs {
			logs = append(logs, p.name+":\n"+p.tail())
		}
		t.Fatalf("waiting for %s: %s\n%s", what, why, strings.Join(logs, "\n"))
	}
	for !cond() {
		for _, p := range procs {
			select {
			case <-p.done:
				fail(p.name + " exited")
			default:
			}
		}
		if time.Now().After(deadline) {
			fail("the test's deadline passed")
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func fileSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// linesSince returns the lines of the file at path after offset that match re.
func linesSince(path string, offset int64, re *regexp.Regexp) []string {
	raw, err := os.ReadFile(path)
	if err != nil || int64(len(raw)) < offset {
		return nil
	}
	var out []string
	for _, l := range strings.Split(string(raw[offset:]), "\n") {
		if re.MatchString(l) {
			out = append(out, l)
		}
	}
	return out
}

func first(s []string, n int) []string { return s[:min(len(s), n)] }

// deliveriesBy reads herald.deliveries with read_committed, bounded by
// ctx, until it has seen at least want records, then up to a sentinel
// written to every partition after them, so that a duplicate committed
// meanwhile is read too.
func deliveriesBy(ctx context.Context, t *testing.T, e *env, want int) map[string][]herald.Notification {
	t.Helper()
	topic := e.prefix + "deliveries"
	cl, err := kgo.NewClient(stacktest.KafkaOpts(kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string][]herald.Notification{}
	count, sentinels, partitions := 0, 0, -1
	for partitions < 0 || sentinels < partitions {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("read %d of %d deliveries (%d of %d sentinels) by the test's deadline", count, want, sentinels, partitions)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) == "sentinel" {
				sentinels++
				return
			}
			var n herald.Notification
			if err := jsonUnmarshal(r.Value, &n); err != nil {
				t.Fatalf("bad delivery %s: %v", r.Value, err)
			}
			got[string(r.Key)] = append(got[string(r.Key)], n)
			count++
		})
		if count >= want && partitions < 0 {
			partitions = writeSentinels(t, topic) //nolint:contextcheck // the helper bounds its own produce, like the other tests' reader
		}
	}
	return got
}

// checkZombie checks every user's deliveries and inbox against the events
// accepted for them: compareUser's checks (each event once, seqs 1..n, no
// seq reused, the store and herald.deliveries agreeing), and what the
// zombie could also break: prev = seq-1, the production order, the
// unread count.
func checkZombie(ctx context.Context, t *testing.T, e *env, want map[string][]string, got map[string][]herald.Notification) {
	t.Helper()
	cs := stacktest.Cassandra()
	st, err := cassandra.Open(ctx, cassandra.Config{Hosts: cs.Hosts, Username: cs.User, Password: cs.Password,
		TLS: cs.TLSConfig(), LocalDC: cs.LocalDC, Keyspace: e.keyspace, Consistency: "ONE"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }() // read-only use; nothing to report on close
	var problems []string
	for user, ids := range want {
		stored := listAll(ctx, t, st, user)
		problems = append(problems, compareUser(user, ids, got[user], stored)...)
		problems = append(problems, orderAndLinks(user, "herald.deliveries", ids, got[user])...)
		problems = append(problems, orderAndLinks(user, "the store", ids, stored)...)
		n, err := st.UnreadCount(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		if n != int64(len(ids)) {
			problems = append(problems, fmt.Sprintf("user %s: unread count %d, %d events accepted", user, n, len(ids)))
		}
		if len(problems) > 20 {
			break
		}
	}
	for user := range got {
		if _, ok := want[user]; !ok {
			problems = append(problems, fmt.Sprintf("user %s: deliveries for a user no event was produced for", user))
		}
	}
	if len(problems) > 0 {
		t.Fatalf("%d problems (first ones):\n%s", len(problems), strings.Join(first(problems, 20), "\n"))
	}
}

// orderAndLinks reports, for one user's notifications as read from where,
// the first one whose prev is not seq-1 and the first place where their
// events leave the production order.
func orderAndLinks(user, where string, want []string, ns []herald.Notification) []string {
	var p []string
	for _, n := range ns {
		if n.Prev != n.Seq-1 {
			p = append(p, fmt.Sprintf("user %s: %s has seq %d with prev %d", user, where, n.Seq, n.Prev))
			break
		}
	}
	ids := make([]string, len(ns))
	for i, n := range ns {
		ids[i] = n.EventID
	}
	if !slices.Equal(ids, want) {
		i := 0
		for i < min(len(ids), len(want)) && ids[i] == want[i] {
			i++
		}
		p = append(p, fmt.Sprintf("user %s: %s leaves the production order at seq %d (%d notifications, %d events accepted)",
			user, where, i+1, len(ids), len(want)))
	}
	return p
}
