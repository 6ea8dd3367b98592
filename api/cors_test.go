package api

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/origin"
	"github.com/heraldhq/herald/internal/origin/origintest"
	"github.com/heraldhq/herald/store/memory"
)

func TestCORSOriginsAreTheMatchers(t *testing.T) {
	for _, tc := range origintest.Cases {
		s, err := New(Config{Store: memory.New(), Users: tokens{}, CORSOrigins: tc.Conf})
		if err != nil {
			t.Fatalf("CORSOrigins %q: %v", tc.Conf, err)
		}
		r := httptest.NewRequest("GET", "/healthz", nil)
		r.Header.Set("Origin", tc.Origin)
		w := httptest.NewRecorder()
		s.ServeHTTP(w, r)
		acao := w.Header().Get("Access-Control-Allow-Origin")
		got := acao != ""
		if got != tc.Want || got != origin.MustParse(tc.Conf...).Match(tc.Origin) {
			t.Errorf("CORSOrigins %q, Origin %q: Access-Control-Allow-Origin %q, want allowed=%v", tc.Conf, tc.Origin, acao, tc.Want)
		}
		if got && acao != tc.Origin {
			t.Errorf("CORSOrigins %q: echoed %q, want the request's origin %q", tc.Conf, acao, tc.Origin)
		}
		if w.Code != http.StatusOK {
			t.Errorf("CORSOrigins %q: /healthz answered %d", tc.Conf, w.Code)
		}
	}
}

func TestInvalidCORSOriginIsAConfigError(t *testing.T) {
	_, err := New(Config{Store: memory.New(), Users: tokens{}, CORSOrigins: []string{"https://bad.example/path"}})
	if err == nil || !strings.Contains(err.Error(), "CORSOrigins") || !strings.Contains(err.Error(), "bad.example/path") {
		t.Fatalf("want an error naming the field and the entry, got %v", err)
	}
}
