package app

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
)

// devCall sends one request to d without credentials and decodes a JSON answer into out.
func devCall(t *testing.T, d *Dev, method, path, bearer, body string, out any) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, d.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %d %q: %v", method, path, resp.StatusCode, raw, err)
		}
	}
	return resp.StatusCode, resp.Header, raw
}

// TestDevDemo is what the demo page does, from the outside: a token from
// POST /v1/dev/token opens ada's WebSocket and reads her inbox, an event
// sent through POST /v1/dev/events (no API key) reaches both, and the
// page, its files and the SDK are served with their content types.
func TestDevDemo(t *testing.T) {
	d := startDev(t, t.TempDir())
	defer stopDev(t, d)

	var tok struct {
		Token     string `json:"token"`
		ExpiresAt string `json:"expires_at"`
	}
	if code, _, raw := devCall(t, d, "POST", "/v1/dev/token", "", `{"user_id":"ada"}`, &tok); code != http.StatusOK || tok.Token == "" {
		t.Fatalf("POST /v1/dev/token: %d %s", code, raw)
	}
	var bad struct{ Field string }
	if code, _, raw := devCall(t, d, "POST", "/v1/dev/token", "", `{"user_id":"ada lovelace"}`, &bad); code != http.StatusBadRequest || bad.Field != "user_id" {
		t.Fatalf("a bad user_id: %d %s", code, raw)
	}

	u := "ws" + strings.TrimPrefix(d.URL(), "http") + "/v1/ws?token=" + tok.Token
	ws, resp, err := websocket.DefaultDialer.Dial(u, nil)
	if resp != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial with the dev token: %v", err)
	}
	defer func() { _ = ws.Close() }()
	if f := read(t, ws); f.Type != "synced" {
		t.Fatalf("first frame %+v", f)
	}

	var accepted struct{ Accepted int }
	code, _, raw := devCall(t, d, "POST", "/v1/dev/events", "", `{"id":"demo-1","user_id":"ada","type":"mention","title":"from the demo"}`, &accepted)
	if code != http.StatusAccepted || accepted.Accepted != 1 {
		t.Fatalf("POST /v1/dev/events: %d %s", code, raw)
	}
	if f := read(t, ws); f.Type != "notification" || f.Notification.EventID != "demo-1" || f.Notification.Title != "from the demo" {
		t.Fatalf("live frame %+v", f)
	}
	var page struct {
		Notifications []struct {
			Seq   uint64 `json:"seq"`
			Title string `json:"title"`
		} `json:"notifications"`
	}
	if code, _, raw := devCall(t, d, "GET", "/v1/notifications", tok.Token, "", &page); code != http.StatusOK ||
		len(page.Notifications) != 1 || page.Notifications[0].Title != "from the demo" {
		t.Fatalf("GET /v1/notifications with the dev token: %d %s", code, raw)
	}
	// The same validation as POST /v1/events.
	if code, _, raw := devCall(t, d, "POST", "/v1/dev/events", "", `{"id":"demo-2","user_id":"ada"}`, &bad); code != http.StatusBadRequest || bad.Field != "type" {
		t.Fatalf("an event without a type: %d %s", code, raw)
	}

	for path, want := range map[string]string{
		"/":              "text/html; charset=utf-8",
		"/demo/demo.js":  "text/javascript; charset=utf-8",
		"/demo/demo.css": "text/css; charset=utf-8",
		"/sdk/herald.js": "text/javascript; charset=utf-8",
	} {
		code, h, body := devCall(t, d, "GET", path, "", "", nil)
		if code != http.StatusOK || h.Get("Content-Type") != want || len(body) == 0 {
			t.Errorf("GET %s: %d %q, %d bytes; want 200 %q", path, code, h.Get("Content-Type"), len(body), want)
		}
	}
	_, _, index := devCall(t, d, "GET", "/", "", "", nil)
	for _, hook := range []string{`id="list"`, `id="badge"`, `id="state"`, `id="transport"`, `id="send-button"`, `id="pushes"`, `src="/demo/demo.js"`} {
		if !strings.Contains(string(index), hook) {
			t.Errorf("the page has no %s", hook)
		}
	}
	// Unknown files and the API's own unknown paths are the JSON 404.
	for _, path := range []string{"/nope", "/demo/nope.js", "/sdk/nope.js", "/v1/nope"} {
		var e struct{ Error string }
		if code, _, raw := devCall(t, d, "GET", path, "", "", &e); code != http.StatusNotFound || e.Error != "no route for "+path {
			t.Errorf("GET %s: %d %s, want the JSON 404", path, code, raw)
		}
	}

	// The banner leads with the page.
	lines := strings.Split(d.Banner("herald"), "\n")
	if len(lines) < 2 || !strings.Contains(lines[1], "Demo inbox") || !strings.Contains(lines[1], d.URL()+"/ ") {
		t.Fatalf("banner %q", lines[:2])
	}
}
