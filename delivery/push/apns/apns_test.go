package apns

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/internal/errclass"
)

func msg(token string) push.Message {
	return push.Message{
		UserID: "u1",
		Device: herald.Device{Platform: "ios", Token: token, AppID: "app"},
		Notification: herald.Notification{
			ID: "01JNOTIFICATION0000000000A", Seq: 42, EventID: "ev-1", Type: "comment",
			Priority: herald.PriorityNormal, Title: "Hello", Body: "World",
			Data: json.RawMessage(`{"post":7}`), CreatedAt: time.Unix(1_700_000_000, 0),
		},
		Badge: 3,
	}
}

func TestSendHeadersAndPayload(t *testing.T) {
	s := newServer(t)
	snd := s.sender(t, Config{})
	hi := msg("tok-high")
	hi.Notification.Priority = herald.PriorityHigh
	hi.CollapseKey = "thread-9"
	hi.ExpiresAt = time.Unix(1_800_000_000, 0)
	lo := msg("tok-low")
	res := snd.Send(context.Background(), []push.Message{hi, lo})
	for i, r := range res {
		if !r.Sent || r.Provider != push.ProviderAPNs || r.MessageID == "" {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	byPath := map[string]seen{}
	for _, q := range s.requests() {
		byPath[q.path] = q
	}
	h := byPath["/3/device/tok-high"].header
	for k, want := range map[string]string{
		"apns-push-type":   "alert",
		"apns-priority":    "10",
		"apns-expiration":  "1800000000",
		"apns-collapse-id": "thread-9",
		"apns-topic":       "com.example.app",
		"apns-id":          APNsID(&hi),
	} {
		if got := h.Get(k); got != want {
			t.Errorf("high: %s = %q, want %q", k, got, want)
		}
	}
	if res[0].MessageID != APNsID(&hi) {
		t.Errorf("MessageID %q, want the apns-id", res[0].MessageID)
	}
	h = byPath["/3/device/tok-low"].header
	if h.Get("apns-priority") != "5" || h.Get("apns-collapse-id") != lo.Notification.ID || h.Get("apns-expiration") != "" {
		t.Errorf("low: priority %q collapse %q expiration %q", h.Get("apns-priority"), h.Get("apns-collapse-id"), h.Get("apns-expiration"))
	}
	p := byPath["/3/device/tok-low"].payload
	aps, _ := p["aps"].(map[string]any)
	alert, _ := aps["alert"].(map[string]any)
	if alert["title"] != "Hello" || alert["body"] != "World" || aps["badge"] != 3.0 || aps["sound"] != "default" || aps["thread-id"] != "comment" {
		t.Errorf("aps: %v", aps)
	}
	if p["herald_id"] != lo.Notification.ID || p["herald_seq"] != 42.0 || p["herald_event_id"] != "ev-1" {
		t.Errorf("herald ids: %v", p)
	}
	if d, _ := p["data"].(map[string]any); d["post"] != 7.0 {
		t.Errorf("data: %v", p["data"])
	}
}

func TestNoBadgeWhenNegative(t *testing.T) {
	m := msg("t")
	m.Badge = -1
	b, err := Payload(&m)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), "badge") {
		t.Fatalf("badge present: %s", b)
	}
}

func TestAPNsIDStableAndUUID(t *testing.T) {
	a, b := msg("tok-a"), msg("tok-b")
	if again := a; APNsID(&a) != APNsID(&again) {
		t.Fatal("not stable")
	}
	if APNsID(&a) == APNsID(&b) {
		t.Fatal("same id for two devices")
	}
	id := APNsID(&a)
	if len(id) != 36 || id[14] != '8' || !strings.ContainsRune("89ab", rune(id[19])) || strings.ToLower(id) != id {
		t.Fatalf("not a lowercase v8 UUID: %s", id)
	}
}

func TestCollapseIDHashedPast64Bytes(t *testing.T) {
	m := msg("t")
	m.CollapseKey = strings.Repeat("k", 64)
	if CollapseID(&m) != m.CollapseKey {
		t.Fatal("64 bytes must be kept")
	}
	m.CollapseKey = strings.Repeat("k", 65)
	c := CollapseID(&m)
	if len(c) != 64 || c == m.CollapseKey[:64] || c != CollapseID(&m) {
		t.Fatalf("65 bytes: %q", c)
	}
}

// sizeWithBody returns m's payload size for a body of n 'x' bytes.
func sizeWithBody(t *testing.T, m push.Message, n int) int {
	m.Notification.Body = strings.Repeat("x", n)
	m.Notification.Data = nil
	b, err := Payload(&m)
	if err != nil {
		t.Fatal(err)
	}
	return len(b)
}

func TestPayloadTruncationAtTheLimit(t *testing.T) {
	m := msg("t")
	m.Notification.Data = nil
	m.Notification.Title = "Title stays whole ✓"
	// Find the body length that makes exactly 4096 bytes.
	n := MaxPayload - sizeWithBody(t, m, 1) + 1
	if got := sizeWithBody(t, m, n); got != MaxPayload {
		t.Fatalf("setup: %d bytes", got)
	}
	m.Notification.Body = strings.Repeat("x", n)
	b, err := Payload(&m)
	if err != nil || len(b) != MaxPayload || strings.Contains(string(b), Ellipsis) {
		t.Fatalf("exactly at the limit: %d bytes, err %v, truncated %v", len(b), err, strings.Contains(string(b), Ellipsis))
	}
	m.Notification.Body = strings.Repeat("x", n+1)
	b, err = Payload(&m)
	if err != nil || len(b) > MaxPayload {
		t.Fatalf("one over: %d bytes, err %v", len(b), err)
	}
	var p payload
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatal(err)
	}
	if p.APS.Alert.Title != m.Notification.Title {
		t.Fatalf("title changed: %q", p.APS.Alert.Title)
	}
	if !strings.HasSuffix(p.APS.Alert.Body, Ellipsis) || !strings.HasPrefix(m.Notification.Body, strings.TrimSuffix(p.APS.Alert.Body, Ellipsis)) {
		t.Fatalf("body not a prefix + ellipsis: %q", p.APS.Alert.Body)
	}
	// The ellipsis is 3 bytes: the longest prefix that fits is 4 'x'
	// shorter, and the payload is 4096 bytes again.
	if len(b) != MaxPayload || len(p.APS.Alert.Body) != n-3+len(Ellipsis) {
		t.Fatalf("not the longest prefix that fits: %d bytes", len(b))
	}
}

func TestPayloadTruncatesOnRuneBoundaries(t *testing.T) {
	m := msg("t")
	m.Notification.Body = strings.Repeat("é日本", 2000)
	b, err := Payload(&m)
	if err != nil || len(b) > MaxPayload {
		t.Fatalf("%d bytes, err %v", len(b), err)
	}
	var p payload
	if err := json.Unmarshal(b, &p); err != nil || !utf8.ValidString(p.APS.Alert.Body) || !strings.HasSuffix(p.APS.Alert.Body, Ellipsis) {
		t.Fatalf("body %q err %v", p.APS.Alert.Body, err)
	}
	// HTML-escaped characters count as json.Marshal writes them.
	m.Notification.Body = strings.Repeat("<&>", 2000)
	if b, err = Payload(&m); err != nil || len(b) > MaxPayload {
		t.Fatalf("escaped: %d bytes, err %v", len(b), err)
	}
}

func TestPayloadTooLargeIsPermanentAndNotSent(t *testing.T) {
	s := newServer(t)
	snd := s.sender(t, Config{})
	m := msg("t")
	m.Notification.Title = strings.Repeat("T", MaxPayload)
	r := snd.Send(context.Background(), []push.Message{m})[0]
	if r.Sent || r.Class != errclass.ClassPermanent || r.Reason != push.ReasonPayloadTooLarge || r.TokenDead {
		t.Fatalf("%+v", r)
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("%d requests sent", n)
	}
}

func TestProviderAnswersAreClassified(t *testing.T) {
	s := newServer(t)
	s.answer = func(q *seen) (int, string, http.Header) {
		switch {
		case strings.HasSuffix(q.path, "/gone"):
			return 410, "Unregistered", nil
		case strings.HasSuffix(q.path, "/bad"):
			return 400, "BadDeviceToken", nil
		case strings.HasSuffix(q.path, "/busy"):
			return 429, "TooManyRequests", http.Header{"Retry-After": {"7"}}
		case strings.HasSuffix(q.path, "/down"):
			return 500, "InternalServerError", nil
		case strings.HasSuffix(q.path, "/topic"):
			return 400, "TopicDisallowed", nil
		}
		return 200, "", nil
	}
	snd := s.sender(t, Config{})
	res := snd.Send(context.Background(), []push.Message{msg("gone"), msg("bad"), msg("busy"), msg("down"), msg("topic"), msg("ok")})
	check := func(i int, dead bool, class errclass.Class, reason string) {
		t.Helper()
		r := res[i]
		if r.Sent || r.TokenDead != dead || r.Class != class || r.Reason != reason {
			t.Errorf("result %d: %+v", i, r)
		}
	}
	check(0, true, errclass.ClassPermanent, "Unregistered")
	check(1, true, errclass.ClassPermanent, "BadDeviceToken")
	check(2, false, errclass.ClassTransient, "TooManyRequests")
	check(3, false, errclass.ClassTransient, "InternalServerError")
	check(4, false, errclass.ClassPermanent, "TopicDisallowed")
	if res[2].RetryAfter != 7*time.Second {
		t.Errorf("Retry-After: %v", res[2].RetryAfter)
	}
	if !res[5].Sent {
		t.Errorf("ok: %+v", res[5])
	}
}

func TestJWTRefreshedWhenOld(t *testing.T) {
	s := newServer(t)
	snd := s.sender(t, Config{})
	if r := snd.Send(context.Background(), []push.Message{msg("a")})[0]; !r.Sent {
		t.Fatalf("%+v", r)
	}
	first := s.requests()[0]
	if first.jwtErr != nil {
		t.Fatalf("jwt: %v", first.jwtErr)
	}
	// Age the token past apns2's refresh window (50 minutes).
	snd.tok.Lock()
	snd.tok.IssuedAt = time.Now().Add(-51 * time.Minute).Unix()
	snd.tok.Unlock()
	if r := snd.Send(context.Background(), []push.Message{msg("b")})[0]; !r.Sent {
		t.Fatalf("%+v", r)
	}
	second := s.requests()[1]
	if second.jwtErr != nil || second.bearer == first.bearer {
		t.Fatalf("token not replaced (err %v)", second.jwtErr)
	}
	if age := time.Now().Unix() - second.iat; age < 0 || age > 60 {
		t.Fatalf("new token issued %ds ago", age)
	}
	// A young token is kept.
	if r := snd.Send(context.Background(), []push.Message{msg("c")})[0]; !r.Sent || s.requests()[2].bearer != second.bearer {
		t.Fatalf("a fresh token was replaced: %+v", r)
	}
}

func TestExpiredProviderTokenRefreshesOnce(t *testing.T) {
	s := newServer(t)
	var stale atomic.Value
	s.answer = func(q *seen) (int, string, http.Header) {
		if q.bearer == stale.Load() {
			return 403, push.APNsExpiredProviderToken, nil
		}
		return 200, "", nil
	}
	snd := s.sender(t, Config{})
	stale.Store(snd.tok.Bearer)
	res := snd.Send(context.Background(), []push.Message{msg("a"), msg("b"), msg("c")})
	for i, r := range res {
		if !r.Sent {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
	// Clock skew that no fresh token fixes: permanent after one retry.
	s.answer = func(*seen) (int, string, http.Header) { return 403, push.APNsExpiredProviderToken, nil }
	before := len(s.requests())
	r := snd.Send(context.Background(), []push.Message{msg("d")})[0]
	if r.Sent || r.Class != errclass.ClassPermanent || r.Reason != push.APNsExpiredProviderToken {
		t.Fatalf("%+v", r)
	}
	if n := len(s.requests()) - before; n != 2 {
		t.Fatalf("%d requests, want 2 (one retry with a fresh token)", n)
	}
}

func TestBadKeyIsRefusedByTheServer(t *testing.T) {
	s := newServer(t)
	other := newServer(t)
	cfg := Config{App: s.app()}
	cfg.App.Key = other.p8
	snd, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	r := snd.Send(context.Background(), []push.Message{msg("a")})[0]
	if r.Sent || r.Class != errclass.ClassPermanent || r.Reason != push.APNsInvalidProviderToken {
		t.Fatalf("%+v", r)
	}
}

func TestNewNamesTheField(t *testing.T) {
	s := newServer(t)
	dir := t.TempDir()
	for _, tc := range []struct {
		edit func(*push.APNsApp)
		want string
	}{
		{func(a *push.APNsApp) { a.KeyID = "" }, "apns.key_id"},
		{func(a *push.APNsApp) { a.Key, a.KeyFile = nil, filepath.Join(dir, "missing.p8") }, "apns.key_file"},
		{func(a *push.APNsApp) { a.Key = []byte("not pem") }, "apns.key_file"},
		{func(a *push.APNsApp) { a.CA = []byte("not pem") }, "apns.ca_file"},
	} {
		a := s.app()
		tc.edit(&a)
		_, err := New(Config{App: a})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("want an error starting %q, got %v", tc.want, err)
		}
	}
	// Files work as well as bytes.
	a := s.app()
	key, ca := filepath.Join(dir, "k.p8"), filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(key, a.Key, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(ca, a.CA, 0o600); err != nil {
		t.Fatal(err)
	}
	a.Key, a.KeyFile, a.CA, a.CAFile = nil, key, nil, ca
	snd, err := New(Config{App: a})
	if err != nil {
		t.Fatal(err)
	}
	defer snd.Close()
	if r := snd.Send(context.Background(), []push.Message{msg("f")})[0]; !r.Sent {
		t.Fatalf("%+v", r)
	}
}

func TestHosts(t *testing.T) {
	for in, want := range map[string]string{
		"": "https://api.push.apple.com", "production": "https://api.push.apple.com",
		"sandbox": "https://api.sandbox.push.apple.com", "https://127.0.0.1:9/": "https://127.0.0.1:9",
	} {
		if got := Host(in); got != want {
			t.Errorf("Host(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSendStopsAtContextAndBoundsInFlight(t *testing.T) {
	s := newServer(t)
	release := make(chan struct{})
	var inFlight, peak atomic.Int32
	s.answer = func(*seen) (int, string, http.Header) {
		n := inFlight.Add(1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		inFlight.Add(-1)
		return 200, "", nil
	}
	snd := s.sender(t, Config{MaxInFlight: 3, Conns: 2})
	msgs := make([]push.Message, 10)
	for i := range msgs {
		msgs[i] = msg(fmt.Sprintf("t%d", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan []push.Result)
	go func() { done <- snd.Send(ctx, msgs) }()
	deadline := time.After(10 * time.Second)
	for inFlight.Load() < 3 {
		select {
		case <-deadline:
			t.Fatal("3 requests never in flight")
		case <-time.After(time.Millisecond):
		}
	}
	cancel()
	res := <-done
	close(release)
	if len(res) != len(msgs) {
		t.Fatalf("%d results", len(res))
	}
	if p := peak.Load(); p > 3 {
		t.Fatalf("%d requests in flight, bound 3", p)
	}
	for i, r := range res {
		if r.Sent || r.Class != errclass.ClassTransient || r.Reason != push.ReasonCanceled {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
}

func TestTimeoutIsTransient(t *testing.T) {
	s := newServer(t)
	release := make(chan struct{})
	defer close(release)
	s.answer = func(*seen) (int, string, http.Header) { <-release; return 200, "", nil }
	snd := s.sender(t, Config{Timeout: 50 * time.Millisecond})
	r := snd.Send(context.Background(), []push.Message{msg("slow")})[0]
	if r.Sent || r.Class != errclass.ClassTransient || r.Reason != push.ReasonTimeout {
		t.Fatalf("%+v", r)
	}
}

func TestExpiredIsNotSent(t *testing.T) {
	s := newServer(t)
	now := time.Unix(1_800_000_000, 0)
	snd := s.sender(t, Config{Now: func() time.Time { return now }})
	m := msg("late")
	m.ExpiresAt = now
	r := snd.Send(context.Background(), []push.Message{m})[0]
	if r.Sent || r.Reason != push.ReasonExpired || r.Class != errclass.ClassPermanent || r.TokenDead {
		t.Fatalf("%+v", r)
	}
	if n := len(s.requests()); n != 0 {
		t.Fatalf("%d requests", n)
	}
	m.ExpiresAt = now.Add(time.Second)
	if r := snd.Send(context.Background(), []push.Message{m})[0]; !r.Sent {
		t.Fatalf("before the expiry: %+v", r)
	}
}
