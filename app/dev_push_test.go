package app

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/app/config"
	"github.com/heraldhq/herald/delivery/push/pushfake"
	"github.com/heraldhq/herald/topics"
)

// userDo calls the user API as user and decodes the JSON answer into out
// (when not nil), failing unless the status is want.
func userDo(t *testing.T, d *Dev, user, method, path, body string, want int, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, d.URL()+path, bytes.NewBufferString(body))
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+token(t, d, user))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, raw, want)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %s: %v", method, path, raw, err)
		}
	}
}

type devPush struct {
	Provider string            `json:"provider"`
	Token    string            `json:"token"`
	Status   int               `json:"status"`
	Reason   string            `json:"reason"`
	Headers  map[string]string `json:"headers"`
	Payload  json.RawMessage   `json:"payload"`
	At       time.Time         `json:"at"`
}

// pushes is GET /v1/dev/pushes, the fakes' recording as herald dev serves it.
func pushes(t *testing.T, d *Dev) []devPush {
	t.Helper()
	var body struct {
		Pushes []devPush `json:"pushes"`
	}
	userDo(t, d, "", "GET", "/v1/dev/pushes", "", http.StatusOK, &body)
	return body.Pushes
}

func byToken(ps []devPush, token string) []devPush {
	var out []devPush
	for _, p := range ps {
		if p.Token == token {
			out = append(out, p)
		}
	}
	return out
}

// waitPush polls GET /v1/dev/pushes until a push to token answered with
// status has arrived, and returns the pushes to token.
func waitPush(t *testing.T, d *Dev, token string, status int) []devPush {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := byToken(pushes(t, d), token)
		for _, p := range got {
			if p.Status == status {
				return got
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no push to %s answered %d within the deadline; to it: %+v", token, status, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type devices struct {
	Devices []struct {
		Platform  string    `json:"platform"`
		Token     string    `json:"token"`
		AppID     string    `json:"app_id"`
		CreatedAt time.Time `json:"created_at"`
		LastSeen  time.Time `json:"last_seen"`
	} `json:"devices"`
}

func (ds devices) tokens() []string {
	var out []string
	for _, d := range ds.Devices {
		out = append(out, d.Token)
	}
	return out
}

// TestDevPush drives herald dev's offline path from the outside: devices
// registered without app_id get the dev app, an offline user's
// notification reaches each of their phones once through the fake APNs
// and FCM, a token the provider calls dead is deleted, and a user with a
// socket open gets no push.
func TestDevPush(t *testing.T) {
	d := startDev(t, t.TempDir())
	defer stopDev(t, d)

	// u-1: one iPhone, one Android phone, no socket.
	userDo(t, d, "u-1", "POST", "/v1/devices", `{"platform":"ios","token":"ok-1"}`, http.StatusCreated, nil)
	userDo(t, d, "u-1", "POST", "/v1/devices", `{"platform":"android","token":"ok-2"}`, http.StatusCreated, nil)
	var ds devices
	userDo(t, d, "u-1", "GET", "/v1/devices", "", http.StatusOK, &ds)
	if len(ds.Devices) != 2 || ds.Devices[0].Token != "ok-1" || ds.Devices[0].AppID != "dev" || ds.Devices[1].Platform != "android" ||
		ds.Devices[1].AppID != "dev" || ds.Devices[0].CreatedAt.IsZero() || ds.Devices[0].LastSeen.IsZero() {
		t.Fatalf("devices: %+v", ds)
	}
	// u-3 has a socket open and a phone.
	userDo(t, d, "u-3", "POST", "/v1/devices", `{"platform":"ios","token":"ok-3"}`, http.StatusCreated, nil)
	ws := dial(t, d, "u-3", "")
	if f := read(t, ws); f.Type != "synced" {
		t.Fatalf("u-3 first frame %+v", f)
	}

	post(t, d, `{"id":"ev-1","user_id":"u-1","type":"mention","title":"Hi","body":"from dev","collapse_key":"thread-7","ttl":3600}`)
	post(t, d, `{"id":"ev-3","user_id":"u-3","type":"mention","title":"Live"}`)

	ios := waitPush(t, d, "ok-1", http.StatusOK)
	android := waitPush(t, d, "ok-2", http.StatusOK)
	a := ios[0]
	if a.Provider != "apns" || a.Headers["apns-push-type"] != "alert" || a.Headers["apns-collapse-id"] != "thread-7" ||
		a.Headers["apns-topic"] != pushfake.DevTopic || a.Headers["apns-priority"] != "5" || a.Headers["apns-expiration"] == "" {
		t.Errorf("APNs push: %+v", a)
	}
	var ap struct {
		APS struct {
			Alert struct{ Title, Body string } `json:"alert"`
		} `json:"aps"`
		ID      string `json:"herald_id"`
		EventID string `json:"herald_event_id"`
	}
	if err := json.Unmarshal(a.Payload, &ap); err != nil || ap.APS.Alert.Title != "Hi" || ap.APS.Alert.Body != "from dev" || ap.ID == "" || ap.EventID != "ev-1" {
		t.Errorf("APNs payload %s: %+v %v", a.Payload, ap, err)
	}
	f := android[0]
	var fp struct {
		Message struct {
			Token string            `json:"token"`
			Data  map[string]string `json:"data"`
		} `json:"message"`
	}
	if err := json.Unmarshal(f.Payload, &fp); err != nil || f.Provider != "fcm" || fp.Message.Token != "ok-2" ||
		fp.Message.Data["herald_id"] != ap.ID || fp.Message.Data["herald_event_id"] != "ev-1" {
		t.Errorf("FCM push %s: %+v %v", f.Payload, fp, err)
	}

	// The live user got the notification on the socket; the router does
	// not hand a delivered notification to the pusher.
	if f := read(t, ws); f.Type != "notification" || f.Notification.EventID != "ev-3" {
		t.Fatalf("u-3 frame %+v", f)
	}

	// u-2: a dead iPhone token and a live Android one.
	userDo(t, d, "u-2", "POST", "/v1/devices", `{"platform":"ios","token":"unregistered-1","app_id":"dev"}`, http.StatusCreated, nil)
	userDo(t, d, "u-2", "POST", "/v1/devices", `{"platform":"android","token":"ok-4","app_id":"dev"}`, http.StatusCreated, nil)
	post(t, d, `{"id":"ev-2","user_id":"u-2","type":"mention","title":"Gone?"}`)
	dead := waitPush(t, d, "unregistered-1", http.StatusGone)
	if dead[0].Reason != "Unregistered" {
		t.Errorf("dead token push: %+v", dead[0])
	}
	waitPush(t, d, "ok-4", http.StatusOK)
	deadline := time.Now().Add(30 * time.Second)
	for {
		var ds devices
		userDo(t, d, "u-2", "GET", "/v1/devices", "", http.StatusOK, &ds)
		if toks := ds.tokens(); len(toks) == 1 && toks[0] == "ok-4" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("the unregistered token is still listed: %v", toks)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A provider hiccup is retried quickly in dev: 503 with Retry-After: 1,
	// then 200.
	userDo(t, d, "u-5", "POST", "/v1/devices", `{"platform":"ios","token":"flaky-1"}`, http.StatusCreated, nil)
	post(t, d, `{"id":"ev-5","user_id":"u-5","type":"mention","title":"Again"}`)
	if got := waitPush(t, d, "flaky-1", http.StatusOK); len(got) != 2 || got[0].Status != http.StatusServiceUnavailable ||
		got[0].Headers["apns-id"] != got[1].Headers["apns-id"] {
		t.Errorf("flaky token: %+v", got)
	} else {
		t.Logf("flaky retry after %s", got[1].At.Sub(got[0].At))
	}

	// Exactly one push to each of u-1's phones, none to the live user's.
	all := pushes(t, d)
	for _, tok := range []string{"ok-1", "ok-2", "unregistered-1", "ok-4"} {
		if n := len(byToken(all, tok)); n != 1 {
			t.Errorf("%d pushes to %s: %+v", n, tok, byToken(all, tok))
		}
	}
	if got := byToken(all, "ok-3"); len(got) != 0 {
		t.Errorf("pushed to a user with a socket open: %+v", got)
	}
	// The route is herald dev's only: the banner tells where it is.
	if b := d.Banner("herald"); !bytes.Contains([]byte(b), []byte(d.URL()+"/v1/dev/pushes")) {
		t.Errorf("banner does not mention /v1/dev/pushes:\n%s", b)
	}
}

// TestDevPushGivesUp: in herald dev a provider that keeps failing is
// given up on within about 30 seconds, after the dev retry policy's
// attempts, and the job lands in herald.push.dlq.
func TestDevPushGivesUp(t *testing.T) {
	d := startDev(t, t.TempDir())
	defer stopDev(t, d)
	userDo(t, d, "u-9", "POST", "/v1/devices", `{"platform":"android","token":"down-1"}`, http.StatusCreated, nil)
	post(t, d, `{"id":"ev-9","user_id":"u-9","type":"mention","title":"Down"}`)

	cl, err := kgo.NewClient(kgo.SeedBrokers(d.KafkaAddrs()...), kgo.ConsumeTopics(topics.WithPrefix("").PushDLQ),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var dlq []*kgo.Record
	for len(dlq) == 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("nothing in the dead-letter topic; pushes to down-1: %+v", byToken(pushes(t, d), "down-1"))
		}
		dlq = append(dlq, fs.Records()...)
	}
	if string(dlq[0].Key) != "u-9" {
		t.Errorf("dead letter keyed %q", dlq[0].Key)
	}
	got := byToken(pushes(t, d), "down-1")
	if len(got) != config.DevPushRetry.MaxAttempts {
		t.Errorf("%d attempts before giving up, want %d", len(got), config.DevPushRetry.MaxAttempts)
	}
	for _, p := range got {
		if p.Status != http.StatusInternalServerError {
			t.Errorf("attempt answered %d", p.Status)
		}
	}
	if len(got) > 1 {
		t.Logf("gave up after %s", got[len(got)-1].At.Sub(got[0].At))
	}
}
