//go:build integration

package integration

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/delivery/push/pushfake"
)

// The offline path on the real stack (issue 8): events go through the API
// (or a Kafka producer), the enricher and the gateway's router, which
// produces herald.push for users with no live connection, to a `herald
// pusher` pointed at the fake APNs and FCM running in this test process
// (pushfake) through a generated --config file. What the fakes received is
// the truth every check reads.

// pushApp is the app id the test's devices register with.
const pushApp = "it.app"

// The pusher's policy in these tests: short retries (the retry topics are
// the default tiers, 5s and up, but a record is due at its own not-before
// time), few attempts, a push delay for one type.
const (
	pushMaxAttempts = 4
	delayedType     = "delayed"
	pushDelay       = 4 * time.Second
	// pusherMaxPollRecords is the pusher's batch bound
	// (pipeline.PusherConfig.MaxPollRecords, default): one poll of at most
	// that many records, over all its partitions, is worked at a time, so
	// at most that many jobs are sent and not yet recorded as sent.
	// pushPartitions is herald.push's partition count (topics.Specs).
	pusherMaxPollRecords = 500
	pushPartitions       = 6
)

// pushEnv is one deployment with a pusher and the fakes it sends to.
type pushEnv struct {
	*env
	fakes  *pushfake.Fakes
	config string
	api    *proc
	pusher *proc
}

func newPushEnv(t *testing.T) *pushEnv {
	t.Helper()
	e := newEnv(t)
	f, config := startPushFakes(t, e)
	pe := &pushEnv{env: e, fakes: f, config: config}
	e.start("enricher", "enricher", "HERALD_TRANSACTIONAL_ID="+e.prefix+"enricher")
	e.start("gateway", "gateway", "HERALD_GATEWAY_ID="+e.prefix+"gw")
	pe.api = e.start("api", "api", "HERALD_GATEWAY_ID="+e.prefix+"api", "HERALD_CONFIG="+pe.config)
	pe.pusher = pe.startPusher("pusher")
	return pe
}

// startPushFakes starts the fake APNs and FCM of a deployment (closed at
// the test's end, after the roles started later) and writes the --config
// file that points the app pushApp at them; it returns the fakes and the
// file's path.
func startPushFakes(t *testing.T, e *env) (*pushfake.Fakes, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	f, err := pushfake.Start(ctx, pushfake.Config{Dir: filepath.Join(e.dir, "fakes"), RecordLimit: 200000})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = f.Close() }) // after the roles (cleanups run last first)
	k, sa := f.APNsKeys[0], f.FCMAccounts[0]
	yaml := fmt.Sprintf(`push:
  default_app: %s
  apps:
    - id: %s
      apns: {key_file: %q, key_id: %q, team_id: %q, topic: %q, endpoint: %q, ca_file: %q}
      fcm: {credentials_file: %q, project_id: %q, endpoint: %q}
  delay: {%s: %s}
  retry: {base: 200ms, cap: 1s, max_attempts: %d}
`, pushApp, pushApp, k.KeyPath, k.KeyID, k.TeamID, k.Topic, f.APNsURL, f.CAPath,
		sa.CredentialsPath, sa.ProjectID, f.FCMURL, delayedType, pushDelay, pushMaxAttempts)
	config := filepath.Join(e.dir, "herald.yaml")
	if err := os.WriteFile(config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return f, config
}

// startPusher starts a pusher of the deployment (a short session timeout,
// so a crashed one's partitions move quickly).
func (pe *pushEnv) startPusher(name string) *proc {
	return pe.start(name, "pusher", "HERALD_CONFIG="+pe.config, "HERALD_SESSION_TIMEOUT=6s")
}

// register adds a device through POST /v1/devices.
func (pe *pushEnv) register(t *testing.T, user, platform, tok string) {
	t.Helper()
	body := fmt.Sprintf(`{"platform":%q,"token":%q,"app_id":%q}`, platform, tok, pushApp)
	if code, m := apiDo(t, pe.api, "POST", "/v1/devices", token(t, user), body); code != http.StatusCreated {
		t.Fatalf("POST /v1/devices %s: %d %v", body, code, m)
	}
}

// post sends events through POST /v1/events.
func (pe *pushEnv) post(t *testing.T, body string) {
	t.Helper()
	if code, m := apiDo(t, pe.api, "POST", "/v1/events", apiKey, body); code != http.StatusAccepted {
		t.Fatalf("POST /v1/events %s: %d %v", body, code, m)
	}
}

// devices lists a user's device tokens through GET /v1/devices.
func (pe *pushEnv) devices(t *testing.T, user string) []string {
	t.Helper()
	code, m := apiDo(t, pe.api, "GET", "/v1/devices", token(t, user), "")
	if code != http.StatusOK {
		t.Fatalf("GET /v1/devices: %d %v", code, m)
	}
	var out []string
	ds, _ := m["devices"].([]any)
	for _, d := range ds {
		if d, ok := d.(map[string]any); ok {
			s, _ := d["token"].(string)
			out = append(out, s)
		}
	}
	return out
}

// herald runs a one-shot herald command of the deployment and returns its
// standard output.
func (pe *pushEnv) herald(t *testing.T, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, heraldBin, args...)
	cmd.Env = append(os.Environ(), pe.base...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("herald %v: %v\n%s%s", args, err, out, stderr.String())
	}
	return out
}

// eventually polls cond every 50ms until it holds, failing after limit
// with what.
func eventually(t *testing.T, limit time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", limit, what())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// withStatus keeps the records answered status.
func withStatus(recs []pushfake.Record, status int) []pushfake.Record {
	var out []pushfake.Record
	for _, r := range recs {
		if r.Status == status {
			out = append(out, r)
		}
	}
	return out
}

// waitStatus waits until the fake answered status to tok and returns
// every record of tok.
func (pe *pushEnv) waitStatus(t *testing.T, tok string, status int, limit time.Duration) []pushfake.Record {
	t.Helper()
	var got []pushfake.Record
	eventually(t, limit, func() string { return fmt.Sprintf("no %d to %s; received %+v", status, tok, got) }, func() bool {
		got = pe.fakes.Received(tok)
		return len(withStatus(got, status)) > 0
	})
	return got
}

// heraldIDs are the ids a push carries in its data.
type heraldIDs struct {
	ID, Seq, EventID string
}

// idsOf reads herald_id, herald_seq and herald_event_id from an APNs
// payload (top level) or an FCM message's data.
func idsOf(t *testing.T, r pushfake.Record) heraldIDs {
	t.Helper()
	ids, err := parseIDs(r)
	if err != nil {
		t.Fatalf("%s payload %s: %v", r.Provider, r.Payload, err)
	}
	return ids
}

// parseIDs is idsOf without a test to fail.
func parseIDs(r pushfake.Record) (heraldIDs, error) {
	var m map[string]any
	if r.Provider == pushfake.FCM {
		var f struct {
			Message struct {
				Data map[string]any `json:"data"`
			} `json:"message"`
		}
		if err := json.Unmarshal(r.Payload, &f); err != nil {
			return heraldIDs{}, err
		}
		m = f.Message.Data
	} else if err := json.Unmarshal(r.Payload, &m); err != nil {
		return heraldIDs{}, err
	}
	s := func(k string) string {
		switch v := m[k].(type) {
		case string:
			return v
		case float64:
			return strconv.FormatFloat(v, 'f', -1, 64)
		}
		return ""
	}
	return heraldIDs{ID: s("herald_id"), Seq: s("herald_seq"), EventID: s("herald_event_id")}, nil
}

// metric is the sum of the samples of name whose labels contain every
// one of labels (`provider="apns"`), from a role's /metrics.
func metric(t *testing.T, p *proc, name string, labels ...string) float64 {
	t.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(resp.Body)
	resp.Body.Close()
	re := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `(\{[^}]*\})? ([0-9.e+-]+)$`)
	sum := 0.0
next:
	for _, m := range re.FindAllStringSubmatch(body, -1) {
		for _, l := range labels {
			if !strings.Contains(m[1], l) {
				continue next
			}
		}
		v, _ := strconv.ParseFloat(m[2], 64)
		sum += v
	}
	return sum
}

// rssKiB is a process's resident set size (VmRSS), 0 when unreadable.
func rssKiB(pid int) int {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			n, _ := strconv.Atoi(f[1])
			return n
		}
	}
	return 0
}

// pushPartition is the herald.push partition of a user (the producers'
// default partitioner: murmur2 of the key, as Kafka's).
func pushPartition(user string) int {
	return kgo.StickyKeyPartitioner(nil).ForTopic("push").Partition(&kgo.Record{Key: []byte(user)}, pushPartitions)
}

// TestPushOfflinePath runs issue 8's real-stack scenarios on one
// pipeline (api → enricher → gateway router → pusher → fakes): first the
// independent ones side by side (one push per phone with the right
// headers and ids, a 410 deleting the token, a flaky token retried
// without holding back a later push of the same partition, a down- token
// dead-lettered, read before the push delay, quiet hours), then the DLQ
// replay, a provider outage opening the circuit, and last a kill -9 of
// the pusher in the middle of 2,000 jobs.
func TestPushOfflinePath(t *testing.T) {
	pe := newPushEnv(t)
	id := pe.id
	u := pe.u

	// 1. One iPhone and one Android phone, no connection.
	u1, ios1, and1 := u("p1"), "ios1-"+id, "and1-"+id
	pe.register(t, u1, "ios", ios1)
	pe.register(t, u1, "android", and1)
	// 2. A dead iPhone token and a live Android one.
	u2, dead2, and2 := u("p2"), "unregistered-"+id, "and2-"+id
	pe.register(t, u2, "ios", dead2)
	pe.register(t, u2, "android", and2)
	// 3. A flaky iPhone, and another user of the same herald.push
	// partition.
	u3a := u("p3a")
	u3b := ""
	for i := 0; u3b == ""; i++ {
		if c := u(fmt.Sprintf("p3b-%d", i)); pushPartition(c) == pushPartition(u3a) {
			u3b = c
		}
	}
	flaky3, ok3 := "flaky-"+id, "ok3-"+id
	pe.register(t, u3a, "ios", flaky3)
	pe.register(t, u3b, "ios", ok3)
	// 4. A phone whose provider always answers 500.
	u4, down4 := u("p4"), "down-"+id
	pe.register(t, u4, "android", down4)
	// 5a. The delayed type: one user reads before the delay ends, one
	// does not.
	u5r, u5c, tok5r, tok5c := u("p5r"), u("p5c"), "read5-"+id, "ctl5-"+id
	pe.register(t, u5r, "ios", tok5r)
	pe.register(t, u5c, "android", tok5c)
	// 5b. Quiet hours around now.
	u6, tok6 := u("p6"), "quiet6-"+id
	pe.register(t, u6, "ios", tok6)
	now := time.Now().UTC()
	quiet := fmt.Sprintf(`{"muted_types":[],"channels":{"in_app":true,"push":true},"quiet_hours":{"start":%q,"end":%q,"timezone":"UTC"}}`,
		now.Add(-2*time.Hour).Format("15:04"), now.Add(2*time.Hour).Format("15:04"))
	if code, m := apiDo(t, pe.api, "PUT", "/v1/preferences", token(t, u6), quiet); code != http.StatusOK {
		t.Fatalf("PUT /v1/preferences: %d %v", code, m)
	}

	start := time.Now()
	pe.post(t, `{"events":[`+
		`{"id":"e1-`+id+`","user_id":"`+u1+`","type":"mention","title":"Hi","body":"offline","collapse_key":"thread-7","ttl":3600,"priority":"high"},`+
		`{"id":"e2-`+id+`","user_id":"`+u2+`","type":"mention","title":"Gone?"},`+
		`{"id":"e3a-`+id+`","user_id":"`+u3a+`","type":"mention","title":"Flaky"},`+
		`{"id":"e3b-`+id+`","user_id":"`+u3b+`","type":"mention","title":"Next in line"},`+
		`{"id":"e4-`+id+`","user_id":"`+u4+`","type":"mention","title":"Down"},`+
		`{"id":"e5r-`+id+`","user_id":"`+u5r+`","type":"`+delayedType+`","title":"Read me"},`+
		`{"id":"e5c-`+id+`","user_id":"`+u5c+`","type":"`+delayedType+`","title":"Unread"},`+
		`{"id":"e6n-`+id+`","user_id":"`+u6+`","type":"mention","title":"Normal at night"},`+
		`{"id":"e6h-`+id+`","user_id":"`+u6+`","type":"mention","title":"High at night","priority":"high"}]}`)

	// 5a: read the delayed notification before its delay ends (the
	// enricher stores it within a second or so; the delay is 4s).
	utok := token(t, u5r)
	eventually(t, pushDelay/2, func() string { return "the delayed notification is not in the inbox" }, func() bool {
		code, m := apiDo(t, pe.api, "GET", "/v1/notifications?after=0", utok, "")
		ns, _ := m["notifications"].([]any)
		return code == 200 && len(ns) == 1
	})
	if code, m := apiDo(t, pe.api, "POST", "/v1/notifications/read", utok, `{"all":true}`); code != 200 {
		t.Fatalf("read: %d %v", code, m)
	}
	readAt := time.Since(start)

	t.Run("OnePushPerPhone", func(t *testing.T) {
		a := withStatus(pe.waitStatus(t, ios1, 200, time.Minute), 200)[0]
		f := withStatus(pe.waitStatus(t, and1, 200, time.Minute), 200)[0]
		h := a.Headers
		if a.Provider != pushfake.APNs || h["apns-push-type"] != "alert" || h["apns-priority"] != "10" ||
			h["apns-collapse-id"] != "thread-7" || h["apns-topic"] != pe.fakes.APNsKeys[0].Topic || h["apns-expiration"] == "" {
			t.Errorf("APNs headers: %v", h)
		}
		ai, fi := idsOf(t, a), idsOf(t, f)
		if ai.ID == "" || ai.Seq != "1" || ai.EventID != "e1-"+id || fi != ai {
			t.Errorf("Herald ids: APNs %+v, FCM %+v", ai, fi)
		}
		var fm struct {
			Message struct {
				Token   string `json:"token"`
				Android struct {
					Priority     string `json:"priority"`
					CollapseKey  string `json:"collapse_key"`
					Notification struct {
						Tag string `json:"tag"`
					} `json:"notification"`
				} `json:"android"`
			} `json:"message"`
		}
		if err := json.Unmarshal(f.Payload, &fm); err != nil {
			t.Fatal(err)
		}
		if an := fm.Message.Android; f.Provider != pushfake.FCM || fm.Message.Token != and1 || !strings.EqualFold(an.Priority, "high") ||
			an.CollapseKey != "thread-7" || an.Notification.Tag != "thread-7" {
			t.Errorf("FCM message: %s", f.Payload)
		}
		t.Logf("APNs headers %v; FCM %s", h, f.Payload)
	})

	t.Run("UnregisteredDeletesToken", func(t *testing.T) {
		got := pe.waitStatus(t, dead2, http.StatusGone, time.Minute)
		if got[0].Reason != "Unregistered" {
			t.Errorf("dead token answered %+v", got[0])
		}
		pe.waitStatus(t, and2, 200, time.Minute)
		var toks []string
		eventually(t, 30*time.Second, func() string { return fmt.Sprintf("devices still %v", toks) }, func() bool {
			toks = pe.devices(t, u2)
			return len(toks) == 1 && toks[0] == and2
		})
	})

	t.Run("FlakyDoesNotHoldThePartition", func(t *testing.T) {
		// The other user's event follows the flaky one in the same
		// herald.push partition: it goes out while the flaky job waits for
		// its retry (Retry-After: 1), not after it.
		got := pe.waitStatus(t, flaky3, 200, time.Minute)
		other := withStatus(pe.waitStatus(t, ok3, 200, time.Minute), 200)[0]
		ok := withStatus(got, 200)[0]
		if len(got) != 2 || got[0].Status != http.StatusServiceUnavailable {
			t.Fatalf("flaky token: want one 503 then one 200, got %+v", got)
		}
		first := got[0]
		if !other.At.Before(ok.At) {
			t.Errorf("the other user's push (partition %d) waited for the flaky retry: it came at %s, the retry at %s",
				pushPartition(u3b), other.At.Format(time.StampMilli), ok.At.Format(time.StampMilli))
		}
		t.Logf("partition %d: flaky 503 at +0, the next user's 200 at %+dms, the flaky retry's 200 at +%dms",
			pushPartition(u3a), other.At.Sub(first.At).Milliseconds(), ok.At.Sub(first.At).Milliseconds())
	})

	var dlqEntry struct {
		Reason   string `json:"reason"`
		Attempts int    `json:"attempts"`
		EventID  string `json:"event_id"`
	}
	t.Run("DownEndsInDLQ", func(t *testing.T) {
		type listing struct {
			Entries []struct {
				Reason   string `json:"reason"`
				Attempts int    `json:"attempts"`
				UserID   string `json:"user_id"`
				EventID  string `json:"event_id"`
				Pending  bool   `json:"pending"`
			} `json:"entries"`
		}
		var l listing
		eventually(t, 2*time.Minute, func() string {
			return fmt.Sprintf("no dead letter for %s; listed %+v; sends to %s: %d", u4, l, down4, len(pe.fakes.Received(down4)))
		}, func() bool {
			l = listing{}
			if err := json.Unmarshal(pe.herald(t, "dlq", "list", "--topic", "push", "--json"), &l); err != nil {
				t.Fatal(err)
			}
			for _, en := range l.Entries {
				if en.UserID == u4 && en.Pending {
					dlqEntry.Reason, dlqEntry.Attempts, dlqEntry.EventID = en.Reason, en.Attempts, en.EventID
					return true
				}
			}
			return false
		})
		sends := pe.fakes.Received(down4)
		if dlqEntry.Reason == "" || dlqEntry.Attempts != pushMaxAttempts || dlqEntry.EventID != "e4-"+id ||
			len(sends) != pushMaxAttempts || len(withStatus(sends, 500)) != pushMaxAttempts {
			t.Errorf("dead letter %+v after %d sends (%d answered 500), want %d attempts", dlqEntry, len(sends), len(withStatus(sends, 500)), pushMaxAttempts)
		}
		t.Logf("dead letter: reason %q, %d attempts over %s", dlqEntry.Reason, dlqEntry.Attempts, sends[len(sends)-1].At.Sub(sends[0].At).Round(time.Millisecond))
	})

	t.Run("ReadBeforeDelay", func(t *testing.T) {
		ctl := withStatus(pe.waitStatus(t, tok5c, 200, time.Minute), 200)[0]
		eventually(t, time.Minute, func() string { return "no push dropped as read" }, func() bool {
			return metric(t, pe.pusher, "herald_push_dropped_total", `reason="read"`) >= 1
		})
		if got := pe.fakes.Received(tok5r); len(got) != 0 {
			t.Errorf("pushed a notification read before its delay ended: %+v", got)
		}
		t.Logf("read at +%s; the unread one pushed at +%s (delay %s)", readAt.Round(time.Millisecond), ctl.At.Sub(start).Round(time.Millisecond), pushDelay)
	})

	t.Run("QuietHours", func(t *testing.T) {
		got := pe.waitStatus(t, tok6, 200, time.Minute)
		for _, r := range got {
			if ev := idsOf(t, r).EventID; ev != "e6h-"+id {
				t.Errorf("pushed %s inside quiet hours", ev)
			}
		}
	})

	// Exactly one push to each phone of scenario 1 and 2, all this time
	// later.
	for _, tok := range []string{ios1, and1, dead2, and2, ok3} {
		if n := len(pe.fakes.Received(tok)); n != 1 {
			t.Errorf("%d pushes to %s: %+v", n, tok, pe.fakes.Received(tok))
		}
	}
	if t.Failed() {
		return
	}

	t.Run("DLQReplay", func(t *testing.T) {
		// The provider recovers for that phone; the replay delivers it.
		pe.fakes.Heal(down4)
		var res struct {
			Replayed int `json:"replayed"`
		}
		if err := json.Unmarshal(pe.herald(t, "dlq", "replay", "--topic", "push", "--json"), &res); err != nil {
			t.Fatal(err)
		}
		if res.Replayed != 1 {
			t.Fatalf("replayed %d dead letters, want 1", res.Replayed)
		}
		got := pe.waitStatus(t, down4, 200, time.Minute)
		if n := len(withStatus(got, 200)); n != 1 || idsOf(t, withStatus(got, 200)[0]).EventID != "e4-"+id {
			t.Errorf("after the replay: %+v", got)
		}
		// Never the same dead letter twice.
		res.Replayed = -1
		if err := json.Unmarshal(pe.herald(t, "dlq", "replay", "--topic", "push", "--json"), &res); err != nil {
			t.Fatal(err)
		}
		if res.Replayed != 0 {
			t.Errorf("a second replay replayed %d", res.Replayed)
		}
	})

	t.Run("OutageOpensCircuit", func(t *testing.T) { pe.outage(t) })
	t.Run("Kill9MidBatch", func(t *testing.T) { pe.kill9(t) })
}

// outage: the fake APNs answers 503 to everything; enough failures open
// the circuit of (apns, app) (herald_push_circuit_state 2), and once the
// outage ends every job is delivered. The pusher's RSS is sampled
// throughout.
func (pe *pushEnv) outage(t *testing.T) {
	const users = 60
	pe.fakes.SetOutage(pushfake.APNs, true)
	defer pe.fakes.SetOutage(pushfake.APNs, false)
	toks := make([]string, users)
	var events []string
	for i := range toks {
		user := pe.u(fmt.Sprintf("o-%d", i))
		toks[i] = fmt.Sprintf("out-%s-%d", pe.id, i)
		pe.register(t, user, "ios", toks[i])
		events = append(events, fmt.Sprintf(`{"id":"o-%s-%d","user_id":%q,"type":"mention","title":"During the outage"}`, pe.id, i, user))
	}
	pid := pe.pusher.cmd.Process.Pid
	before := rssKiB(pid)
	var mu sync.Mutex
	peak := before
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if r := rssKiB(pid); r > 0 {
				mu.Lock()
				peak = max(peak, r)
				mu.Unlock()
			}
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	pe.post(t, `{"events":[`+strings.Join(events, ",")+`]}`)
	open := `provider="apns"`
	eventually(t, time.Minute, func() string {
		return fmt.Sprintf("circuit state %v; %d requests to the fake APNs", metric(t, pe.pusher, "herald_push_circuit_state", open), pe.fakes.Total())
	}, func() bool {
		return metric(t, pe.pusher, "herald_push_circuit_state", open, `app="`+pushApp+`"`) == 2
	})
	openedAt := time.Now()
	rssOpen := rssKiB(pid)
	sentAtOpen := 0
	for _, tok := range toks {
		sentAtOpen += len(pe.fakes.Received(tok))
	}
	// Hold the outage past a cool-down, so half-open probes fail and the
	// jobs wait in the retry topics.
	time.Sleep(8 * time.Second)
	rssHeld := rssKiB(pid)
	during := 0
	for _, tok := range toks {
		during += len(pe.fakes.Received(tok))
	}
	pe.fakes.SetOutage(pushfake.APNs, false)
	for _, tok := range toks {
		pe.waitStatus(t, tok, 200, 2*time.Minute)
	}
	closedIn := time.Since(openedAt)
	if s := metric(t, pe.pusher, "herald_push_circuit_state", open, `app="`+pushApp+`"`); s != 0 {
		t.Errorf("circuit state %v after every job was delivered, want 0 (closed)", s)
	}
	dup := 0
	for _, tok := range toks {
		if n := len(withStatus(pe.fakes.Received(tok), 200)); n != 1 {
			dup += n - 1
		}
	}
	if dup != 0 {
		t.Errorf("%d extra deliveries after the outage", dup)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("outage: %d jobs; %d sends when the circuit opened, %d after 8 s open (probes only); all delivered %s after it opened; "+
		"pusher RSS (a -race build) %d KiB before, %d KiB when the circuit opened, %d KiB after 8 s open, peak %d KiB",
		users, sentAtOpen, during, closedIn.Round(100*time.Millisecond), before, rssOpen, rssHeld, peak)
}

// kill9: 200 offline users × 10 events, one phone each, produced to
// herald.events; the pusher is killed with SIGKILL once part of them went
// out, and a new one started. Every phone gets every notification at
// least once; the resends (a second 200 for the same notification and
// token) are counted and bounded by what had been sent before the kill
// (only a send made before the crash can be made again) and by what the
// crashed pusher could have in flight: one poll, MaxPollRecords jobs of
// one device each (a batch whose progress was written is not resent).
func (pe *pushEnv) kill9(t *testing.T) {
	const users, per = 200, 10
	toks := map[string]bool{}
	var recs []*kgo.Record
	for i := range users {
		user := pe.u(fmt.Sprintf("k-%d", i))
		tok := fmt.Sprintf("k-%s-%d", pe.id, i)
		platform := "ios"
		if i%2 == 1 {
			platform = "android"
		}
		pe.register(t, user, platform, tok)
		toks[tok] = true
		for j := range per {
			recs = append(recs, eventRecord(fmt.Sprintf("k-%s-%d-%d", pe.id, i, j), user, "kill"))
		}
	}
	count := func() (oks int, pairs map[[2]string]int) {
		pairs = map[[2]string]int{}
		for _, r := range pe.fakes.Pushes() {
			if toks[r.Token] && r.Status == 200 {
				oks++
				pairs[[2]string{idsOf(t, r).EventID, r.Token}]++
			}
		}
		return oks, pairs
	}
	cl := producer(t)
	pe.produce(t, cl, recs...)
	const killAt = 300
	atKill := 0
	eventually(t, 2*time.Minute, func() string { n, _ := count(); return fmt.Sprintf("%d pushes", n) }, func() bool {
		atKill, _ = count()
		return atKill >= killAt
	})
	pe.pusher.kill()
	atKill, _ = count() // what was sent before the kill, answers still arriving included
	if atKill >= users*per {
		t.Fatalf("every job was sent before the kill (%d): not a crash in the middle", atKill)
	}
	pe.pusher = pe.startPusher("pusher-2")
	restarted := time.Now()
	var oks int
	var pairs map[[2]string]int
	eventually(t, 3*time.Minute, func() string {
		return fmt.Sprintf("%d of %d notifications delivered (%d pushes)", len(pairs), users*per, oks)
	}, func() bool {
		oks, pairs = count()
		return len(pairs) == users*per
	})
	dup := 0
	for _, n := range pairs {
		dup += n - 1
	}
	bound := min(atKill, pusherMaxPollRecords)
	if dup > bound {
		t.Errorf("%d notifications resent after the crash, more than the %d that could have been in flight", dup, bound)
	}
	t.Logf("kill -9 after %d of %d pushes; the new pusher delivered the rest in %s; resent after the crash: %d (bound %d)",
		atKill, users*per, time.Since(restarted).Round(100*time.Millisecond), dup, bound)
}
