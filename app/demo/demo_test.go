package demo

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"
)

func get(t *testing.T, h http.Handler, method, path string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestHandlerServesThePageAndTheSDK(t *testing.T) {
	sdk := fstest.MapFS{
		"herald.js":         {Data: []byte("export class Herald {}\n")},
		"transports/sse.js": {Data: []byte("export const sse = 1;\n")},
		"herald.js.map":     {Data: []byte("{}")},
	}
	h := New(Config{SDK: sdk})
	for _, c := range []struct{ path, ct, contains string }{
		{"/", "text/html; charset=utf-8", `<ul id="list"`},
		{"/demo/demo.css", "text/css; charset=utf-8", "#badge"},
		{"/demo/demo.js", "text/javascript; charset=utf-8", "window.heraldDemo"},
		{"/sdk/herald.js", "text/javascript; charset=utf-8", "class Herald"},
		{"/sdk/transports/sse.js", "text/javascript; charset=utf-8", "sse"},
		{"/sdk/herald.js.map", "application/json", "{}"},
	} {
		rec := get(t, h, "GET", c.path)
		if rec.Code != http.StatusOK || rec.Header().Get("Content-Type") != c.ct || !strings.Contains(rec.Body.String(), c.contains) {
			t.Errorf("GET %s: %d %q, want 200 %q with %q", c.path, rec.Code, rec.Header().Get("Content-Type"), c.ct, c.contains)
		}
		if rec.Header().Get("X-Content-Type-Options") != "nosniff" || rec.Header().Get("ETag") == "" {
			t.Errorf("GET %s: headers %v", c.path, rec.Header())
		}
		// HEAD: the headers, no body; If-None-Match: 304.
		if head := get(t, h, "HEAD", c.path); head.Code != http.StatusOK || head.Body.Len() != 0 {
			t.Errorf("HEAD %s: %d, %d bytes", c.path, head.Code, head.Body.Len())
		}
		if again := get(t, h, "GET", c.path, "If-None-Match", rec.Header().Get("ETag")); again.Code != http.StatusNotModified {
			t.Errorf("GET %s with its ETag: %d, want 304", c.path, again.Code)
		}
	}
}

func TestHandlerRefuses(t *testing.T) {
	h := New(Config{SDK: fstest.MapFS{"herald.js": {Data: []byte("x")}}})
	for _, path := range []string{"/index.html", "/demo/", "/demo/index.html", "/demo/nope.js", "/sdk/", "/sdk/nope.js",
		"/sdk/../demo.go", "/demo/../demo.go", "/favicon.ico", "/demox/demo.js"} {
		rec := get(t, h, "GET", path)
		var body map[string]string
		_ = json.Unmarshal(rec.Body.Bytes(), &body)
		if rec.Code != http.StatusNotFound || body["error"] != "no route for "+path || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("GET %s: %d %s, want the JSON 404", path, rec.Code, rec.Body)
		}
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		rec := get(t, h, m, "/")
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD" {
			t.Errorf("%s /: %d Allow %q", m, rec.Code, rec.Header().Get("Allow"))
		}
	}
	// Without an SDK, /sdk/ does not exist; the page still does.
	bare := New(Config{})
	if rec := get(t, bare, "GET", "/sdk/herald.js"); rec.Code != http.StatusNotFound {
		t.Errorf("GET /sdk/herald.js without an SDK: %d", rec.Code)
	}
	if rec := get(t, bare, "GET", "/"); rec.Code != http.StatusOK {
		t.Errorf("GET / without an SDK: %d", rec.Code)
	}
}

// The DOM hooks the browser tests rely on (web-spec: keep them stable).
func TestPageHooks(t *testing.T) {
	index, _ := assets.ReadFile("index.html")
	script, _ := assets.ReadFile("demo.js")
	for _, id := range []string{"user", "state", "transport", "badge", "list", "mark-all",
		"send-user", "send-type", "send-title", "send-body", "send-button", "pushes"} {
		if !strings.Contains(string(index), `id="`+id+`"`) {
			t.Errorf("index.html has no #%s", id)
		}
	}
	for _, s := range []string{"window.heraldDemo", "'data-seq'", "'data-id'", "'data-read'", "class: 'title'", "'mark-read'",
		"'/sdk/herald.js'", "params.get('transport')", "params.get('shared')", "params.get('user')", "/v1/dev/events", "/v1/dev/pushes"} {
		if !strings.Contains(string(script), s) {
			t.Errorf("demo.js has no %s", s)
		}
	}
}

// The page loads nothing from elsewhere: no CDN, no framework, no fonts.
func TestPageIsSelfContained(t *testing.T) {
	for _, name := range []string{"index.html", "demo.css", "demo.js"} {
		b, _ := assets.ReadFile(name)
		for _, bad := range []string{"http://", "https://", "//cdn", "@import", "url("} {
			if strings.Contains(string(b), bad) {
				t.Errorf("%s contains %q", name, bad)
			}
		}
	}
}
