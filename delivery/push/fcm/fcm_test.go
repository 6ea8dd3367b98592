package fcm

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/delivery/push"
	"github.com/heraldhq/herald/internal/errclass"
)

// server is a small FCM HTTP v1 lookalike with its OAuth2 token endpoint.
type server struct {
	srv       *httptest.Server
	tokens    atomic.Int32 // token requests
	mu        sync.Mutex
	sends     map[string]int // requests per device token
	bodies    map[string]map[string]any
	tokenFail int // status of the token endpoint (0: 200)
}

func newServer(t testing.TB) *server {
	s := &server{sends: map[string]int{}, bodies: map[string]map[string]any{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		s.tokens.Add(1)
		if s.tokenFail != 0 {
			w.WriteHeader(s.tokenFail)
			_, _ = io.WriteString(w, `{"error":"invalid_grant"}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"access_token":"ya29.fake","token_type":"Bearer","expires_in":3600}`)
	})
	mux.HandleFunc("POST /v1/projects/{project}/messages:send", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer ya29.fake" {
			fcmError(w, 401, "UNAUTHENTICATED", "", "Request had invalid authentication credentials.")
			return
		}
		var req struct {
			Message map[string]any `json:"message"`
		}
		_ = json.NewDecoder(r.Body).Decode(&req)
		tok, _ := req.Message["token"].(string)
		s.mu.Lock()
		s.sends[tok]++
		n := s.sends[tok]
		s.bodies[tok] = req.Message
		s.mu.Unlock()
		switch {
		case strings.HasPrefix(tok, "unregistered-"):
			fcmError(w, 404, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.")
		case strings.HasPrefix(tok, "bad-"):
			fcmError(w, 400, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "The registration token is not a valid FCM registration token")
		case strings.HasPrefix(tok, "flaky-") && n == 1:
			w.Header().Set("Retry-After", "1")
			fcmError(w, 503, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.")
		case strings.HasPrefix(tok, "down-"):
			fcmError(w, 500, "INTERNAL", "INTERNAL", "Internal error encountered.")
		case strings.HasPrefix(tok, "quota-"):
			w.Header().Set("Retry-After", "30")
			fcmError(w, 429, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded.")
		case strings.HasPrefix(tok, "slow-"):
			<-r.Context().Done()
		default:
			_ = json.NewEncoder(w).Encode(map[string]string{"name": "projects/" + r.PathValue("project") + "/messages/" + tok})
		}
	})
	s.srv = httptest.NewUnstartedServer(mux)
	s.srv.EnableHTTP2 = true
	s.srv.StartTLS()
	t.Cleanup(s.srv.Close)
	return s
}

func fcmError(w http.ResponseWriter, status int, rpc, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	e := map[string]any{"code": status, "status": rpc, "message": message}
	if code != "" {
		e["details"] = []map[string]string{{"@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": code}}
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"error": e})
}

func (s *server) count(tok string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sends[tok]
}

func (s *server) app(t testing.TB) push.FCMApp {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	sa, _ := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     "herald-test",
		"private_key_id": "k1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   "pusher@herald-test.iam.gserviceaccount.com",
		"client_id":      "1",
		"token_uri":      s.srv.URL + "/token",
	})
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.srv.Certificate().Raw})
	return push.FCMApp{Credentials: sa, Endpoint: s.srv.URL, CA: ca}
}

func (s *server) sender(t testing.TB, cfg Config) *Sender {
	cfg.App = s.app(t)
	snd, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	return snd
}

func msg(platform, token string) push.Message {
	return push.Message{
		UserID: "u1",
		Device: herald.Device{Platform: platform, Token: token, AppID: "app"},
		Notification: herald.Notification{
			ID: "01JNOTIFICATION0000000000A", Seq: 42, EventID: "ev-1", Type: "comment",
			Priority: herald.PriorityHigh, Title: "Hello", Body: "World",
			Data: json.RawMessage(`{"post":7}`),
		},
		Badge: 2,
	}
}

func TestMessageBuilding(t *testing.T) {
	now := time.Unix(1_700_000_000, 0)
	a := msg("android", "tok-a")
	a.CollapseKey = "thread-9"
	a.ExpiresAt = now.Add(90*time.Second + 500*time.Millisecond)
	m := Message(&a, now)
	if m.Token != "tok-a" || m.Notification.Title != "Hello" || m.Notification.Body != "World" || m.APNS != nil {
		t.Fatalf("%+v", m)
	}
	want := map[string]string{"herald_id": a.Notification.ID, "herald_seq": "42", "herald_event_id": "ev-1", "herald_type": "comment", "data": `{"post":7}`}
	for k, v := range want {
		if m.Data[k] != v {
			t.Errorf("data[%s] = %q, want %q", k, m.Data[k], v)
		}
	}
	if m.Android.Priority != "high" || m.Android.CollapseKey != "thread-9" || m.Android.Notification.Tag != "thread-9" ||
		*m.Android.TTL != 90*time.Second || *m.Android.Notification.NotificationCount != 2 {
		t.Fatalf("android %+v", m.Android)
	}
	a.CollapseKey, a.ExpiresAt = "", time.Time{}
	a.Notification.Priority = herald.PriorityNormal
	m = Message(&a, now)
	if m.Android.Priority != "normal" || m.Android.CollapseKey != "" || m.Android.Notification.Tag != a.Notification.ID || m.Android.TTL != nil {
		t.Fatalf("android without collapse key or expiry %+v", m.Android)
	}
	a.ExpiresAt = now.Add(-time.Minute)
	if m = Message(&a, now); *m.Android.TTL != 0 {
		t.Fatalf("expired ttl %v", *m.Android.TTL)
	}

	i := msg("ios", "tok-i")
	i.ExpiresAt = time.Unix(1_800_000_000, 0)
	m = Message(&i, now)
	if m.Android != nil || m.APNS == nil {
		t.Fatalf("ios %+v", m)
	}
	for k, v := range map[string]string{"apns-push-type": "alert", "apns-priority": "10", "apns-expiration": "1800000000", "apns-collapse-id": i.Notification.ID} {
		if m.APNS.Headers[k] != v {
			t.Errorf("apns header %s = %q, want %q", k, m.APNS.Headers[k], v)
		}
	}
	aps := m.APNS.Payload.Aps
	if aps.Alert.Title != "Hello" || *aps.Badge != 2 || aps.Sound != "default" || aps.ThreadID != "comment" {
		t.Fatalf("aps %+v", aps)
	}
}

func TestSendEndToEnd(t *testing.T) {
	s := newServer(t)
	snd := s.sender(t, Config{})
	if snd.Project() != "herald-test" {
		t.Fatalf("project %q", snd.Project())
	}
	msgs := []push.Message{
		msg("android", "ok-1"), msg("ios", "ok-2"), msg("android", "unregistered-1"), msg("android", "bad-1"),
		msg("android", "flaky-1"), msg("android", "down-1"), msg("android", "quota-1"),
	}
	res := snd.Send(context.Background(), msgs)
	if len(res) != len(msgs) {
		t.Fatalf("%d results", len(res))
	}
	if !res[0].Sent || res[0].MessageID != "projects/herald-test/messages/ok-1" || !res[1].Sent {
		t.Fatalf("ok: %+v %+v", res[0], res[1])
	}
	check := func(i int, dead bool, class errclass.Class, reason string, retryAfter time.Duration) {
		t.Helper()
		r := res[i]
		if r.Sent || r.Provider != push.ProviderFCM || r.TokenDead != dead || r.Class != class || r.Reason != reason || r.RetryAfter != retryAfter {
			t.Errorf("%s: %+v", msgs[i].Device.Token, r)
		}
	}
	check(2, true, errclass.ClassPermanent, push.FCMUnregistered, 0)
	check(3, true, errclass.ClassPermanent, push.FCMInvalidArgument, 0)
	check(4, false, errclass.ClassTransient, push.FCMUnavailable, time.Second)
	check(5, false, errclass.ClassTransient, push.FCMInternal, 0)
	check(6, false, errclass.ClassTransient, push.FCMQuotaExceeded, 30*time.Second)
	// Each message is exactly one request: the SDK's own retries are off.
	for _, tok := range []string{"flaky-1", "down-1", "ok-1"} {
		if n := s.count(tok); n != 1 {
			t.Errorf("%s: %d requests", tok, n)
		}
	}
	// The pipeline's retry of the flaky token succeeds.
	if r := snd.Send(context.Background(), msgs[4:5])[0]; !r.Sent {
		t.Fatalf("flaky retry: %+v", r)
	}
	// One access token serves every request.
	if n := s.tokens.Load(); n != 1 {
		t.Errorf("%d token requests", n)
	}
	body := s.bodies["ok-2"]
	apnsBlock, _ := body["apns"].(map[string]any)
	headers, _ := apnsBlock["headers"].(map[string]any)
	if headers["apns-priority"] != "10" {
		t.Errorf("apns block on the wire: %v", body)
	}
	data, _ := s.bodies["ok-1"]["data"].(map[string]any)
	if data["herald_seq"] != "42" {
		t.Errorf("data on the wire: %v", s.bodies["ok-1"])
	}
}

func TestTokenEndpointRefusalIsPermanent(t *testing.T) {
	s := newServer(t)
	s.tokenFail = 400
	snd := s.sender(t, Config{})
	r := snd.Send(context.Background(), []push.Message{msg("android", "ok-1")})[0]
	if r.Sent || r.Class != errclass.ClassPermanent || r.Reason != push.ReasonBadCredentials {
		t.Fatalf("%+v", r)
	}
	if n := s.tokens.Load(); n != 1 {
		t.Fatalf("%d token requests", n)
	}
}

func TestTimeoutAndCancel(t *testing.T) {
	s := newServer(t)
	snd := s.sender(t, Config{Timeout: 100 * time.Millisecond, MaxInFlight: 1})
	r := snd.Send(context.Background(), []push.Message{msg("android", "slow-1")})[0]
	if r.Sent || r.Class != errclass.ClassTransient || r.Reason != push.ReasonTimeout {
		t.Fatalf("timeout: %+v", r)
	}
	if n := s.count("slow-1"); n != 1 {
		t.Fatalf("%d requests after a timeout", n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res := snd.Send(ctx, []push.Message{msg("android", "ok-9"), msg("android", "ok-10")})
	for i, r := range res {
		if r.Sent || r.Class != errclass.ClassTransient {
			t.Fatalf("canceled %d: %+v", i, r)
		}
	}
}

func TestNewNamesTheField(t *testing.T) {
	s := newServer(t)
	for _, tc := range []struct {
		edit func(*push.FCMApp)
		want string
	}{
		{func(a *push.FCMApp) { a.Credentials = nil }, "fcm.credentials_file"},
		{func(a *push.FCMApp) { a.Credentials = []byte("{") }, "fcm.credentials_file"},
		{func(a *push.FCMApp) { a.CA = []byte("x") }, "fcm.ca_file"},
		{func(a *push.FCMApp) { a.CredentialsFile = "/nonexistent/sa.json"; a.Credentials = nil }, "fcm.credentials_file"},
	} {
		a := s.app(t)
		tc.edit(&a)
		_, err := New(context.Background(), Config{App: a})
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("want an error starting %q, got %v", tc.want, err)
		}
	}
	a := s.app(t)
	var sa map[string]any
	_ = json.Unmarshal(a.Credentials, &sa)
	delete(sa, "project_id")
	a.Credentials, _ = json.Marshal(sa)
	if _, err := New(context.Background(), Config{App: a}); err == nil || !strings.HasPrefix(err.Error(), "fcm.project_id") {
		t.Errorf("no project: %v", err)
	}
	a.ProjectID = "explicit"
	snd, err := New(context.Background(), Config{App: a})
	if err != nil || snd.Project() != "explicit" {
		t.Fatalf("explicit project: %v", err)
	}
}

func TestExpiredIsNotSent(t *testing.T) {
	s := newServer(t)
	now := time.Unix(1_800_000_000, 0)
	snd := s.sender(t, Config{Now: func() time.Time { return now }})
	m := msg("android", "ok-late")
	m.ExpiresAt = now.Add(-time.Second)
	r := snd.Send(context.Background(), []push.Message{m})[0]
	if r.Sent || r.Reason != push.ReasonExpired || r.Class != errclass.ClassPermanent {
		t.Fatalf("%+v", r)
	}
	if n := s.count("ok-late"); n != 0 {
		t.Fatalf("%d requests", n)
	}
}
