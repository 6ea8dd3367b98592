package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/store/memory"
)

// sharedOriginCases are also in delivery's origin test: the API's CORS
// answer and the gateway's WebSocket check accept the same origins for the
// same configured list.
var sharedOriginCases = []struct {
	conf   []string
	origin string
	want   bool
}{
	{[]string{"app.example.com"}, "https://app.example.com", true}, // bare host
	{[]string{"app.example.com"}, "http://app.example.com", true},
	{[]string{"app.example.com"}, "https://app.example.com:8443", false},
	{[]string{"https://App.Example.com"}, "https://app.example.COM", true},     // case
	{[]string{"https://app.example.com:443"}, "https://app.example.com", true}, // default port
	{[]string{"https://app.example.com"}, "https://app.example.com:443", true},
	{[]string{"https://app.example.com/"}, "https://app.example.com", true},
	{[]string{"https://app.example.com"}, "http://app.example.com", false},
	{[]string{"https://app.example.com"}, "null", false},
	{[]string{"*"}, "https://anything.example", true},
}

func TestCORSOriginsAreTheMatchers(t *testing.T) {
	for _, tc := range sharedOriginCases {
		s, err := New(Config{Store: memory.New(), Users: tokens{}, CORSOrigins: tc.conf})
		if err != nil {
			t.Fatalf("CORSOrigins %q: %v", tc.conf, err)
		}
		r := httptest.NewRequest("GET", "/healthz", nil)
		r.Header.Set("Origin", tc.origin)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		acao := w.Header().Get("Access-Control-Allow-Origin")
		got := acao != ""
		if got != tc.want || got != origin.MustParse(tc.conf...).Match(tc.origin) {
			t.Errorf("CORSOrigins %q, Origin %q: Access-Control-Allow-Origin %q, want allowed=%v", tc.conf, tc.origin, acao, tc.want)
		}
		if got && acao != tc.origin {
			t.Errorf("CORSOrigins %q: echoed %q, want the request's origin %q", tc.conf, acao, tc.origin)
		}
		if w.Code != http.StatusOK {
			t.Errorf("CORSOrigins %q: /healthz answered %d", tc.conf, w.Code)
		}
	}
}

func TestInvalidCORSOriginIsAConfigError(t *testing.T) {
	_, err := New(Config{Store: memory.New(), Users: tokens{}, CORSOrigins: []string{"https://bad.example/path"}})
	if err == nil || !strings.Contains(err.Error(), "CORSOrigins") || !strings.Contains(err.Error(), "bad.example/path") {
		t.Fatalf("want an error naming the field and the entry, got %v", err)
	}
}
