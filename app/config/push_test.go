package config

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

const pushFile = `
brokers: [k1:9092]
push:
  default_app: com.example.ios
  apps:
    - id: com.example.ios
      apns:
        key_file: /etc/herald/AuthKey_ABC123DEFG.p8
        key_id: ABC123DEFG
        team_id: TEAM123456
        topic: com.example.ios
        endpoint: sandbox
      fcm:
        credentials_file: /etc/herald/sa.json
        project_id: example-prod
    - id: com.example.android
      fcm:
        credentials_file: /etc/herald/sa-android.json
        endpoint: http://127.0.0.1:9999
  delay:
    mention: 30s
    digest: 0s
  retry:
    base: 2s
    max_attempts: 4
`

func TestPushSection(t *testing.T) {
	cfg := mustParse(t, "pusher", []string{"--config", writeFile(t, pushFile)}, nil)
	p := cfg.PushSettings()
	if len(p.Apps) != 2 || p.Apps[0].ID != "com.example.ios" || p.Apps[1].ID != "com.example.android" {
		t.Fatalf("apps: %+v", p.Apps)
	}
	a := p.Apps[0]
	if a.APNs == nil || a.APNs.KeyID != "ABC123DEFG" || a.APNs.TeamID != "TEAM123456" || a.APNs.Endpoint != "sandbox" ||
		a.FCM == nil || a.FCM.ProjectID != "example-prod" {
		t.Errorf("app 0: apns %+v fcm %+v", a.APNs, a.FCM)
	}
	if p.Apps[1].APNs != nil || p.Apps[1].FCM.Endpoint != "http://127.0.0.1:9999" {
		t.Errorf("app 1: %+v", p.Apps[1])
	}
	if p.DefaultApp != "com.example.ios" {
		t.Errorf("default app %q", p.DefaultApp)
	}
	if p.Delay["mention"] != 30*time.Second || p.Delay["digest"] != 0 || len(p.Delay) != 2 {
		t.Errorf("delay %v", p.Delay)
	}
	// Given fields kept, absent ones take the production defaults.
	if p.Retry != (PushRetry{Base: 2 * time.Second, Cap: DefaultPushRetry.Cap, MaxAttempts: 4}) {
		t.Errorf("retry %+v", p.Retry)
	}
	if b := p.Retry.Backoff(); b.Base != 2*time.Second || b.Cap != 10*time.Minute || b.MaxAttempts != 4 {
		t.Errorf("backoff %+v", b)
	}
	// The settings are a copy.
	p.Delay["mention"] = time.Hour
	p.Apps[0].ID = "changed"
	if q := cfg.PushSettings(); q.Delay["mention"] != 30*time.Second || q.Apps[0].ID != "com.example.ios" {
		t.Error("PushSettings shares its map or slice with the Config")
	}
}

func TestPushDefaults(t *testing.T) {
	for _, c := range []struct {
		role string
		want PushRetry
	}{{"pusher", DefaultPushRetry}, {"dev", DevPushRetry}} {
		p := mustParse(t, c.role, nil, nil).PushSettings()
		if p.Retry != c.want || len(p.Apps) != 0 || len(p.Delay) != 0 || p.DefaultApp != "" {
			t.Errorf("%s: %+v", c.role, p)
		}
	}
	if DefaultPushRetry != (PushRetry{Base: time.Second, Cap: 10 * time.Minute, MaxAttempts: 10}) {
		t.Errorf("production retry %+v", DefaultPushRetry)
	}
	// herald dev gives a job up within about 30 s: the sum of the delay
	// ceilings over its attempts.
	var total time.Duration
	for n, d := 1, DevPushRetry.Base; n < DevPushRetry.MaxAttempts; n++ {
		total += min(d, DevPushRetry.Cap)
		d *= 2
	}
	if total > 30*time.Second {
		t.Errorf("dev retries take up to %s", total)
	}
	// A base above the default cap raises the cap with it.
	cfg := mustParse(t, "pusher", []string{"--config", writeFile(t, "push:\n  retry:\n    base: 20m\n")}, nil)
	if r := cfg.PushSettings().Retry; r.Cap != 20*time.Minute {
		t.Errorf("retry %+v", r)
	}
}

func TestPushValidation(t *testing.T) {
	const apns = "      apns: {key_file: k.p8, key_id: K, team_id: T, topic: com.x}\n"
	for _, tc := range []struct{ text, want string }{
		{"push:\n  apps:\n    - id: com.x\n      apns: {key_file: k.p8, team_id: T, topic: com.x}\n", "push.apps[com.x].apns.key_id: is required"},
		{"push:\n  apps:\n    - id: com.x\n", "push.apps[com.x]: needs apns or fcm credentials"},
		{"push:\n  apps:\n    - apns: {key_file: k.p8}\n", "push.apps[].id: is required"},
		{"push:\n  apps:\n    - id: a\n      fcm: {}\n", "push.apps[a].fcm.credentials_file: is required"},
		{"push:\n  apps:\n    - id: a\n      fcm: {credentials_file: sa.json, endpoint: ftp://x}\n", "push.apps[a].fcm.endpoint"},
		{"push:\n  apps:\n    - id: a\n" + apns + "    - id: a\n" + apns, "push.apps[a].id: is declared twice"},
		{"push:\n  apps:\n    - id: a\n" + apns + "  default_app: b\n", `push.default_app: "b" is not an app of push.apps`},
		{"push:\n  delay: {mention: -1s}\n", "push.delay[mention]: -1s: must be 0 or more"},
		{"push:\n  delay: {mention: 30}\n", "push: yaml"},
		{"push:\n  retry: {base: 10s, cap: 1s}\n", "push.retry.cap: 1s: must be at least push.retry.base"},
		{"push:\n  retry: {max_attempts: -1}\n", "push.retry.max_attempts: -1"},
		{"push:\n  apps:\n    - id: a\n      apns: {key_id: K, keyid: K}\n", "field keyid not found"},
		{"push:\n  apps:\n    - id: a\n      apns: {key: x}\n", "field key not found"},
	} {
		path := writeFile(t, tc.text)
		_, err := parse(t, "pusher", []string{"--config", path}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: got %v, want %q", tc.text, err, tc.want)
		}
	}
	// Roles that do not read the section ignore what is wrong in it.
	path := writeFile(t, "push:\n  apps:\n    - id: com.x\n")
	mustParse(t, "enricher", []string{"--config", path}, nil)
	if _, err := parse(t, "api", []string{"--config", path, "--jwt-secret", "s"}, nil); err == nil {
		t.Error("api accepted an invalid push section")
	}
}

func TestPusherHelpListsItsSettingsOnly(t *testing.T) {
	c, err := New("pusher", "")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := c.Parse([]string{"-h"}, envOf(nil), &out); !errors.Is(err, ErrHelp) {
		t.Fatal(err)
	}
	h := out.String()
	for _, want := range []string{"--config", "--addr", "--log-level", "--brokers", "--kafka-sasl", "--kafka-tls-ca",
		"--topic-prefix", "--session-timeout", "--store", "--cassandra", "--cassandra-tls-ca"} {
		if !strings.Contains(h, want+" ") {
			t.Errorf("pusher -h lacks %s", want)
		}
	}
	for _, not := range []string{"--redis", "--jwt-secret", "--api-keys", "--origins", "--gateway-id", "--transactional-id", "--data-dir"} {
		if strings.Contains(h, not+" ") {
			t.Errorf("pusher -h lists %s", not)
		}
	}
}
