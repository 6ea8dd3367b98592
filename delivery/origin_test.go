package delivery

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/internal/origin/origintest"
	"github.com/heraldhq/herald/store/memory"
)

func TestGatewayOriginsAreTheMatchers(t *testing.T) {
	for _, tc := range origintest.Cases {
		g, err := New(Config{Store: memory.New(), Verifier: plainVerifier{}, AllowedOrigins: tc.Conf,
			Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
		if err != nil {
			t.Fatalf("AllowedOrigins %q: %v", tc.Conf, err)
		}
		r, _ := http.NewRequest("GET", "http://gw.example/v1/ws", nil)
		r.Header.Set("Origin", tc.Origin)
		got := g.originAllowed(r)
		if got != tc.Want || got != origin.MustParse(tc.Conf...).Match(tc.Origin) {
			t.Errorf("AllowedOrigins %q, Origin %q: allowed=%v, want %v", tc.Conf, tc.Origin, got, tc.Want)
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
