package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func envOf(m map[string]string) LookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func parse(t *testing.T, role string, args []string, env map[string]string) (*Config, error) {
	t.Helper()
	c, err := New(role, "")
	if err != nil {
		t.Fatal(err)
	}
	return c.Parse(args, envOf(env), &bytes.Buffer{})
}

func mustParse(t *testing.T, role string, args []string, env map[string]string) *Config {
	t.Helper()
	cfg, err := parse(t, role, args, env)
	if err != nil {
		t.Fatalf("%s %v: %v", role, args, err)
	}
	return cfg
}

func help(t *testing.T, role string, env map[string]string) string {
	t.Helper()
	c, err := New(role, "")
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if _, err := c.Parse([]string{"-h"}, envOf(env), &out); !errors.Is(err, ErrHelp) {
		t.Fatalf("-h: %v", err)
	}
	return out.String()
}

// flagsIn lists the --names a help text shows.
func flagsIn(help string) []string {
	var out []string
	for _, line := range strings.Split(help, "\n") {
		if strings.HasPrefix(line, "  --") {
			out = append(out, strings.Fields(line)[0][2:])
		}
	}
	return out
}

func TestEachRoleShowsOnlyItsSettings(t *testing.T) {
	for _, role := range Roles {
		shown := flagsIn(help(t, role, nil))
		want := append([]string{"config"}, roles[role]...)
		if strings.Join(shown, " ") != strings.Join(want, " ") {
			t.Errorf("%s -h shows %v, want %v", role, shown, want)
		}
	}
	send := help(t, "send", nil)
	for _, absent := range []string{"--cassandra", "--brokers", "--redis", "--kafka-sasl", "--store"} {
		if strings.Contains(send, absent) {
			t.Errorf("send -h lists %s:\n%s", absent, send)
		}
	}
	gw := flagsIn(help(t, "gateway", nil))
	for _, want := range []string{"brokers", "kafka-sasl", "cassandra-password", "redis-tls-ca", "session-timeout", "router-from-end"} {
		if !contains(gw, want) {
			t.Errorf("gateway -h lacks --%s", want)
		}
	}
	if contains(gw, "transactional-id") || contains(gw, "rate-user") {
		t.Errorf("gateway -h lists another role's settings: %v", gw)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func TestHelpNeverShowsSecrets(t *testing.T) {
	env := map[string]string{
		"HERALD_JWT_SECRET": "jwt-s3cret", "HERALD_KAFKA_PASSWORD": "kafka-s3cret",
		"HERALD_CASSANDRA_PASSWORD": "cass-s3cret", "HERALD_REDIS_PASSWORD": "redis-s3cret",
		"HERALD_REDIS_URL": "redis://:url-s3cret@h:6379", "HERALD_API_KEYS": "key-s3cret",
	}
	for _, role := range Roles {
		if h := help(t, role, env); strings.Contains(h, "s3cret") {
			t.Errorf("%s -h shows a secret:\n%s", role, h)
		}
	}
	// Nor the environment's value of a plain setting: -h shows defaults.
	if h := help(t, "api", map[string]string{"HERALD_BROKERS": "elsewhere:1"}); strings.Contains(h, "elsewhere") {
		t.Errorf("-h shows the environment's value:\n%s", h)
	}
}

func TestMalformedEnvironmentIsRefused(t *testing.T) {
	for _, tc := range []struct {
		role, env, value, want string
	}{
		{"enricher", "HERALD_SESSION_TIMEOUT", "30", `$HERALD_SESSION_TIMEOUT="30": not a duration (e.g. 30s)`},
		{"api", "HERALD_RATE_USER", "fast", `$HERALD_RATE_USER="fast": not a number`},
		{"gateway", "HERALD_REPLAY_LIMIT", "1.5", `$HERALD_REPLAY_LIMIT="1.5": not a whole number`},
		{"gateway", "HERALD_ROUTER_FROM_END", "yes please", `$HERALD_ROUTER_FROM_END="yes please": not a boolean`},
		{"api", "HERALD_KAFKA_TLS", "maybe", `$HERALD_KAFKA_TLS="maybe": not a boolean`},
		{"api", "HERALD_KAFKA_SASL", "GSSAPI", `$HERALD_KAFKA_SASL: "GSSAPI": want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512`},
		{"api", "HERALD_LOG_LEVEL", "loud", `$HERALD_LOG_LEVEL: "loud": want debug, info, warn or error`},
		{"gateway", "HERALD_STORE", "postgres", `$HERALD_STORE: "postgres": want cassandra or embedded`},
	} {
		env := map[string]string{"HERALD_JWT_SECRET": "s", tc.env: tc.value}
		_, err := parse(t, tc.role, nil, env)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s with %s=%q: got %v, want %q", tc.role, tc.env, tc.value, err, tc.want)
		}
	}
	// A variable of a setting the role does not use is not its business.
	mustParse(t, "send", nil, map[string]string{"HERALD_SESSION_TIMEOUT": "30"})
}

func TestMalformedFlagNamesTheFlag(t *testing.T) {
	_, err := parse(t, "enricher", []string{"--session-timeout", "30"}, nil)
	if err == nil || err.Error() != `--session-timeout="30": not a duration (e.g. 30s)` {
		t.Fatalf("got %v", err)
	}
	_, err = parse(t, "send", []string{"--cassandra", "h"}, nil)
	if err == nil || !strings.Contains(err.Error(), "flag provided but not defined: -cassandra") {
		t.Fatalf("another role's flag: %v", err)
	}
}

func TestValidationNamesTheSetting(t *testing.T) {
	base := map[string]string{"HERALD_JWT_SECRET": "s"}
	for _, tc := range []struct {
		name string
		role string
		args []string
		env  map[string]string
		want []string
	}{
		{"sasl without credentials", "api", []string{"--kafka-sasl", "SCRAM-SHA-512"}, base,
			[]string{"--kafka-user ($HERALD_KAFKA_USER): empty: SASL SCRAM-SHA-512 needs a user", "--kafka-password ($HERALD_KAFKA_PASSWORD): empty"}},
		{"credentials without sasl", "enricher", nil, map[string]string{"HERALD_KAFKA_USER": "u"},
			[]string{"$HERALD_KAFKA_USER: set, but --kafka-sasl ($HERALD_KAFKA_SASL) is empty"}},
		{"no token key", "gateway", nil, nil,
			[]string{"no user-token key: set --jwt-secret ($HERALD_JWT_SECRET) or --jwt-public-keys"}},
		{"cert without key", "migrate", []string{"--cassandra-tls-cert", "c.pem"}, nil,
			[]string{"--cassandra-tls-key ($HERALD_CASSANDRA_TLS_KEY): empty, but --cassandra-tls-cert is set"}},
		{"missing CA", "api", nil, map[string]string{"HERALD_JWT_SECRET": "s", "HERALD_KAFKA_TLS_CA": "/nonexistent/ca.pem"},
			[]string{"$HERALD_KAFKA_TLS_CA: TLS CA file"}},
		{"password without user", "enricher", []string{"--cassandra-password", "pw"}, nil,
			[]string{"--cassandra-password: set, but --cassandra-user ($HERALD_CASSANDRA_USER) is empty"}},
		{"redis scheme", "gateway", []string{"--redis", "http://u:pw@h:1"}, base,
			[]string{"--redis: http://u:xxxxx@h:1: want a redis:// or rediss:// URL"}},
		{"redis password without url", "api", nil, map[string]string{"HERALD_JWT_SECRET": "s", "HERALD_REDIS_PASSWORD": "pw"},
			[]string{"$HERALD_REDIS_PASSWORD: set, but --redis ($HERALD_REDIS_URL) is empty"}},
		{"negative rate", "api", []string{"--rate-user=-1"}, base, []string{"--rate-user: -1: must be 0"}},
		{"no brokers", "topics", []string{"--brokers", ""}, nil, []string{"--brokers: empty"}},
		{"admin address without port", "enricher", []string{"--admin-addr", "127.0.0.1"}, nil,
			[]string{`--admin-addr: "127.0.0.1": want host:port`}},
		{"admin address on the public listener", "pusher", []string{"--addr", "127.0.0.1:8080", "--admin-addr", "127.0.0.1:8080"}, nil,
			[]string{"--admin-addr: \"127.0.0.1:8080\": the same as --addr"}},
	} {
		_, err := parse(t, tc.role, tc.args, tc.env)
		if err == nil {
			t.Errorf("%s: no error", tc.name)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q lacks %q", tc.name, err, w)
			}
		}
		if strings.Contains(err.Error(), "pw@") {
			t.Errorf("%s: error shows a password: %v", tc.name, err)
		}
	}
}

func TestSecuredConnections(t *testing.T) {
	cfg := mustParse(t, "gateway", []string{"--kafka-sasl", "SCRAM-SHA-256", "--cassandra-user", "herald"}, map[string]string{
		"HERALD_JWT_SECRET": "s", "HERALD_KAFKA_TLS": "true", "HERALD_KAFKA_USER": "ku", "HERALD_KAFKA_PASSWORD": "kp",
		"HERALD_CASSANDRA_PASSWORD": "cp", "HERALD_CASSANDRA_TLS": "true", "HERALD_CASSANDRA_LOCAL_DC": "dc1",
		"HERALD_REDIS_URL": "rediss://h:6380/0", "HERALD_REDIS_PASSWORD": "rp",
	})
	k := cfg.Kafka
	if !k.TLS.On() || k.SASL != "SCRAM-SHA-256" || k.User != "ku" || k.Password != "kp" {
		t.Errorf("kafka %+v", k)
	}
	cs := cfg.Cassandra
	if cs.User != "herald" || cs.Password != "cp" || !cs.TLS.On() || cs.LocalDC != "dc1" {
		t.Errorf("cassandra %+v", cs)
	}
	if cfg.Redis.URL != "rediss://h:6380/0" || cfg.Redis.Password != "rp" {
		t.Errorf("redis %+v", cfg.Redis)
	}
	if _, err := k.Opts(); err != nil {
		t.Errorf("kafka options: %v", err)
	}
}

func TestDefaultsAndExistingNames(t *testing.T) {
	cfg := mustParse(t, "gateway", []string{"--jwt-secret", "s"}, nil)
	if cfg.Addr != ":8080" || cfg.SessionTimeout != 10*time.Second || cfg.ShutdownTimeout != 20*time.Second ||
		strings.Join(cfg.Kafka.Brokers, ",") != "127.0.0.1:9092" || cfg.Cassandra.Keyspace != "herald" ||
		cfg.Cassandra.Consistency != "LOCAL_QUORUM" || cfg.ReplayLimit != 100 || cfg.Store != "cassandra" || cfg.GatewayID == "" {
		t.Errorf("defaults: %+v", cfg)
	}
	cfg = mustParse(t, "api", []string{"--brokers", "k1:9092, k2:9092", "--cassandra", "c1", "--keyspace", "ks",
		"--consistency", "ONE", "--redis", "redis://r:6379/0", "--jwt-secret", "s"}, map[string]string{
		"HERALD_CASSANDRA_KEYSPACE": "env-ks", "HERALD_API_KEYS": "a, b", "HERALD_RATE_EVENTS_PER_KEY": "2.5",
	})
	if strings.Join(cfg.Kafka.Brokers, ",") != "k1:9092,k2:9092" || cfg.Cassandra.Hosts[0] != "c1" || cfg.Cassandra.Keyspace != "ks" ||
		cfg.Cassandra.Consistency != "ONE" || cfg.Redis.URL != "redis://r:6379/0" || strings.Join(cfg.APIKeys, ",") != "a,b" || cfg.RateKey != 2.5 {
		t.Errorf("parsed: %+v", cfg)
	}
	cfg = mustParse(t, "migrate", nil, map[string]string{"HERALD_CASSANDRA_REPLICATION": "dc1=3", "HERALD_CASSANDRA_HOSTS": "a,b"})
	if cfg.Cassandra.Replication != "dc1=3" || len(cfg.Cassandra.Hosts) != 2 {
		t.Errorf("migrate: %+v", cfg.Cassandra)
	}
	// A bool flag stands alone.
	if cfg := mustParse(t, "gateway", []string{"--router-from-end", "--kafka-tls", "--jwt-secret=s"}, nil); !cfg.RouterFromEnd || !cfg.Kafka.TLS.Enabled {
		t.Errorf("bool flags: %+v", cfg)
	}
}

func writeFile(t *testing.T, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "herald.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPrecedenceFlagEnvFileDefault(t *testing.T) {
	path := writeFile(t, `
addr: 127.0.0.1:9000
brokers: [file-k1:9092, file-k2:9092]
keyspace: file-ks
consistency: ONE
session-timeout: 5s
jwt-secret: file-secret
replay-limit: 7
transactional-id: only-the-enricher-uses-this
push: {}
`)
	env := map[string]string{"HERALD_CONFIG": path, "HERALD_CASSANDRA_KEYSPACE": "env-ks", "HERALD_ADDR": "127.0.0.1:9001"}
	cfg := mustParse(t, "gateway", []string{"--addr", "127.0.0.1:9002"}, env)
	for _, c := range []struct{ what, got, want string }{
		{"flag over env and file", cfg.Addr, "127.0.0.1:9002"},
		{"env over file", cfg.Cassandra.Keyspace, "env-ks"},
		{"file over default", cfg.Cassandra.Consistency, "ONE"},
		{"file list", strings.Join(cfg.Kafka.Brokers, ","), "file-k1:9092,file-k2:9092"},
		{"file duration", cfg.SessionTimeout.String(), "5s"},
		{"file secret", cfg.JWTSecret, "file-secret"},
		{"default", cfg.Store, "cassandra"},
		{"file path", cfg.File, path},
	} {
		if c.got != c.want {
			t.Errorf("%s: %q, want %q", c.what, c.got, c.want)
		}
	}
	if cfg.ReplayLimit != 7 {
		t.Errorf("file int: %d", cfg.ReplayLimit)
	}
	// --config wins over $HERALD_CONFIG.
	other := writeFile(t, "keyspace: other\n")
	if cfg := mustParse(t, "migrate", []string{"--config", other}, map[string]string{"HERALD_CONFIG": path}); cfg.Cassandra.Keyspace != "other" {
		t.Errorf("--config: keyspace %q", cfg.Cassandra.Keyspace)
	}
}

func TestFileErrors(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"kafka-sasll: PLAIN\n", `line 1: unknown key "kafka-sasll"`},
		{"addr: x\naddr: y\n", "line 2: addr is set twice"},
		{"session-timeout: 30\n", `line 1: session-timeout: "30": not a duration (e.g. 30s)`},
		{"addr: [a, b]\n", "line 1: addr: want a single value, not a list"},
		{"brokers: {a: b}\n", "brokers: want a value, not a mapping"},
		{"push:\n  appz: []\n", "field appz not found"},
		{"policy:\n  digest: 1h\n", "field digest not found"},
		{"- a\n- b\n", "want a mapping of settings"},
		{"config: other.yaml\n", `unknown key "config"`},
		{"kafka-password: [s3cret, x]\n", "kafka-password: want a single value"},
	} {
		path := writeFile(t, tc.text)
		_, err := parse(t, "gateway", []string{"--config", path, "--jwt-secret", "s"}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), path) {
			t.Errorf("%q: got %v, want %q", tc.text, err, tc.want)
		} else if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%q: error shows a secret: %v", tc.text, err)
		}
	}
	if _, err := parse(t, "api", []string{"--config", "/nonexistent/herald.yaml"}, nil); err == nil || !strings.Contains(err.Error(), "config file") {
		t.Errorf("missing file: %v", err)
	}
	// An empty file sets nothing.
	mustParse(t, "gateway", []string{"--config", writeFile(t, ""), "--jwt-secret", "s"}, nil)
}

func TestCommandFlagsAndArgs(t *testing.T) {
	c, err := New("token", "herald token [flags] <user_id>")
	if err != nil {
		t.Fatal(err)
	}
	c.FlagSet().Duration("ttl", time.Hour, "token lifetime")
	var out bytes.Buffer
	if _, err := c.Parse([]string{"--help"}, envOf(nil), &out); !errors.Is(err, flag.ErrHelp) {
		t.Fatal(err)
	}
	if h := out.String(); !strings.HasPrefix(h, "usage: herald token [flags] <user_id>") || !strings.Contains(h, "--ttl duration") {
		t.Errorf("help:\n%s", h)
	}
	c, _ = New("token", "")
	ttl := c.FlagSet().Duration("ttl", time.Hour, "token lifetime")
	cfg, err := c.Parse([]string{"--ttl", "2m", "--data-dir", "d", "alice"}, envOf(nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	if *ttl != 2*time.Minute || cfg.DataDir != "d" || strings.Join(c.Args(), ",") != "alice" {
		t.Errorf("ttl %v data dir %q args %v", *ttl, cfg.DataDir, c.Args())
	}
	if _, err := New("no-such-role", ""); err == nil {
		t.Error("unknown role accepted")
	}
}

func TestLogValueHasNoSecrets(t *testing.T) {
	cfg := mustParse(t, "api", nil, map[string]string{
		"HERALD_JWT_SECRET": "jwt-s3cret", "HERALD_KAFKA_SASL": "PLAIN", "HERALD_KAFKA_USER": "u", "HERALD_KAFKA_PASSWORD": "kafka-s3cret",
		"HERALD_CASSANDRA_USER": "u", "HERALD_CASSANDRA_PASSWORD": "cass-s3cret", "HERALD_REDIS_URL": "redis://:url-s3cret@h:6379/0",
	})
	if s := cfg.LogValue().String(); strings.Contains(s, "s3cret") {
		t.Errorf("log value shows a secret: %s", s)
	}
}

// TestDocumentedSettings keeps docs/CONFIGURATION.md's table equal to the
// settings table. Regenerate with HERALD_UPDATE_DOCS=1 go test ./app/config.
func TestDocumentedSettings(t *testing.T) {
	const path = "../../docs/CONFIGURATION.md"
	const begin, end = "<!-- settings table: generated by app/config; HERALD_UPDATE_DOCS=1 go test ./app/config -->\n", "<!-- end of settings table -->"
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	i, j := strings.Index(doc, begin), strings.Index(doc, end)
	if i < 0 || j < i {
		t.Fatalf("%s: no settings table markers", path)
	}
	want := Markdown()
	if got := doc[i+len(begin) : j]; got != want {
		if os.Getenv("HERALD_UPDATE_DOCS") == "1" {
			if err := os.WriteFile(path, []byte(doc[:i+len(begin)]+want+doc[j:]), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("%s's settings table is out of date: run HERALD_UPDATE_DOCS=1 go test ./app/config", path)
	}
}
