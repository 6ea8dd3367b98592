package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/memory"
)

// subsStore is a memory store with a fake Subscriptions of its own: its
// methods are declared on subsStore itself, so they win over whatever
// the memory store implements, and tests can make them fail.
type subsStore struct {
	*memory.Store

	mu     sync.Mutex
	topics map[string]map[string]time.Time // topic → user → subscribed at
	fail   error                           // returned by every call when set
	failOn string                          // user id whose calls fail with fail
}

var _ store.Store = (*subsStore)(nil)

func newSubsStore() *subsStore { return withSubs(memory.New()) }

// withSubs gives st the fake Subscriptions.
func withSubs(st *memory.Store) *subsStore {
	return &subsStore{Store: st, topics: map[string]map[string]time.Time{}}
}

func (s *subsStore) check(userID string) error {
	if s.fail != nil && (s.failOn == "" || s.failOn == userID) {
		return s.fail
	}
	return nil
}

func (s *subsStore) count(userID string) int {
	n := 0
	for _, m := range s.topics {
		if _, ok := m[userID]; ok {
			n++
		}
	}
	return n
}

func (s *subsStore) Subscribe(_ context.Context, userID, topic string, at time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(userID); err != nil {
		return false, err
	}
	if err := herald.ValidateTopic(topic); err != nil {
		return false, err
	}
	m := s.topics[topic]
	if _, ok := m[userID]; ok {
		return false, nil
	}
	if s.count(userID) >= store.MaxTopicsPerUser {
		return false, &herald.ValidationError{Field: "topic", Reason: fmt.Sprintf("the user has %d topics, the most allowed", store.MaxTopicsPerUser)}
	}
	if m == nil {
		m = map[string]time.Time{}
		s.topics[topic] = m
	}
	m[userID] = at
	return true, nil
}

func (s *subsStore) Unsubscribe(_ context.Context, userID, topic string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(userID); err != nil {
		return false, err
	}
	_, ok := s.topics[topic][userID]
	delete(s.topics[topic], userID)
	return ok, nil
}

func (s *subsStore) Topics(_ context.Context, userID string) ([]store.Subscription, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(userID); err != nil {
		return nil, err
	}
	out := []store.Subscription{}
	for topic, m := range s.topics {
		if at, ok := m[userID]; ok {
			out = append(out, store.Subscription{UserID: userID, Topic: topic, SubscribedAt: at})
		}
	}
	slices.SortFunc(out, func(a, b store.Subscription) int { return strings.Compare(a.Topic, b.Topic) })
	return out, nil
}

func (s *subsStore) Members(context.Context, string, string, int) ([]store.Subscription, error) {
	return nil, errors.New("not used by the API")
}

func (s *subsStore) MemberCount(_ context.Context, topic string) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.check(""); err != nil {
		return 0, err
	}
	return int64(len(s.topics[topic])), nil
}

type subsFixture struct {
	*fixture
	subs *subsStore
	mu   sync.Mutex
	now  time.Time
}

func (f *subsFixture) clock() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *subsFixture) advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
}

func newSubsFixture(t *testing.T, perKey Limit) *subsFixture {
	t.Helper()
	f := &subsFixture{subs: newSubsStore(), now: time.Date(2026, 12, 2, 10, 0, 0, 123456789, time.UTC)}
	s, err := New(Config{Store: f.subs, Users: tokens{}, Keys: keys{}, EventsPerKey: perKey, Now: f.clock, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	f.fixture = &fixture{srv: srv}
	return f
}

// wantError checks an error answer's status, field and message.
func wantError(t *testing.T, code int, body map[string]any, wantCode int, wantField, wantMsg string) {
	t.Helper()
	msg, _ := body["error"].(string)
	field, _ := body["field"].(string)
	if code != wantCode || field != wantField || !strings.Contains(msg, wantMsg) {
		t.Fatalf("got %d field %q error %q; want %d field %q error containing %q", code, field, msg, wantCode, wantField, wantMsg)
	}
}

func TestSubscriptions(t *testing.T) {
	f := newSubsFixture(t, Limit{})
	first := "2026-12-02T10:00:00.123456Z" // microseconds, UTC
	code, body := f.do(t, "PUT", "/v1/subscriptions/news", "tok-u1", "")
	if code != 201 || body["topic"] != "news" || body["subscribed_at"] != first {
		t.Fatalf("new: %d %v", code, body)
	}
	f.advance(time.Hour)
	code, body = f.do(t, "PUT", "/v1/subscriptions/news", "tok-u1", "")
	if code != 200 || body["topic"] != "news" || body["subscribed_at"] != first {
		t.Fatalf("again: %d %v (want the first subscribed_at)", code, body)
	}
	if code, body = f.do(t, "PUT", "/v1/subscriptions/alerts:eu", "tok-u1", ""); code != 201 {
		t.Fatalf("second topic: %d %v", code, body)
	}
	code, body = f.do(t, "GET", "/v1/subscriptions", "tok-u1", "")
	raw, _ := json.Marshal(body)
	if want := `{"subscriptions":[{"subscribed_at":"2026-12-02T11:00:00.123456Z","topic":"alerts:eu"},{"subscribed_at":"` + first + `","topic":"news"}]}`; code != 200 || string(raw) != want {
		t.Fatalf("list: %d %s\nwant %s", code, raw, want)
	}
	code, body = f.do(t, "GET", "/v1/subscriptions", "tok-u2", "")
	if raw, _ := json.Marshal(body); code != 200 || string(raw) != `{"subscriptions":[]}` {
		t.Fatalf("empty list: %d %s", code, raw)
	}
	if code, body = f.do(t, "DELETE", "/v1/subscriptions/news", "tok-u1", ""); code != 204 {
		t.Fatalf("delete: %d %v", code, body)
	}
	code, body = f.do(t, "DELETE", "/v1/subscriptions/news", "tok-u1", "")
	wantError(t, code, body, 404, "", "not subscribed")
}

func TestSubscriptionsErrors(t *testing.T) {
	f := newSubsFixture(t, Limit{})
	long := strings.Repeat("t", herald.MaxTopicLen+1)
	for _, c := range []struct {
		name, method, path, auth string
		code                     int
		field, msg               string
	}{
		{"no token", "PUT", "/v1/subscriptions/news", "", 401, "", "missing token"},
		{"bad token", "GET", "/v1/subscriptions", "bad", 401, "", "bad token"},
		{"bad topic", "PUT", "/v1/subscriptions/a%20b", "tok-u1", 400, "topic", "may only contain"},
		{"long topic", "PUT", "/v1/subscriptions/" + long, "tok-u1", 400, "topic", "more than the 128"},
		{"bad topic delete", "DELETE", "/v1/subscriptions/a%2Fb", "tok-u1", 400, "topic", "may only contain"},
		{"method", "POST", "/v1/subscriptions/news", "tok-u1", 405, "", "not allowed"},
		{"list method", "POST", "/v1/subscriptions", "tok-u1", 405, "", "not allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			code, body := f.do(t, c.method, c.path, c.auth, "")
			wantError(t, code, body, c.code, c.field, c.msg)
		})
	}

	// The 1001st topic.
	f.subs.mu.Lock()
	for i := range store.MaxTopicsPerUser {
		f.subs.topics[fmt.Sprintf("t%d", i)] = map[string]time.Time{"full": f.now}
	}
	f.subs.mu.Unlock()
	code, body := f.do(t, "PUT", "/v1/subscriptions/one-more", "tok-full", "")
	wantError(t, code, body, 400, "topic", "most allowed")
	// Subscribed already: still 200.
	if code, body = f.do(t, "PUT", "/v1/subscriptions/t7", "tok-full", ""); code != 200 {
		t.Fatalf("existing topic at the bound: %d %v", code, body)
	}

	f.subs.mu.Lock()
	f.subs.fail = errors.New("disk on fire")
	f.subs.mu.Unlock()
	for _, c := range [][2]string{{"PUT", "/v1/subscriptions/news"}, {"DELETE", "/v1/subscriptions/news"}, {"GET", "/v1/subscriptions"}} {
		code, body := f.do(t, c[0], c[1], "tok-u1", "")
		wantError(t, code, body, 503, "", "storage unavailable")
	}
}

// idList is `"p0","p1",…`: n ids of width characters.
func idList(n, width int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		id := fmt.Sprintf("p%d-", i)
		fmt.Fprintf(&sb, "%q", id+strings.Repeat("x", max(0, width-len(id))))
	}
	return sb.String()
}

func TestAudienceMembers(t *testing.T) {
	f := newSubsFixture(t, Limit{})
	path := "/v1/audiences/team:42/members"
	code, body := f.do(t, "POST", path, "key-1", `{"add":["a","b","c","a"]}`)
	if code != 200 || body["added"] != float64(3) || body["removed"] != float64(0) {
		t.Fatalf("add: %d %v", code, body)
	}
	f.subs.mu.Lock()
	at := f.subs.topics["team:42"]["b"]
	f.subs.mu.Unlock()
	if !at.Equal(f.now.Truncate(time.Microsecond)) {
		t.Fatalf("subscribed at %v, want the request's time", at)
	}
	// Idempotent.
	if code, body = f.do(t, "POST", path, "key-1", `{"add":["a","b","c"]}`); code != 200 || body["added"] != float64(0) || body["removed"] != float64(0) {
		t.Fatalf("repeat: %d %v", code, body)
	}
	code, body = f.do(t, "POST", path, "key-1", `{"add":["d"],"remove":["a","zz"]}`)
	if code != 200 || body["added"] != float64(1) || body["removed"] != float64(1) {
		t.Fatalf("add and remove: %d %v", code, body)
	}
	code, body = f.do(t, "GET", "/v1/audiences/team:42", "key-1", "")
	if code != 200 || body["topic"] != "team:42" || body["members"] != float64(3) {
		t.Fatalf("count: %d %v", code, body)
	}
	if code, body = f.do(t, "GET", "/v1/audiences/nobody", "key-1", ""); code != 200 || body["members"] != float64(0) {
		t.Fatalf("empty audience: %d %v", code, body)
	}
	// A user's own subscription and a service's membership are the same.
	code, body = f.do(t, "GET", "/v1/subscriptions", "tok-d", "")
	if subs, _ := body["subscriptions"].([]any); code != 200 || len(subs) != 1 {
		t.Fatalf("d's subscriptions: %d %v", code, body)
	}
	// 10,000 ids of the longest kind: over the 64 KiB default body limit,
	// within the route's own.
	code, body = f.do(t, "POST", "/v1/audiences/big/members", "key-1", `{"add":[`+idList(MaxMembersPerCall, herald.MaxUserIDLen)+`]}`)
	if code != 200 || body["added"] != float64(MaxMembersPerCall) {
		t.Fatalf("10,000 ids: %d %v", code, body)
	}
}

func TestAudienceMembersErrors(t *testing.T) {
	f := newSubsFixture(t, Limit{})
	path := "/v1/audiences/team/members"
	for _, c := range []struct {
		name, path, auth, body string
		code                   int
		field, msg             string
	}{
		{"no key", path, "", `{"add":["a"]}`, 401, "", "missing API key"},
		{"bad key", path, "tok-u1", `{"add":["a"]}`, 401, "", "invalid API key"},
		{"bad topic", "/v1/audiences/a%20b/members", "key-1", `{"add":["a"]}`, 400, "topic", "may only contain"},
		{"empty body", path, "key-1", ``, 400, "", "empty body"},
		{"not object", path, "key-1", `["a"]`, 400, "", "JSON object"},
		{"unknown field", path, "key-1", `{"add":["a"],"members":["b"]}`, 400, "members", "unknown field"},
		{"trailing", path, "key-1", `{"add":["a"]} {}`, 400, "", "trailing data"},
		{"add not array", path, "key-1", `{"add":"a"}`, 400, "add", "must be an array"},
		{"none", path, "key-1", `{}`, 400, "add", "at least one"},
		{"both empty", path, "key-1", `{"add":[],"remove":null}`, 400, "add", "at least one"},
		{"add too many", path, "key-1", `{"add":[` + idList(MaxMembersPerCall+1, 1) + `]}`, 400, "add", "10001 user ids together, more than the 10000"},
		{"together too many", path, "key-1", `{"add":[` + idList(5000, 1) + `],"remove":[` + idList(5001, 1) + `]}`, 400, "remove", "more than the 10000"},
		{"bad id", path, "key-1", `{"add":["a","b","c","d","e","f","g","h i"]}`, 400, "add[7]", "may only contain"},
		{"empty id", path, "key-1", `{"remove":["a",""]}`, 400, "remove[1]", "must not be empty"},
		{"long id", path, "key-1", `{"add":["` + strings.Repeat("x", 129) + `"]}`, 400, "add[0]", "more than the 128"},
		{"number id", path, "key-1", `{"add":["a","b",7]}`, 400, "add[2]", "must be a user id (a string), got 7"},
		{"null id", path, "key-1", `{"remove":[null]}`, 400, "remove[0]", "got null"},
		{"in both", path, "key-1", `{"add":["a","b"],"remove":["c","b"]}`, 400, "remove[1]", `"b" is in add too`},
		{"method", path, "key-1", ``, 405, "", "not allowed"},
		{"count method", "/v1/audiences/team", "key-1", `{}`, 405, "", "not allowed"},
		{"count bad topic", "/v1/audiences/" + strings.Repeat("t", 129), "key-1", ``, 400, "topic", "more than the 128"},
		{"count no key", "/v1/audiences/team", "", ``, 401, "", "missing API key"},
	} {
		t.Run(c.name, func(t *testing.T) {
			method := "POST"
			if c.name == "method" || strings.HasPrefix(c.name, "count ") && c.name != "count method" {
				method = "GET"
			}
			if c.name == "count method" {
				method = "PUT"
			}
			code, body := f.do(t, method, c.path, c.auth, c.body)
			wantError(t, code, body, c.code, c.field, c.msg)
		})
	}
	// Over the route's 2 MiB: 413.
	code, body := f.do(t, "POST", path, "key-1", `{"add":["a"],"pad":"`+strings.Repeat(" ", maxMembersBody)+`"}`)
	wantError(t, code, body, 413, "", "larger than 2097152 bytes")
	if len(f.subs.topics["team"]) != 0 {
		t.Fatalf("a refused request changed members: %v", f.subs.topics["team"])
	}

	// A member at store.MaxTopicsPerUser: the store's error names the element.
	f.subs.mu.Lock()
	for i := range store.MaxTopicsPerUser {
		f.subs.topics[fmt.Sprintf("t%d", i)] = map[string]time.Time{"full": f.now}
	}
	f.subs.mu.Unlock()
	code, body = f.do(t, "POST", path, "key-1", `{"add":["a","a","full"]}`)
	wantError(t, code, body, 400, "add[2]", "may have been applied")

	f.subs.mu.Lock()
	f.subs.fail = errors.New("disk on fire")
	f.subs.mu.Unlock()
	code, body = f.do(t, "POST", path, "key-1", `{"add":["x"],"remove":["y"]}`)
	wantError(t, code, body, 503, "", "storage unavailable")
	code, body = f.do(t, "GET", "/v1/audiences/team", "key-1", "")
	wantError(t, code, body, 503, "", "storage unavailable")
}

func TestAudienceMembersRateLimit(t *testing.T) {
	f := newSubsFixture(t, Limit{Rate: 1, Burst: 5})
	path := "/v1/audiences/team/members"
	code, body := f.do(t, "POST", path, "key-1", `{"add":["a","b","c","d","e","f"]}`)
	wantError(t, code, body, 400, "add", "can never pass this API key's rate limit")
	code, body = f.do(t, "POST", path, "key-1", `{"remove":["a","b","c","d","e","f"]}`)
	wantError(t, code, body, 400, "remove", "send at most 5")
	// Charged per distinct id: 3 then 3 more is over the burst of 5.
	if code, body = f.do(t, "POST", path, "key-1", `{"add":["a","b","c","a"]}`); code != 200 {
		t.Fatalf("first: %d %v", code, body)
	}
	code, body = f.do(t, "POST", path, "key-1", `{"add":["d","e","f"]}`)
	wantError(t, code, body, 429, "", "rate limit exceeded")
	// The count shares the bucket: one token per call.
	for range 2 {
		if code, body = f.do(t, "GET", "/v1/audiences/team", "key-1", ""); code != 200 {
			t.Fatalf("count: %d %v", code, body)
		}
	}
	code, body = f.do(t, "GET", "/v1/audiences/team", "key-1", "")
	wantError(t, code, body, 429, "", "rate limit exceeded")
	f.advance(10 * time.Second)
	if code, body = f.do(t, "POST", path, "key-1", `{"add":["d","e","f"]}`); code != 200 || body["added"] != float64(3) {
		t.Fatalf("after refill: %d %v", code, body)
	}
}

func TestPostEventsMultiRecipient(t *testing.T) {
	f := newFixture(t)
	code, body := f.do(t, "POST", "/v1/events", "key-1", `{"id":"b1","user_ids":["u1","u2","u1"],"type":"t"}`)
	if code != 202 || body["accepted"] != float64(1) {
		t.Fatalf("user_ids: %d %v", code, body)
	}
	code, body = f.do(t, "POST", "/v1/events", "key-1", `{"events":[{"id":"b2","audience":"news","type":"t"},{"id":"e3","user_id":"u3","type":"t"}]}`)
	if code != 202 || body["accepted"] != float64(2) {
		t.Fatalf("batch: %d %v", code, body)
	}
	for _, c := range []struct{ body, field, msg string }{
		{`{"id":"1","user_id":"u","audience":"news","type":"t"}`, "audience", "only one of user_id, user_ids or audience"},
		{`{"events":[{"id":"1","user_id":"u","type":"t"},{"id":"2","user_ids":["a","b c"],"type":"t"}]}`, "events[1].user_ids[1]", "may only contain"},
		{`{"id":"1","user_ids":[],"type":"t"}`, "user_ids", "must have 1 to 1000"},
	} {
		code, body := f.do(t, "POST", "/v1/events", "key-1", c.body)
		wantError(t, code, body, 400, c.field, c.msg)
	}
	// Multi-recipient events are keyed by their id, the other by user id.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	got := map[string]string{}
	var b1 herald.Event
	for len(got) < 3 {
		fs := f.client.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("got %v before %v", got, err)
		}
		fs.EachRecord(func(r *kgo.Record) {
			var e herald.Event
			_ = json.Unmarshal(r.Value, &e)
			got[e.ID] = string(r.Key)
			if e.ID == "b1" {
				b1 = e
			}
		})
	}
	if got["b1"] != "b1" || got["b2"] != "b2" || got["e3"] != "u3" {
		t.Fatalf("keys: %v", got)
	}
	if strings.Join(b1.UserIDs, ",") != "u1,u2" || b1.UserID != "" {
		t.Fatalf("b1 in Kafka: %+v", b1)
	}
}

// stallSubs stalls the subscription of user "slow" until its context
// ends, as a saturated Cassandra's conditional write does.
type stallSubs struct{ *subsStore }

func (s stallSubs) Subscribe(ctx context.Context, userID, topic string, at time.Time) (bool, error) {
	if userID == "slow" {
		<-ctx.Done()
		return false, ctx.Err()
	}
	return s.subsStore.Subscribe(ctx, userID, topic, at)
}

// A members call that outlasts MembersTimeout is answered 503 with
// Retry-After and what was applied, not cut off by the write timeout.
func TestAudienceMembersTimeout(t *testing.T) {
	subs := newSubsStore()
	s, err := New(Config{Store: stallSubs{subs}, Users: tokens{}, Keys: keys{}, MembersTimeout: 50 * time.Millisecond, Logger: quietLog()})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	f := &fixture{srv: srv}
	code, body := f.do(t, "POST", "/v1/audiences/team/members", "key-1", `{"add":["slow"]}`)
	wantError(t, code, body, 503, "", "0 added and 0 removed in 50ms, the rest not applied; the call is idempotent, retry it")
}
