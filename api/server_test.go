package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/memory"
	"github.com/heraldhq/herald/topics"
)

// tokens maps "tok-<user>" to <user>; the JWT verifier itself is tested in auth.
type tokens struct{}

func (tokens) Verify(tok string) (string, error) {
	if u, ok := strings.CutPrefix(tok, "tok-"); ok && u != "" {
		return u, nil
	}
	return "", errors.New("bad token")
}

type keys struct{}

func (keys) Valid(k string) bool { return k == "key-1" }

type unreadLog struct {
	mu   sync.Mutex
	seen []string
}

func (u *unreadLog) PublishUnread(_ context.Context, user string, n int64) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.seen = append(u.seen, fmt.Sprintf("%s=%d", user, n))
}

type fixture struct {
	srv    *httptest.Server
	store  *memory.Store
	client *kgo.Client
	unread *unreadLog
}

// appendTo stores ns through a writer of its own scope, as the enricher
// would (each call fences a fresh scope, so calls never fence each other).
func (f *fixture) appendTo(ctx context.Context, ns []herald.Notification) ([]store.AppendResult, error) {
	w, err := f.store.Fence(ctx, "test/"+herald.NewID(time.Now()))
	if err != nil {
		return nil, err
	}
	return w.Append(ctx, ns)
}

func newFixture(t *testing.T, tweaks ...func(*Config)) *fixture {
	t.Helper()
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(3, "herald.events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cluster.Close)
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...), kgo.ConsumeTopics("herald.events"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	f := &fixture{store: memory.New(), client: cl, unread: &unreadLog{}}
	cfg := Config{Store: f.store, Events: pipeline.NewEventWriter(cl, topics.Names{}), Users: tokens{}, Keys: keys{}, Unread: f.unread,
		Ready: []ReadyCheck{{Name: "store", Check: f.store.Ping}}, ReadyInterval: 5 * time.Millisecond}
	for _, tw := range tweaks {
		tw(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runServer(t, s)
	f.srv = httptest.NewServer(s)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) do(t *testing.T, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", "Bearer "+auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 {
		if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") && path != "/metrics" {
			t.Fatalf("%s %s: content type %q body %s", method, path, ct, raw)
		}
		_ = json.Unmarshal(raw, &m)
	}
	return resp.StatusCode, m
}

func TestPostEvents(t *testing.T) {
	f := newFixture(t)
	code, body := f.do(t, "POST", "/v1/events", "key-1", `{"id":"e1","user_id":"u1","type":"mention"}`)
	if code != 202 || body["accepted"] != float64(1) {
		t.Fatalf("single: %d %v", code, body)
	}
	code, body = f.do(t, "POST", "/v1/events", "key-1", `{"events":[{"id":"e2","user_id":"u2","type":"t"},{"id":"e3","user_id":"u1","type":"t"}]}`)
	if code != 202 || body["accepted"] != float64(2) {
		t.Fatalf("batch: %d %v", code, body)
	}
	// All three are in Kafka, keyed by user id.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := map[string]string{}
	for len(got) < 3 {
		fs := f.client.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("got %v before %v", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e struct{ ID string }
			_ = json.Unmarshal(r.Value, &e)
			got[e.ID] = string(r.Key)
		})
	}
	if got["e1"] != "u1" || got["e2"] != "u2" || got["e3"] != "u1" {
		t.Fatalf("keys: %v", got)
	}
}

func TestPostEventsErrors(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		name, auth, body string
		code             int
		field, msg       string
	}{
		{"no key", "", `{}`, 401, "", "missing API key"},
		{"bad key", "nope", `{}`, 401, "", "invalid API key"},
		{"empty", "key-1", ``, 400, "", "empty body"},
		{"array", "key-1", `[]`, 400, "", "JSON object"},
		{"missing user", "key-1", `{"id":"1","type":"t"}`, 400, "user_id", "required"},
		{"bad priority", "key-1", `{"id":"1","user_id":"u","type":"t","priority":"x"}`, 400, "priority", "one of"},
		{"batch item", "key-1", `{"events":[{"id":"1","user_id":"u","type":"t"},{"id":"2","type":"t"}]}`, 400, "events[1].user_id", "required"},
		{"batch empty", "key-1", `{"events":[]}`, 400, "events", "must not be empty"},
		{"batch type", "key-1", `{"events":{}}`, 400, "events", "array"},
		{"batch too big", "key-1", `{"events":[` + strings.Repeat(`{"id":"1","user_id":"u","type":"t"},`, 500) + `{"id":"1","user_id":"u","type":"t"}]}`, 400, "events", "more than the 500"},
		{"malformed", "key-1", `{"id":"1",`, 400, "", "malformed JSON"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, body := f.do(t, "POST", "/v1/events", c.auth, c.body)
			if code != c.code {
				t.Fatalf("code %d want %d: %v", code, c.code, body)
			}
			msg, _ := body["error"].(string)
			field, _ := body["field"].(string)
			if field != c.field || !strings.Contains(msg, c.msg) {
				t.Fatalf("got field %q error %q; want %q, %q", field, msg, c.field, c.msg)
			}
		})
	}
	// A body over the batch limit is 413.
	big := bytes.Repeat([]byte(" "), int(502*herald.MaxEventBytes))
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/events", bytes.NewReader(big))
	req.Header.Set("Authorization", "Bearer key-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 413 {
		t.Fatalf("oversized body: %d", resp.StatusCode)
	}
}

func seed(t *testing.T, f *fixture, user string, n int) {
	t.Helper()
	var ns []herald.Notification
	for i := 0; i < n; i++ {
		e := herald.Event{ID: fmt.Sprintf("%s-%d", user, i), UserID: user, Type: "t", Priority: herald.PriorityNormal, CreatedAt: time.Now()}
		ns = append(ns, herald.NewNotification(&e))
	}
	if _, err := f.appendTo(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
}

func TestInbox(t *testing.T) {
	f := newFixture(t)
	seed(t, f, "u1", 5)
	seed(t, f, "u2", 2)

	code, body := f.do(t, "GET", "/v1/notifications?after=1&limit=2", "tok-u1", "")
	ns, _ := body["notifications"].([]any)
	if code != 200 || len(ns) != 2 || body["next"] != float64(3) {
		t.Fatalf("list: %d %v", code, body)
	}
	if first := ns[0].(map[string]any); first["seq"] != float64(2) || first["prev"] != float64(1) || first["read"] != false {
		t.Fatalf("first: %v", first)
	}
	// Another user's token sees only their own inbox.
	_, body = f.do(t, "GET", "/v1/notifications", "tok-u2", "")
	if ns := body["notifications"].([]any); len(ns) != 2 {
		t.Fatalf("u2 sees %d", len(ns))
	}
	code, body = f.do(t, "POST", "/v1/notifications/read", "tok-u1", `{"seqs":[1,2,99]}`)
	if code != 200 || body["unread"] != float64(3) {
		t.Fatalf("read: %d %v", code, body)
	}
	_, body = f.do(t, "GET", "/v1/notifications?unread_only=true", "tok-u1", "")
	if ns := body["notifications"].([]any); len(ns) != 3 || ns[0].(map[string]any)["seq"] != float64(3) {
		t.Fatalf("unread only: %v", body)
	}
	_, body = f.do(t, "GET", "/v1/notifications/unread_count", "tok-u2", "")
	if body["unread"] != float64(2) {
		t.Fatalf("u2 unread %v", body)
	}
	code, body = f.do(t, "POST", "/v1/notifications/read", "tok-u1", `{"all":true}`)
	if code != 200 || body["unread"] != float64(0) {
		t.Fatalf("read all: %d %v", code, body)
	}
	f.unread.mu.Lock()
	seen := strings.Join(f.unread.seen, ",")
	f.unread.mu.Unlock()
	if seen != "u1=3,u1=0" {
		t.Fatalf("unread published: %s", seen)
	}
	// Empty page keeps next at after.
	_, body = f.do(t, "GET", "/v1/notifications?after=5", "tok-u1", "")
	if body["next"] != float64(5) || len(body["notifications"].([]any)) != 0 {
		t.Fatalf("empty page: %v", body)
	}
}

func TestInboxErrors(t *testing.T) {
	f := newFixture(t)
	cases := []struct {
		method, path, auth, body string
		code                     int
		field                    string
	}{
		{"GET", "/v1/notifications", "", "", 401, ""},
		{"GET", "/v1/notifications", "garbage", "", 401, ""},
		{"GET", "/v1/notifications?after=-1", "tok-u1", "", 400, "after"},
		{"GET", "/v1/notifications?limit=0", "tok-u1", "", 400, "limit"},
		{"GET", "/v1/notifications?limit=501", "tok-u1", "", 400, "limit"},
		{"GET", "/v1/notifications?unread_only=maybe", "tok-u1", "", 400, "unread_only"},
		{"POST", "/v1/notifications/read", "tok-u1", `{}`, 400, "seqs"},
		{"POST", "/v1/notifications/read", "tok-u1", `{"seqs":"1"}`, 400, "seqs"},
		{"POST", "/v1/notifications/read", "tok-u1", `{"bogus":1}`, 400, "bogus"},
		{"PUT", "/v1/preferences", "tok-u1", `{"quiet_hours":{"start":"25:00","end":"07:00"}}`, 400, "quiet_hours.start"},
		{"PUT", "/v1/preferences", "tok-u1", `{"quiet_hours":{"start":"22:00","end":"07:00","timezone":"Nowhere/City"}}`, 400, "quiet_hours.timezone"},
		{"PUT", "/v1/preferences", "tok-u1", `{"timezone":"Nowhere/City"}`, 400, "timezone"},
		{"POST", "/v1/devices", "tok-u1", `{"platform":"windows","token":"t"}`, 400, "platform"},
		{"POST", "/v1/devices", "tok-u1", `{"platform":"ios"}`, 400, "token"},
		{"DELETE", "/v1/devices/unknown", "tok-u1", "", 404, ""},
		{"DELETE", "/v1/notifications", "tok-u1", "", 405, ""},
		{"GET", "/v1/nope", "tok-u1", "", 404, ""},
	}
	for _, c := range cases {
		t.Run(c.method+" "+c.path+" "+c.body, func(t *testing.T) {
			code, body := f.do(t, c.method, c.path, c.auth, c.body)
			if code != c.code {
				t.Fatalf("code %d want %d: %v", code, c.code, body)
			}
			if body["error"] == nil || body["error"] == "" {
				t.Fatalf("no error message: %v", body)
			}
			if field, _ := body["field"].(string); field != c.field {
				t.Fatalf("field %q want %q (%v)", field, c.field, body)
			}
		})
	}
}

func TestPreferencesAndDevices(t *testing.T) {
	f := newFixture(t)
	_, body := f.do(t, "GET", "/v1/preferences", "tok-u1", "")
	ch := body["channels"].(map[string]any)
	if ch["in_app"] != true || ch["push"] != true {
		t.Fatalf("defaults: %v", body)
	}
	code, _ := f.do(t, "PUT", "/v1/preferences", "tok-u1", `{"muted_types":["like"],"channels":{"in_app":true,"push":false},"quiet_hours":{"start":"22:00","end":"07:00","timezone":"Europe/Paris"}}`)
	if code != 200 {
		t.Fatalf("put %d", code)
	}
	p, _ := f.store.GetPreferences(context.Background(), "u1")
	if p.Channels.Push || !p.Muted("like") || p.QuietHours.Timezone != "Europe/Paris" {
		t.Fatalf("stored %+v", p)
	}
	code, body = f.do(t, "POST", "/v1/devices", "tok-u1", `{"platform":"ios","token":"abc","app_id":"com.example"}`)
	if code != 201 || body["token"] != "abc" {
		t.Fatalf("device: %d %v", code, body)
	}
	// Another user cannot delete it.
	if code, _ := f.do(t, "DELETE", "/v1/devices/abc", "tok-u2", ""); code != 404 {
		t.Fatalf("foreign delete %d", code)
	}
	if code, _ := f.do(t, "DELETE", "/v1/devices/abc", "tok-u1", ""); code != 204 {
		t.Fatalf("delete %d", code)
	}
}

// gatewayLog is a MembershipNotifier that is also a PreferencesNotifier,
// as the gateways' Cluster is.
type gatewayLog struct {
	mu    sync.Mutex
	prefs map[string][]herald.Preferences
}

func (g *gatewayLog) MembershipChanged(context.Context, string, string, bool) {}

func (g *gatewayLog) PreferencesChanged(_ context.Context, userID string, p herald.Preferences) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.prefs[userID] = append(g.prefs[userID], p)
}

// PUT /v1/preferences tells the gateways the stored preferences, after
// storing them; a refused PUT tells them nothing.
func TestPreferencesToldToGateways(t *testing.T) {
	gl := &gatewayLog{prefs: map[string][]herald.Preferences{}}
	f := newFixture(t, func(c *Config) { c.Memberships = gl })
	if code, _ := f.do(t, "PUT", "/v1/preferences", "tok-u1", `{"muted_types":["promo","like","promo"],"channels":{"in_app":false}}`); code != 200 {
		t.Fatalf("put %d", code)
	}
	if code, _ := f.do(t, "PUT", "/v1/preferences", "tok-u1", `{"muted_types":[""]}`); code != 400 {
		t.Fatalf("bad put %d", code)
	}
	gl.mu.Lock()
	defer gl.mu.Unlock()
	got := gl.prefs["u1"]
	if len(got) != 1 || !slices.Equal(got[0].MutedTypes, []string{"like", "promo"}) || got[0].Channels.InApp || !got[0].Channels.Push {
		t.Fatalf("told %+v, want the stored preferences once", got)
	}
}

func TestHealthAndMetrics(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.do(t, "GET", "/healthz", "", ""); code != 200 {
		t.Fatal(code)
	}
	waitReadyz(t, f.srv.Config.Handler, "", func(r readyzReply) bool { return r.code == 200 })
	f.do(t, "GET", "/v1/notifications", "tok-u1", "")
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `herald_http_requests_total{code="200",route="/v1/notifications"}`) {
		t.Fatalf("metrics missing request counter")
	}
	_ = f.store.Close()
	// The background check notices the closed store.
	waitReadyz(t, f.srv.Config.Handler, "", func(r readyzReply) bool { return r.code == 503 && r.failed["store"] != "" })
}

func TestRateLimits(t *testing.T) {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, "herald.events"))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	cl, err := kgo.NewClient(kgo.SeedBrokers(cluster.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s, err := New(Config{Store: memory.New(), Events: pipeline.NewEventWriter(cl, topics.Names{}), Users: tokens{}, Keys: keys{},
		EventsPerKey: Limit{Rate: 1, Burst: 3}, RequestsPerUser: Limit{Rate: 1, Burst: 2},
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	f := &fixture{srv: srv}

	// Events count per event: a batch of 3 uses the whole burst.
	if code, _ := f.do(t, "POST", "/v1/events", "key-1", `{"events":[{"id":"1","user_id":"u","type":"t"},{"id":"2","user_id":"u","type":"t"},{"id":"3","user_id":"u","type":"t"}]}`); code != 202 {
		t.Fatalf("batch within burst: %d", code)
	}
	req, _ := http.NewRequest("POST", srv.URL+"/v1/events", strings.NewReader(`{"id":"4","user_id":"u","type":"t"}`))
	req.Header.Set("Authorization", "Bearer key-1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("over the limit: %d Retry-After=%q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	// Per user: u1 has a burst of 2, u2 is unaffected by u1.
	for i := 0; i < 2; i++ {
		if code, _ := f.do(t, "GET", "/v1/notifications/unread_count", "tok-u1", ""); code != 200 {
			t.Fatalf("request %d: %d", i, code)
		}
	}
	if code, body := f.do(t, "GET", "/v1/notifications/unread_count", "tok-u1", ""); code != 429 || body["error"] == nil {
		t.Fatalf("u1 third request: %d %v", code, body)
	}
	if code, _ := f.do(t, "GET", "/v1/notifications/unread_count", "tok-u2", ""); code != 200 {
		t.Fatalf("u2: %d", code)
	}
	// Tokens come back with time.
	now = now.Add(time.Second)
	if code, _ := f.do(t, "GET", "/v1/notifications/unread_count", "tok-u1", ""); code != 200 {
		t.Fatalf("u1 after a second: %d", code)
	}
}

func TestLimitersStayBounded(t *testing.T) {
	ls := newLimiters(Limit{Rate: 1, Burst: 1}, 10)
	now := time.Now()
	for i := 0; i < 1000; i++ {
		ls.allow(fmt.Sprint("user-", i), 1, now)
	}
	if n := len(ls.cur) + len(ls.prev); n > 20 {
		t.Fatalf("%d buckets kept, want at most 20", n)
	}
	// A recent key survives one generation swap with its state.
	ls.allow("hot", 1, now)
	if v, _ := ls.allow("hot", 1, now); v == allowed {
		t.Fatal("hot key got a second token in the same instant")
	}
}

func TestCORS(t *testing.T) {
	s, err := New(Config{Store: memory.New(), Users: tokens{}, CORSOrigins: []string{"https://app.example/"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	defer srv.Close()
	pre, _ := http.NewRequest("OPTIONS", srv.URL+"/v1/notifications", nil)
	pre.Header.Set("Origin", "https://app.example")
	pre.Header.Set("Access-Control-Request-Method", "GET")
	resp, err := http.DefaultClient.Do(pre)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" ||
		!strings.Contains(resp.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	get, _ := http.NewRequest("GET", srv.URL+"/v1/notifications", nil)
	get.Header.Set("Origin", "https://evil.example")
	get.Header.Set("Authorization", "Bearer tok-u1")
	resp, err = http.DefaultClient.Do(get)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("foreign origin got CORS headers: %d %v", resp.StatusCode, resp.Header)
	}
}
