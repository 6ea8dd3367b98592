package origin

import (
	"testing"

	"github.com/heraldhq/herald/internal/origin/origintest"
)

func TestMatch(t *testing.T) {
	cases := []struct {
		conf   []string
		origin string
		want   bool
	}{
		{[]string{"https://app.example.com"}, "https://app.example.com", true},
		{[]string{"https://app.example.com"}, "https://APP.example.com", true},
		{[]string{"HTTPS://App.Example.com/"}, "https://app.example.com", true},
		{[]string{"https://app.example.com"}, "https://app.example.com:443", true},
		{[]string{"https://app.example.com:443"}, "https://app.example.com", true},
		{[]string{"https://app.example.com"}, "http://app.example.com", false},
		{[]string{"https://app.example.com"}, "https://app.example.com:8443", false},
		{[]string{"https://app.example.com"}, "https://app.example.com.evil.com", false},
		{[]string{"https://app.example.com"}, "https://evil.com", false},
		{[]string{"https://app.example.com"}, "null", false},
		{[]string{"https://app.example.com"}, "", false},
		{[]string{"http://localhost:3000"}, "http://localhost:3000", true},
		{[]string{"http://localhost:3000"}, "http://localhost:3001", false},
		{[]string{"app.example.com"}, "https://app.example.com", true},
		{[]string{"app.example.com"}, "http://app.example.com", true},
		{[]string{"app.example.com"}, "https://app.example.com:8443", false},
		{[]string{"app.example.com:8443"}, "https://app.example.com:8443", true},
		{[]string{"app.example.com:8443"}, "https://app.example.com", false},
		{[]string{"[::1]:8080"}, "http://[::1]:8080", true},
		{[]string{"*"}, "https://anything.example", true},
		{[]string{"*"}, "null", true},
		{nil, "https://app.example.com", false},
	}
	for _, c := range cases {
		m, err := Parse(c.conf)
		if err != nil {
			t.Fatalf("Parse(%q): %v", c.conf, err)
		}
		if got := m.Match(c.origin); got != c.want {
			t.Errorf("Parse(%q).Match(%q) = %v, want %v", c.conf, c.origin, got, c.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, bad := range []string{"https://", "https://a.com/path", "https://a.com?x", "ftp://a.com", "a.com/x", "a.com:", "user@a.com"} {
		if _, err := Parse([]string{bad}); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestAllowedFor(t *testing.T) {
	none := MustParse()
	if !none.AllowedFor("", "h:1") {
		t.Error("no Origin header (not a browser) must be allowed")
	}
	if !none.AllowedFor("http://h:1", "h:1") || !none.AllowedFor("http://H:1", "h:1") {
		t.Error("same host must be allowed when none is configured")
	}
	if none.AllowedFor("http://other:1", "h:1") || none.AllowedFor("null", "h:1") {
		t.Error("another host must be refused when none is configured")
	}
	some := MustParse("https://app.example.com")
	if some.AllowedFor("http://h:1", "h:1") {
		t.Error("with a configured list, the same-host default no longer applies")
	}
	if !some.AllowedFor("https://app.example.com", "h:1") {
		t.Error("configured origin refused")
	}
}

func TestSharedCases(t *testing.T) {
	for _, c := range origintest.Cases {
		if got := MustParse(c.Conf...).Match(c.Origin); got != c.Want {
			t.Errorf("%q.Match(%q) = %v, want %v", c.Conf, c.Origin, got, c.Want)
		}
	}
}
