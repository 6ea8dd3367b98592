//go:build integration

package integration

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
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
