package delivery

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/store/memory"
)

// sharedOriginCases are also in api's CORS test: the gateway and the API
// answer the same origins for the same configured list.
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

func TestGatewayOriginsAreTheMatchers(t *testing.T) {
	for _, tc := range sharedOriginCases {
		g, err := New(Config{Store: memory.New(), Verifier: plainVerifier{}, AllowedOrigins: tc.conf,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatalf("AllowedOrigins %q: %v", tc.conf, err)
		}
		r, _ := http.NewRequest("GET", "http://gw.example/v1/ws", nil)
		r.Header.Set("Origin", tc.origin)
		got := g.originAllowed(r)
		if got != tc.want || got != origin.MustParse(tc.conf...).Match(tc.origin) {
			t.Errorf("AllowedOrigins %q, Origin %q: allowed=%v, want %v", tc.conf, tc.origin, got, tc.want)
		}
		_ = g.Shutdown(t.Context())
	}
}

func TestInvalidAllowedOriginIsAConfigError(t *testing.T) {
	_, err := New(Config{Store: memory.New(), Verifier: plainVerifier{}, AllowedOrigins: []string{"https://ok.example", "https://bad.example/path"}})
	if err == nil || !strings.Contains(err.Error(), "AllowedOrigins") || !strings.Contains(err.Error(), "bad.example/path") {
		t.Fatalf("want an error naming the field and the entry, got %v", err)
	}
}
