package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPusherCommand(t *testing.T) {
	code, out, errOut := run(t, nil, "pusher", "-h")
	if code != 0 || errOut != "" {
		t.Fatalf("pusher -h: exit %d, stderr %q", code, errOut)
	}
	for _, want := range []string{"--config", "--brokers", "--cassandra", "--topic-prefix", "--addr"} {
		if !strings.Contains(out, want+" ") {
			t.Errorf("pusher -h lacks %s:\n%s", want, out)
		}
	}
	for _, absent := range []string{"--redis", "--jwt-secret", "--api-keys"} {
		if strings.Contains(out, absent+" ") {
			t.Errorf("pusher -h shows %s:\n%s", absent, out)
		}
	}
	if _, out, _ := run(t, nil, "--help"); !strings.Contains(out, "pusher") {
		t.Errorf("herald --help does not list pusher:\n%s", out)
	}
	// A bad app stops the role before it connects to anything.
	path := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(path, []byte("push:\n  apps:\n    - id: com.example\n      apns: {key_file: k.p8, team_id: T, topic: com.example}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errOut = run(t, nil, "pusher", "--config", path)
	if code != 1 || !strings.Contains(errOut, "herald pusher: config file "+path+": push.apps[com.example].apns.key_id: is required") {
		t.Errorf("bad app: exit %d, %q", code, errOut)
	}
}
