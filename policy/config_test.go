package policy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"go.yaml.in/yaml/v3"
)

// decodeConfig decodes y strictly, as app/config does.
func decodeConfig(t testing.TB, y string) (Config, error) {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(strings.NewReader(y))
	dec.KnownFields(true)
	err := dec.Decode(&c)
	return c, err
}

const goodConfig = `
types:
  like:
    digest:
      window: 10m
      title: "{newest} and {others} others liked your post"
  comment:
    rate:
      limit: 10
      per: 1h
      excess: digest
    digest:
      window: 2d
    daily_cap: 50
  follow:
    rate: {limit: 5, per: 90s}
  mention:
    daily_cap: 20
`

func TestConfigGood(t *testing.T) {
	c, err := decodeConfig(t, goodConfig)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if got := time.Duration(c.Types["comment"].Digest.Window); got != 48*time.Hour {
		t.Errorf("2d = %v, want 48h", got)
	}
	if got := time.Duration(c.Types["follow"].Rate.Per); got != 90*time.Second {
		t.Errorf("90s = %v", got)
	}
	p, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	if got, want := strings.Join(p.Types(), ","), "comment,follow,like,mention"; got != want {
		t.Errorf("Types = %s, want %s", got, want)
	}
	// Through JSON and back (Duration's JSON form).
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(b, []byte(`"window":"2d"`)) || !bytes.Contains(b, []byte(`"per":"1m30s"`)) {
		t.Errorf("JSON = %s", b)
	}
	var back Config
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatalf("JSON decode: %v", err)
	}
	if back.Types["comment"].Digest.Window != c.Types["comment"].Digest.Window || back.Types["follow"].Rate.Per != c.Types["follow"].Rate.Per {
		t.Errorf("JSON round trip: %+v", back)
	}
}

func TestConfigInvalid(t *testing.T) {
	long := strings.Repeat("x", herald.MaxTypeLen+1)
	tests := []struct {
		name, yaml, field, reason string
	}{
		{"no rule", "types: {like: {}}", "policy.types.like", "has no rule"},
		{"window missing", "types: {like: {digest: {}}}", "policy.types.like.digest.window", "must be between 1s and 168h"},
		{"window small", "types: {like: {digest: {window: 500ms}}}", "policy.types.like.digest.window", "must be between 1s and 168h"},
		{"window large", "types: {like: {digest: {window: 8d}}}", "policy.types.like.digest.window", "must be between 1s and 168h"},
		{"window negative", "types: {like: {digest: {window: -1m}}}", "policy.types.like.digest.window", "must be between 1s and 168h"},
		{"unknown placeholder", `types: {like: {digest: {window: 1m, title: "{newest} {foo}"}}}`, "policy.types.like.digest.title", "unknown placeholder {foo}"},
		{"unclosed placeholder", `types: {like: {digest: {window: 1m, title: "x {newest"}}}`, "policy.types.like.digest.title", "unclosed placeholder"},
		{"long title", "types: {like: {digest: {window: 1m, title: " + strings.Repeat("a", 257) + "}}}", "policy.types.like.digest.title", "more than the 256"},
		{"limit zero", "types: {like: {rate: {limit: 0, per: 1m}}}", "policy.types.like.rate.limit", "must be between 1 and 1000"},
		{"limit large", "types: {like: {rate: {limit: 1001, per: 1m}}}", "policy.types.like.rate.limit", "must be between 1 and 1000"},
		{"per missing", "types: {like: {rate: {limit: 1}}}", "policy.types.like.rate.per", "must be between 1s and 168h"},
		{"per large", "types: {like: {rate: {limit: 1, per: 169h}}}", "policy.types.like.rate.per", "must be between 1s and 168h"},
		{"excess", "types: {like: {rate: {limit: 1, per: 1m, excess: queue}}}", "policy.types.like.rate.excess", "excess must be drop or digest"},
		{"cap negative", "types: {like: {daily_cap: -1}}", "policy.types.like.daily_cap", "must be between 0 and 10000"},
		{"cap large", "types: {like: {daily_cap: 10001}}", "policy.types.like.daily_cap", "must be between 0 and 10000"},
		{"empty type", `types: {"": {daily_cap: 1}}`, "policy.types", "is not a valid event type"},
		{"long type", "types: {" + long + ": {daily_cap: 1}}", "policy.types", "is not a valid event type"},
		{"separator in type", `types: {"a\x1fb": {daily_cap: 1}}`, "policy.types", "is not a valid event type"},
		// Sorted order: "a" is reported before "b".
		{"first in order", "types: {b: {}, a: {daily_cap: -5}}", "policy.types.a.daily_cap", "must be between"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := decodeConfig(t, tt.yaml)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			err = c.Validate()
			ve, ok := herald.AsValidationError(err)
			if !ok {
				t.Fatalf("Validate = %v, want a ValidationError", err)
			}
			if ve.Field != tt.field || !strings.Contains(ve.Reason, tt.reason) {
				t.Errorf("Validate = %q: %q, want %q: ...%q...", ve.Field, ve.Reason, tt.field, tt.reason)
			}
			if _, err := New(c); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

func TestConfigStrict(t *testing.T) {
	for _, y := range []string{
		"types: {like: {digest: {window: 1m, titel: x}}}",
		"types: {like: {rate: {limit: 1, per: 1m, burst: 2}}}",
		"types: {like: {daily_cap: 1, weekly_cap: 2}}",
		"typs: {}",
	} {
		if _, err := decodeConfig(t, y); err == nil || !strings.Contains(err.Error(), "not found") {
			t.Errorf("%s: err = %v, want unknown field", y, err)
		}
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"2d", 48 * time.Hour, true},
		{"7d", 168 * time.Hour, true},
		{"0d", 0, true},
		{"5m", 5 * time.Minute, true},
		{"1h30m", 90 * time.Minute, true},
		{"1s", time.Second, true},
		{"d", 0, false},
		{"-1d", 0, false},
		{"1.5d", 0, false},
		{"1d12h", 0, false},
		{"99999999999d", 0, false},
		{"2x", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err == nil) != tt.ok || (tt.ok && time.Duration(got) != tt.want) {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v, ok %v", tt.in, time.Duration(got), err, tt.want, tt.ok)
		}
		if !tt.ok {
			continue
		}
		// YAML, and JSON both ways.
		var y struct {
			D Duration `yaml:"d"`
		}
		if err := yaml.Unmarshal([]byte("d: "+tt.in), &y); err != nil || time.Duration(y.D) != tt.want {
			t.Errorf("YAML %q = %v, %v", tt.in, time.Duration(y.D), err)
		}
		b, err := json.Marshal(got)
		if err != nil {
			t.Fatal(err)
		}
		var back Duration
		if err := json.Unmarshal(b, &back); err != nil || back != got {
			t.Errorf("JSON %s = %v, %v", b, back, err)
		}
	}
	var y struct {
		D Duration `yaml:"d"`
	}
	for _, bad := range []string{"d: [1m]", "d: {a: 1}", "d: 2x"} {
		if err := yaml.Unmarshal([]byte(bad), &y); err == nil {
			t.Errorf("YAML %q accepted", bad)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`60`), &d); err == nil {
		t.Error("JSON number accepted")
	}
	if s := Duration(36 * time.Hour).String(); s != "36h0m0s" {
		t.Errorf("String(36h) = %s", s)
	}
	if s := Duration(72 * time.Hour).String(); s != "3d" {
		t.Errorf("String(72h) = %s", s)
	}
}

func TestNewEmpty(t *testing.T) {
	p, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	ev := herald.Event{ID: "e", UserID: "u", Type: "like"}
	if p.Governs(&ev) || len(p.Types()) != 0 {
		t.Error("New(Config{}) governs something")
	}
}
