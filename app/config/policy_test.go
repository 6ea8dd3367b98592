package config

import (
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	herald "github.com/heraldhq/herald"
)

func parseDev(t *testing.T, role, body string) (*Config, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(role, "")
	if err != nil {
		t.Fatal(err)
	}
	return c.Parse([]string{"--config", path}, func(string) (string, bool) { return "", false }, io.Discard)
}

// TestPolicyExample: the example herald dev ships parses and governs its
// three types.
func TestPolicyExample(t *testing.T) {
	c, err := New("dev", "")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := c.Parse([]string{"--config", "../../examples/herald-dev.yaml"}, func(string) (string, bool) { return "", false }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	p, err := cfg.PolicySettings()
	if err != nil {
		t.Fatal(err)
	}
	if got := p.Types(); !slices.Equal(got, []string{"comment", "like", "marketing"}) {
		t.Errorf("types %v", got)
	}
	if !p.Governs(&herald.Event{Type: "like"}) || p.Governs(&herald.Event{Type: "like", Priority: herald.PriorityHigh}) {
		t.Error("like: governed unless high")
	}
}

// TestPolicySection: the enricher and dev roles refuse an invalid policy
// at start, naming the field; ReadPolicy reads only the policy again.
func TestPolicySection(t *testing.T) {
	for _, tc := range []struct{ body, want string }{
		{"policy:\n  types:\n    like:\n      digest: {window: 0s}\n", "policy.types.like.digest.window"},
		{"policy:\n  types:\n    like:\n      digets: {window: 1m}\n", "digets"},
		{"policy:\n  typos: {}\n", "typos"},
		{"policy:\n  types:\n    comment:\n      rate: {limit: 5, per: 1h, excess: keep}\n", "policy.types.comment.rate.excess"},
		{"policy:\n  types:\n    like:\n      digest: {window: soon}\n", "soon"},
	} {
		for _, role := range []string{"enricher", "dev"} {
			_, err := parseDev(t, role, tc.body)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s %q: err %v, want one naming %s", role, tc.body, err, tc.want)
			}
		}
	}
	good := "policy:\n  types:\n    like:\n      digest: {window: 1m}\n"
	cfg, err := parseDev(t, "enricher", good)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg.File, []byte("policy:\n  types:\n    marketing: {daily_cap: 2}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := ReadPolicy(cfg.File)
	if err != nil || !slices.Equal(p.Types(), []string{"marketing"}) {
		t.Fatalf("ReadPolicy: %v, %v", p, err)
	}
	if err := os.WriteFile(cfg.File, []byte("policy:\n  types:\n    marketing: {daily_cap: -1}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadPolicy(cfg.File); err == nil || !strings.Contains(err.Error(), "policy.types.marketing.daily_cap") {
		t.Errorf("ReadPolicy of an invalid policy: %v", err)
	}
}
