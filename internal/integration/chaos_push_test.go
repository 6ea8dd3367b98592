//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery/push/pushfake"
	"github.com/heraldhq/herald/internal/stacktest"
	"github.com/heraldhq/herald/store/cassandra"
)

// The chaos suite's offline half (issue 10: "every offline device got each
// push once"). A run with push (the pusher scenarios, or every scenario
// with HERALD_CHAOS_PUSH=all) adds to its deployment an API (to register
// devices, as a client would), a `herald pusher` and the fake APNs and FCM
// it sends to (push_test.go's startPushFakes), and chaosOffline users who
// never open a WebSocket and own one phone each, half iOS (APNs), half
// Android (FCM). The stream sends them events at the online users' rate;
// the gateways' routers turn each into a herald.push job, the pusher into
// one send. After the run every accepted event of an offline user must
// have been answered 200 exactly once for its device with the
// notification's herald_id:
//
//   - missing: no 200 push for it (or the event is not in the inbox);
//   - dup: a second 200 push that a phone would show as a second
//     notification;
//   - resent (same collapse id): a second 200 push of a notification
//     whose first copy was sent before a kill -9 of the pusher, carrying
//     the same collapse id as the first (apns-collapse-id; for FCM the
//     Android collapse_key, else notification.tag, which is what replaces
//     a shown notification on Android; apns-collapse-id for an iOS
//     device through FCM), at most one more copy per kill, and in total
//     no more than the crashed pusher could have had in flight. The
//     Pusher is at least once with per-device progress marks: a send made
//     between its mark's write and a crash is made again, and the stable
//     collapse id makes the copy replace the first on the phone
//     (pipeline/doc.go, "The Pusher"). Only pusher-kill9 allows them; any
//     other resend counts as dup.
//
// Missing and dup fail the run; resent is reported.

// chaosOffline is the number of offline users (with one phone each) of a
// run with push.
const chaosOffline = 12

// chaosPushAll reports whether HERALD_CHAOS_PUSH=all asks for the pusher
// in every scenario, not only in the pusher's own.
func chaosPushAll() bool { return os.Getenv("HERALD_CHAOS_PUSH") == "all" }

// chaosPushHeader is the push columns of a run's line (chaosHeader).
const chaosPushHeader = " pushes missing / dup | pushes resent (same collapse id) | max push latency |"

// chaosPush is the offline half of a run: the roles, fakes and users.
type chaosPush struct {
	e       *env
	fakes   *pushfake.Fakes
	config  string
	api     *proc
	pusher  *proc
	resends bool // the scenario kills the pusher with SIGKILL: resends of what was in flight are allowed

	users  []string
	tokens map[string]string // the phone of each user

	mu    sync.Mutex
	kills []pushKill
}

// pushKill is a SIGKILL of the pusher: when it returned (the process had
// exited, so every request it made had arrived at the fakes) and how many
// 200 pushes to the run's phones the fakes had answered by then.
type pushKill struct {
	at   time.Time
	sent int
}

// startChaosPush starts the offline half of run r and registers the
// users' phones through the API.
func startChaosPush(t *testing.T, r *chaosRun, resends bool) *chaosPush {
	t.Helper()
	cp := &chaosPush{e: r.e, resends: resends, tokens: map[string]string{}}
	cp.fakes, cp.config = startPushFakes(t, r.e)
	cp.api = r.e.start(r.name("api"), "api", "HERALD_GATEWAY_ID="+r.e.prefix+"api", "HERALD_CONFIG="+cp.config)
	cp.startPusher(t, r)
	for i := range chaosOffline {
		user := r.e.u(fmt.Sprintf("offline-%d", i))
		platform := "ios"
		if i%2 == 1 {
			platform = "android"
		}
		tok := fmt.Sprintf("chaos-%s-%d", r.e.id, i)
		body := fmt.Sprintf(`{"platform":%q,"token":%q,"app_id":%q}`, platform, tok, pushApp)
		if code, m := apiDo(t, cp.api, "POST", "/v1/devices", token(t, user), body); code != http.StatusCreated {
			t.Fatalf("POST /v1/devices %s: %d %v", body, code, m)
		}
		cp.users = append(cp.users, user)
		cp.tokens[user] = tok
	}
	return cp
}

// startPusher starts (or restarts) the run's pusher, always with the same
// group instance id: a restarted pusher takes its partitions back at
// once, without a rebalance.
func (cp *chaosPush) startPusher(t *testing.T, r *chaosRun) {
	t.Helper()
	cp.pusher = r.e.start(r.name("pusher"), "pusher", "HERALD_CONFIG="+cp.config,
		"HERALD_GROUP_INSTANCE_ID="+r.e.prefix+"pusher")
}

// kill crashes the pusher (SIGKILL) and records the kill.
func (cp *chaosPush) kill() {
	cp.pusher.kill()
	k := pushKill{at: time.Now(), sent: len(cp.delivered())}
	cp.mu.Lock()
	cp.kills = append(cp.kills, k)
	cp.mu.Unlock()
}

// procs is the processes whose exit a wait should report: the pusher.
func (cp *chaosPush) procs() []*proc {
	if cp == nil {
		return nil
	}
	return []*proc{cp.pusher}
}

// delivered is the fakes' 200 answers to the run's phones, in arrival
// order.
func (cp *chaosPush) delivered() []pushfake.Record {
	mine := map[string]bool{}
	for _, tok := range cp.tokens {
		mine[tok] = true
	}
	var out []pushfake.Record
	for _, r := range cp.fakes.Pushes() {
		if r.Status == http.StatusOK && mine[r.Token] {
			out = append(out, r)
		}
	}
	return out
}

// receivingAfter reports whether every phone has been answered a 200 for
// a request that arrived after t (a push sent after a restart comes from
// the new pusher). Without push it holds.
func (cp *chaosPush) receivingAfter(t time.Time) bool {
	if cp == nil {
		return true
	}
	got := map[string]bool{}
	for _, r := range cp.delivered() {
		if r.At.After(t) {
			got[r.Token] = true
		}
	}
	return len(got) == len(cp.tokens)
}

// caughtUp reports whether every phone has been pushed as many distinct
// events as its user has accepted ones.
func (cp *chaosPush) caughtUp(want map[string][]string) bool {
	if cp == nil {
		return true
	}
	events := map[string]map[string]bool{}
	for _, r := range cp.delivered() {
		if events[r.Token] == nil {
			events[r.Token] = map[string]bool{}
		}
		events[r.Token][pushIDs(r).EventID] = true
	}
	for _, u := range cp.users {
		if len(events[cp.tokens[u]]) < len(want[u]) {
			return false
		}
	}
	return true
}

// pushVerdict is what the fakes show against the offline users' inboxes.
type pushVerdict struct {
	missing, dup, resent int
	sent, failed         int // 200 answers to the run's phones; other answers
	maxLat               time.Duration
	problems             []string
}

// cells is the push columns of the run's line ("–" without push).
func (v *pushVerdict) cells() string {
	if v == nil {
		return " – | – | – |"
	}
	return fmt.Sprintf(" %d / %d | %d | %s |", v.missing, v.dup, v.resent, round(v.maxLat))
}

// verdict waits (up to deadline) until every phone has been pushed each
// of its user's accepted events, then a settling while for late copies,
// and judges the pushes against the inboxes (see the top of the file).
// faultAt bounds the latency column: the worst time from a notification's
// creation to its first 200 push, over the notifications created from a
// second before the fault on.
func (cp *chaosPush) verdict(ctx context.Context, t *testing.T, want map[string][]string, faultAt, deadline time.Time) *pushVerdict {
	t.Helper()
	if cp == nil {
		return nil
	}
	for !cp.caughtUp(want) && time.Now().Before(deadline) {
		time.Sleep(200 * time.Millisecond)
	}
	time.Sleep(2 * time.Second) // a copy in a retry topic or a late resend shows meanwhile
	cs := stacktest.Cassandra()
	st, err := cassandra.Open(ctx, cassandra.Config{Hosts: cs.Hosts, Username: cs.User, Password: cs.Password,
		TLS: cs.TLSConfig(), LocalDC: cs.LocalDC, Keyspace: cp.e.keyspace, Consistency: "ONE"})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = st.Close() }() // read-only use; nothing to report on close

	v := &pushVerdict{}
	byToken := map[string]map[string][]pushfake.Record{} // token → herald_id → 200 answers, in arrival order
	mine := map[string]bool{}
	for _, tok := range cp.tokens {
		mine[tok] = true
	}
	for _, r := range cp.fakes.Pushes() {
		if !mine[r.Token] {
			continue
		}
		if r.Status != http.StatusOK {
			v.failed++
			continue
		}
		v.sent++
		id := pushIDs(r).ID
		if byToken[r.Token] == nil {
			byToken[r.Token] = map[string][]pushfake.Record{}
		}
		byToken[r.Token][id] = append(byToken[r.Token][id], r)
	}
	cp.mu.Lock()
	kills := append([]pushKill(nil), cp.kills...)
	cp.mu.Unlock()
	inFlight := 0 // the most the crashed pushers could have resent
	for _, k := range kills {
		inFlight += min(k.sent, pusherMaxPollRecords)
	}

	for _, u := range cp.users {
		tok := cp.tokens[u]
		stored := map[string]herald.Notification{}
		for _, n := range listAll(ctx, t, st, u) {
			if _, ok := stored[n.EventID]; !ok {
				stored[n.EventID] = n
			}
		}
		expected := map[string]bool{}
		for _, ev := range want[u] {
			n, ok := stored[ev]
			if !ok {
				v.missing++
				v.problems = append(v.problems, fmt.Sprintf("user %s: accepted event %s is not in the inbox, so never pushed", u, ev))
				continue
			}
			expected[n.ID] = true
			copies := byToken[tok][n.ID]
			if len(copies) == 0 {
				v.missing++
				v.problems = append(v.problems, fmt.Sprintf("user %s: no 200 push to %s of notification %s (seq %d, event %s)", u, tok, n.ID, n.Seq, ev))
				continue
			}
			if ids := pushIDs(copies[0]); ids.EventID != ev || ids.Seq != fmt.Sprint(n.Seq) {
				v.problems = append(v.problems, fmt.Sprintf("user %s: the push of notification %s carries event %s seq %s, the inbox has event %s seq %d",
					u, n.ID, ids.EventID, ids.Seq, ev, n.Seq))
			}
			if n.CreatedAt.After(faultAt.Add(-time.Second)) {
				v.maxLat = max(v.maxLat, copies[0].At.Sub(n.CreatedAt))
			}
			resent, dup, why := judgeCopies(copies, kills, cp.resends)
			v.resent += resent
			v.dup += dup
			if dup > 0 {
				v.problems = append(v.problems, fmt.Sprintf("user %s: notification %s (seq %d) pushed %d times to %s: %s", u, n.ID, n.Seq, len(copies), tok, why))
			}
		}
		for id, copies := range byToken[tok] {
			if !expected[id] {
				v.dup += len(copies)
				v.problems = append(v.problems, fmt.Sprintf("user %s: %d pushes to %s of notification %q, which is no accepted event's (event %s)",
					u, len(copies), tok, id, pushIDs(copies[0]).EventID))
			}
		}
	}
	if v.resent > inFlight {
		v.problems = append(v.problems, fmt.Sprintf("%d notifications resent after %d kill(s), more than the %d that could have been in flight",
			v.resent, len(kills), inFlight))
		v.dup += v.resent - inFlight
	}
	sort.Strings(v.problems)
	return v
}

// judgeCopies sorts the extra copies of one notification to one phone
// (copies[1:]) into resends a phone collapses into the first and
// duplicates it would show, and says why when there is a duplicate. A
// copy is a resend only when resends are allowed (a kill -9 of the
// pusher), every copy carries the first's non-empty collapse id, the
// first was sent before a kill, and there is at most one copy per kill
// made after the first.
func judgeCopies(copies []pushfake.Record, kills []pushKill, resends bool) (resent, dup int, why string) {
	extra := len(copies) - 1
	if extra == 0 {
		return 0, 0, ""
	}
	if !resends {
		return 0, extra, "not a kill -9 of the pusher: no resend is allowed"
	}
	cid := collapseID(copies[0])
	if cid == "" {
		return 0, extra, "the first copy has no collapse id"
	}
	for _, c := range copies[1:] {
		if collapseID(c) != cid {
			return 0, extra, fmt.Sprintf("collapse ids %q and %q differ: the phone shows both", cid, collapseID(c))
		}
	}
	after := 0 // kills after the first copy
	for _, k := range kills {
		if copies[0].At.Before(k.at) {
			after++
		}
	}
	if extra > after {
		return after, extra - after, fmt.Sprintf("%d copies after the first, and only %d kill(s) after it", extra, after)
	}
	return extra, 0, ""
}

// collapseID is the id a phone collapses a push under: apns-collapse-id
// for APNs; for FCM the Android collapse_key, else the Android
// notification tag, else the apns-collapse-id header of the APNs block.
func collapseID(r pushfake.Record) string {
	if r.Provider == pushfake.APNs {
		return r.Headers["apns-collapse-id"]
	}
	var m struct {
		Message struct {
			Android struct {
				CollapseKey  string `json:"collapse_key"`
				Notification struct {
					Tag string `json:"tag"`
				} `json:"notification"`
			} `json:"android"`
			APNs struct {
				Headers map[string]string `json:"headers"`
			} `json:"apns"`
		} `json:"message"`
	}
	if json.Unmarshal(r.Payload, &m) != nil {
		return ""
	}
	switch a := m.Message.Android; {
	case a.CollapseKey != "":
		return a.CollapseKey
	case a.Notification.Tag != "":
		return a.Notification.Tag
	}
	return m.Message.APNs.Headers["apns-collapse-id"]
}

// pushIDs is parseIDs, an unreadable payload having no ids (it then
// counts as a push of no accepted notification).
func pushIDs(r pushfake.Record) heraldIDs {
	ids, _ := parseIDs(r)
	return ids
}

// stream is the users the run's stream sends to and its rate: the online
// users at chaosRate, and with push the offline users too, at the same
// rate per user.
func (cp *chaosPush) stream(online []string) ([]string, int) {
	if cp == nil {
		return online, chaosRate
	}
	all := append(append([]string(nil), online...), cp.users...)
	return all, chaosRate * len(all) / len(online)
}

// report logs the push side of a run and fails it on a missing or
// doubled push.
func (cp *chaosPush) report(t *testing.T, scenario string, seed uint64, v *pushVerdict) {
	t.Helper()
	if cp == nil {
		return
	}
	cp.mu.Lock()
	kills := append([]pushKill(nil), cp.kills...)
	cp.mu.Unlock()
	var ks []string
	for _, k := range kills {
		ks = append(ks, fmt.Sprintf("at %s after %d pushes", k.at.UTC().Format("15:04:05.000"), k.sent))
	}
	t.Logf("push: %d offline phones, %d pushes answered 200 (%d resent under the same collapse id), %d answered otherwise; pusher kills: %v",
		len(cp.tokens), v.sent, v.resent, v.failed, ks)
	if v.missing > 0 || v.dup > 0 {
		t.Errorf("%s seed %d: %d pushes missing, %d doubled (first problems):\n%s", scenario, seed, v.missing, v.dup,
			strings.Join(first20(v.problems), "\n"))
	}
}

// TestChaosPushJudge checks the duplicate rule on made-up copies: what a
// kill -9 may resend and what is a duplicate a phone would show.
func TestChaosPushJudge(t *testing.T) {
	t0 := time.Now()
	apns := func(at time.Duration, cid string) pushfake.Record {
		return pushfake.Record{Provider: pushfake.APNs, Status: 200, At: t0.Add(at), Headers: map[string]string{"apns-collapse-id": cid}}
	}
	fcm := func(at time.Duration, tag string) pushfake.Record {
		return pushfake.Record{Provider: pushfake.FCM, Status: 200, At: t0.Add(at),
			Payload: json.RawMessage(`{"message":{"android":{"notification":{"tag":"` + tag + `"}}}}`)}
	}
	kill := []pushKill{{at: t0.Add(time.Second), sent: 10}}
	cases := []struct {
		name                string
		copies              []pushfake.Record
		kills               []pushKill
		resends             bool
		wantResent, wantDup int
	}{
		{"one copy", []pushfake.Record{apns(0, "n1")}, kill, true, 0, 0},
		{"resend across a kill", []pushfake.Record{apns(0, "n1"), apns(2*time.Second, "n1")}, kill, true, 1, 0},
		{"FCM resend under the same tag", []pushfake.Record{fcm(0, "n1"), fcm(2*time.Second, "n1")}, kill, true, 1, 0},
		{"resends not allowed (SIGTERM)", []pushfake.Record{apns(0, "n1"), apns(2*time.Second, "n1")}, nil, false, 0, 1},
		{"another collapse id", []pushfake.Record{apns(0, "n1"), apns(2*time.Second, "n2")}, kill, true, 0, 1},
		{"no collapse id", []pushfake.Record{fcm(0, ""), fcm(2*time.Second, "")}, kill, true, 0, 1},
		{"first copy after the kill", []pushfake.Record{apns(2*time.Second, "n1"), apns(3*time.Second, "n1")}, kill, true, 0, 1},
		{"two resends, one kill", []pushfake.Record{apns(0, "n1"), apns(2*time.Second, "n1"), apns(3*time.Second, "n1")}, kill, true, 1, 1},
	}
	for _, c := range cases {
		resent, dup, why := judgeCopies(c.copies, c.kills, c.resends)
		if resent != c.wantResent || dup != c.wantDup {
			t.Errorf("%s: resent %d, dup %d (%s); want %d, %d", c.name, resent, dup, why, c.wantResent, c.wantDup)
		}
	}
}
