package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/heraldhq/herald/app"
)

func run(t *testing.T, env map[string]string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	e := env0(env, &out)
	code = dispatch(args, e, &errOut)
	return code, out.String(), errOut.String()
}

func env0(m map[string]string, out *bytes.Buffer) env {
	return env{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }, stdout: out}
}

func TestHelpExitsZeroAndShowsOnlyTheCommandsSettings(t *testing.T) {
	code, out, errOut := run(t, nil, "send", "-h")
	if code != 0 || errOut != "" {
		t.Fatalf("send -h: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"--user", "--url", "--api-keys", "--data-dir", "$HERALD_API_KEYS"} {
		if !strings.Contains(out, want) {
			t.Errorf("send -h lacks %s:\n%s", want, out)
		}
	}
	for _, absent := range []string{"--cassandra", "--brokers", "--redis", "--jwt-secret", "help requested"} {
		if strings.Contains(out, absent) {
			t.Errorf("send -h shows %s:\n%s", absent, out)
		}
	}
	if code, out, _ := run(t, nil, "--help"); code != 0 || !strings.Contains(out, "gateway") {
		t.Errorf("herald --help: exit %d\n%s", code, out)
	}
}

func TestMalformedEnvironmentStopsTheRole(t *testing.T) {
	code, _, errOut := run(t, map[string]string{"HERALD_SESSION_TIMEOUT": "30"}, "enricher")
	if code != 1 || !strings.Contains(errOut, `herald enricher: $HERALD_SESSION_TIMEOUT="30": not a duration (e.g. 30s)`) {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if code, _, errOut := run(t, nil, "nope"); code != 2 || !strings.Contains(errOut, `unknown command "nope"`) {
		t.Errorf("unknown command: exit %d, %q", code, errOut)
	}
	if code, _, errOut := run(t, map[string]string{"HERALD_JWT_SECRET": "s"}, "gateway", "extra"); code != 1 || !strings.Contains(errOut, `unexpected argument "extra"`) {
		t.Errorf("stray argument: exit %d, %q", code, errOut)
	}
}

func TestTokenReadsDevSecretsFromDataDir(t *testing.T) {
	dir := t.TempDir()
	if _, err := app.LoadDevSecrets(dir); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := run(t, map[string]string{"HERALD_DATA_DIR": dir}, "token", "--ttl", "1m", "alice")
	if code != 0 || strings.Count(strings.TrimSpace(out), ".") != 2 {
		t.Fatalf("token: exit %d, out %q, stderr %q", code, out, errOut)
	}
	code, _, errOut = run(t, nil, "token", "--data-dir", t.TempDir(), "alice")
	if code != 1 || !strings.Contains(errOut, "no --jwt-secret and no dev secrets") {
		t.Errorf("no secrets: exit %d, %q", code, errOut)
	}
}
