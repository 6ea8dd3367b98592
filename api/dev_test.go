package api

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/auth"
	"github.com/heraldhq/herald/store/memory"
)

var devSecret = []byte("0123456789abcdef0123456789abcdef-dev")

// recordingSink keeps the events handed to it.
type recordingSink struct {
	mu     sync.Mutex
	events []herald.Event
}

func (r *recordingSink) SendEvents(_ context.Context, evs []herald.Event) error {
	r.mu.Lock()
	r.events = append(r.events, evs...)
	r.mu.Unlock()
	return nil
}

func (r *recordingSink) got() []herald.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]herald.Event(nil), r.events...)
}

// devServer is a Server configured as herald dev configures it.
func devServer(t *testing.T, cfg Config) (*httptest.Server, *recordingSink) {
	t.Helper()
	sink := &recordingSink{}
	cfg.Store, cfg.Users, cfg.Keys, cfg.Events = memory.New(), tokens{}, keys{}, sink
	cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	return srv, sink
}

// send posts body to srv's path with optional headers (name, value pairs).
func send(t *testing.T, srv *httptest.Server, method, path, body string, headers ...string) (int, http.Header, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %q", method, path, resp.StatusCode, raw)
	}
	return resp.StatusCode, resp.Header, m
}

func TestDevEndpointsAbsentByDefault(t *testing.T) {
	// Every production role: no dev secret, no dev key, no root handler.
	srv, sink := devServer(t, Config{})
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/v1/dev/token", `{"user_id":"ada"}`},
		{"POST", "/v1/dev/events", `{"id":"e-1","user_id":"ada","type":"mention"}`},
		{"GET", "/v1/dev/pushes", ""},
		{"GET", "/", ""},
		{"GET", "/demo/demo.js", ""},
		{"GET", "/sdk/herald.js", ""},
	} {
		code, h, body := send(t, srv, c.method, c.path, c.body)
		if code != http.StatusNotFound || body["error"] != "no route for "+c.path || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
			t.Errorf("%s %s: %d %v, want the JSON 404", c.method, c.path, code, body)
		}
	}
	if n := len(sink.got()); n != 0 {
		t.Fatalf("%d events reached the sink", n)
	}
}

func TestDevToken(t *testing.T) {
	srv, _ := devServer(t, Config{DevJWTSecret: devSecret})
	code, _, body := send(t, srv, "POST", "/v1/dev/token", `{"user_id":"ada"}`)
	if code != http.StatusOK {
		t.Fatalf("POST /v1/dev/token: %d %v", code, body)
	}
	tok, _ := body["token"].(string)
	exp, err := time.Parse(time.RFC3339, body["expires_at"].(string))
	if err != nil {
		t.Fatalf("expires_at: %v", err)
	}
	// The token verifies with the dev secret, for ada, until expires_at.
	v, err := auth.NewVerifier(auth.Config{HMACSecrets: [][]byte{devSecret}, Leeway: -1, MaxLifetime: DevTokenTTL})
	if err != nil {
		t.Fatal(err)
	}
	user, until, err := v.VerifyExpiry(tok)
	if err != nil || user != "ada" {
		t.Fatalf("the minted token: %q, %v", user, err)
	}
	if !until.Equal(exp) {
		t.Fatalf("expires_at %s, the token's exp %s", exp, until)
	}
	if left := time.Until(exp); left <= DevTokenTTL-time.Minute || left > DevTokenTTL {
		t.Fatalf("the token expires in %s, want about %s", left, DevTokenTTL)
	}
	// Signed with another secret it would not verify.
	other, _ := auth.NewVerifier(auth.Config{HMACSecrets: [][]byte{[]byte(strings.Repeat("x", 32))}})
	if _, err := other.Verify(tok); err == nil {
		t.Fatal("the token verifies with another secret")
	}
}

func TestDevTokenRefusesBadBodies(t *testing.T) {
	srv, _ := devServer(t, Config{DevJWTSecret: devSecret})
	for _, c := range []struct {
		body  string
		code  int
		field string
	}{
		{`{"user_id":"a da"}`, 400, "user_id"},
		{`{"user_id":""}`, 400, "user_id"},
		{`{}`, 400, "user_id"},
		{`{"user_id":"` + strings.Repeat("u", herald.MaxUserIDLen+1) + `"}`, 400, "user_id"},
		{`{"user_id":7}`, 400, "user_id"},
		{`{"user_id":"ada","ttl":60}`, 400, "ttl"},
		{`{"user_id":"ada"} {}`, 400, ""},
		{``, 400, ""},
		{`{"user_id":"` + strings.Repeat("u", maxBody) + `"}`, 413, ""},
	} {
		code, _, body := send(t, srv, "POST", "/v1/dev/token", c.body)
		field, _ := body["field"].(string)
		if code != c.code || field != c.field {
			name := c.body
			if len(name) > 40 {
				name = name[:40]
			}
			t.Errorf("%s: %d field %q (%v), want %d field %q", name, code, field, body["error"], c.code, c.field)
		}
	}
	code, h, _ := send(t, srv, "GET", "/v1/dev/token", "")
	if code != http.StatusMethodNotAllowed || h.Get("Allow") != "POST" {
		t.Fatalf("GET /v1/dev/token: %d Allow %q", code, h.Get("Allow"))
	}
}

func TestDevEndpointsCallers(t *testing.T) {
	s, err := New(Config{Store: memory.New(), Users: tokens{}, Events: &recordingSink{}, DevJWTSecret: devSecret, DevAPIKey: "key-dev",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		remote, origin string
		code           int
	}{
		{"127.0.0.1:5000", "", http.StatusOK},
		{"[::1]:5000", "", http.StatusOK},
		{"127.0.0.1:5000", "http://localhost:8080", http.StatusOK}, // the page itself
		{"127.0.0.1:5000", "http://evil.example", http.StatusForbidden},
		{"192.0.2.7:5000", "", http.StatusForbidden},
		{"192.0.2.7:5000", "http://localhost:8080", http.StatusForbidden},
	} {
		for _, path := range []string{"/v1/dev/token", "/v1/dev/events"} {
			body := `{"user_id":"ada"}`
			if path == "/v1/dev/events" {
				body = `{"id":"e-1","user_id":"ada","type":"mention"}`
			}
			req := httptest.NewRequest("POST", "http://localhost:8080"+path, strings.NewReader(body))
			req.RemoteAddr = c.remote
			if c.origin != "" {
				req.Header.Set("Origin", c.origin)
			}
			rec := httptest.NewRecorder()
			s.ServeHTTP(rec, req)
			want := c.code
			if want == http.StatusOK && path == "/v1/dev/events" {
				want = http.StatusAccepted
			}
			if rec.Code != want {
				t.Errorf("%s from %s, Origin %q: %d %s, want %d", path, c.remote, c.origin, rec.Code, rec.Body, want)
			}
		}
	}
}

func TestDevEvents(t *testing.T) {
	srv, sink := devServer(t, Config{DevAPIKey: "key-dev", EventsPerKey: Limit{Rate: 0.001, Burst: 6}})
	// No API key in the request: the server sends as its own.
	code, _, body := send(t, srv, "POST", "/v1/dev/events", `{"id":"e-1","user_id":"ada","type":"mention","title":"Hi"}`)
	if code != http.StatusAccepted || body["accepted"] != 1.0 {
		t.Fatalf("POST /v1/dev/events: %d %v", code, body)
	}
	code, _, body = send(t, srv, "POST", "/v1/dev/events", `{"events":[{"id":"e-2","user_id":"ada","type":"t"},{"id":"e-3","user_id":"bob","type":"t"}]}`)
	if code != http.StatusAccepted || body["accepted"] != 2.0 {
		t.Fatalf("a batch: %d %v", code, body)
	}
	got := sink.got()
	if len(got) != 3 || got[0].ID != "e-1" || got[0].Title != "Hi" || got[2].UserID != "bob" {
		t.Fatalf("the sink got %+v", got)
	}
	// The same validation as POST /v1/events, field names included.
	for _, c := range []struct{ body, field string }{
		{`{"id":"e-4","user_id":"a da","type":"t"}`, "user_id"},
		{`{"events":[{"id":"e-4","user_id":"ada","type":"t"},{"id":"e-5","user_id":"ada"}]}`, "events[1].type"},
		{`{"events":[]}`, "events"},
	} {
		code, _, body := send(t, srv, "POST", "/v1/dev/events", c.body)
		if code != http.StatusBadRequest || body["field"] != c.field {
			t.Errorf("%s: %d %v, want 400 naming %s", c.body, code, body, c.field)
		}
	}
	// And the dev key's rate limit: the burst of 6 events is spent (the
	// refused events above counted).
	code, h, _ := send(t, srv, "POST", "/v1/dev/events", `{"id":"e-6","user_id":"ada","type":"t"}`)
	if code != http.StatusTooManyRequests || h.Get("Retry-After") == "" {
		t.Fatalf("past the dev key's burst: %d Retry-After %q", code, h.Get("Retry-After"))
	}
	if n := len(sink.got()); n != 3 {
		t.Fatalf("the sink got %d events, want 3", n)
	}
}

func TestRootServesOutsideV1(t *testing.T) {
	root := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]string{"root": r.URL.Path})
	})
	srv, _ := devServer(t, Config{Root: root})
	for _, p := range []string{"/", "/demo/demo.js", "/favicon.ico"} {
		code, _, body := send(t, srv, "GET", p, "")
		if code != http.StatusOK || body["root"] != p {
			t.Errorf("GET %s: %d %v, want the root handler", p, code, body)
		}
	}
	// The API's own paths keep their answers.
	for _, p := range []string{"/v1/nope", "/v1/dev/token"} {
		code, _, body := send(t, srv, "GET", p, "")
		if code != http.StatusNotFound || body["error"] != "no route for "+p {
			t.Errorf("GET %s: %d %v, want the JSON 404", p, code, body)
		}
	}
	if code, _, _ := send(t, srv, "GET", "/healthz", ""); code != http.StatusOK {
		t.Errorf("GET /healthz: %d", code)
	}
}

func TestDevJWTSecretTooShort(t *testing.T) {
	_, err := New(Config{Store: memory.New(), Users: tokens{}, DevJWTSecret: []byte("short")})
	if err == nil || !strings.Contains(err.Error(), "DevJWTSecret") {
		t.Fatalf("New with a short dev secret: %v", err)
	}
}
