package stacktest

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestParseDefaults(t *testing.T) {
	s, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Kafka.Brokers, []string{"127.0.0.1:9092"}) || s.Kafka.TLS.On() || s.Kafka.SASL != "" {
		t.Errorf("kafka: %+v", s.Kafka)
	}
	if !slices.Equal(s.Cassandra.Hosts, []string{"127.0.0.1:9042"}) || s.Cassandra.User != "" || s.Cassandra.TLSConfig() != nil {
		t.Errorf("cassandra: %+v", s.Cassandra)
	}
	if s.Redis.URL != "redis://127.0.0.1:6379/0" {
		t.Errorf("redis: %+v", s.Redis)
	}
	c := s.Cassandra.Cluster()
	if c.Authenticator != nil || c.SslOpts != nil {
		t.Errorf("unsecured cluster has an authenticator or TLS: %+v %+v", c.Authenticator, c.SslOpts)
	}
}

func TestParseSecured(t *testing.T) {
	vars := map[string]string{
		VarBrokers: "a:9092, b:9092", VarKafkaSASL: "SCRAM-SHA-512", VarKafkaUser: "herald", VarKafkaPassword: "pw",
		VarKafkaTLS:       "true",
		VarCassandraHosts: "c:9042", VarCassandraUser: "herald", VarCassandraPass: "cpw", VarCassandraTLS: "true",
		VarCassandraDC: "dc1",
		VarRedisURL:    "rediss://r:6379/0", VarRedisPassword: "rpw",
		"HERALD_OTHER": "ignored",
	}
	s, err := Parse(vars)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Kafka.Brokers, []string{"a:9092", "b:9092"}) || !s.Kafka.TLS.On() || s.Kafka.Password != "pw" {
		t.Errorf("kafka: %+v", s.Kafka)
	}
	c := s.Cassandra.Cluster()
	if c.Authenticator == nil || c.SslOpts == nil || !c.SslOpts.EnableHostVerification {
		t.Errorf("secured cluster lacks the authenticator or TLS: %+v %+v", c.Authenticator, c.SslOpts)
	}
	opt, err := s.Redis.Options()
	if err != nil || opt.Password != "rpw" || opt.TLSConfig == nil {
		t.Errorf("redis options: %+v, %v", opt, err)
	}
	env := s.Env()
	want := []string{
		"HERALD_BROKERS=a:9092, b:9092", "HERALD_KAFKA_TLS=true", "HERALD_KAFKA_SASL=SCRAM-SHA-512",
		"HERALD_KAFKA_USER=herald", "HERALD_KAFKA_PASSWORD=pw", "HERALD_CASSANDRA_HOSTS=c:9042",
		"HERALD_CASSANDRA_USER=herald", "HERALD_CASSANDRA_PASSWORD=cpw", "HERALD_CASSANDRA_TLS=true",
		"HERALD_CASSANDRA_LOCAL_DC=dc1", "HERALD_REDIS_URL=rediss://r:6379/0", "HERALD_REDIS_PASSWORD=rpw",
	}
	if !slices.Equal(env, want) {
		t.Errorf("Env:\n got %q\nwant %q", env, want)
	}
}

func TestParseErrorsNameTheVariable(t *testing.T) {
	for name, tc := range map[string]struct {
		vars map[string]string
		want string
	}{
		"bad tls flag":   {map[string]string{VarKafkaTLS: "maybe"}, VarKafkaTLS},
		"missing ca":     {map[string]string{VarCassandraTLSCA: "/nonexistent/ca.pem"}, VarCassandraTLSCA},
		"unknown sasl":   {map[string]string{VarKafkaSASL: "GSSAPI", VarKafkaUser: "u", VarKafkaPassword: "p"}, VarKafkaSASL},
		"sasl, no user":  {map[string]string{VarKafkaSASL: "PLAIN"}, VarKafkaUser},
		"password alone": {map[string]string{VarCassandraPass: "p"}, VarCassandraUser},
		"redis ca":       {map[string]string{VarRedisTLSCA: "/nonexistent/ca.pem"}, VarRedisTLSCA},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse(tc.vars)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one naming %s", err, tc.want)
			}
		})
	}
}

func TestReadEnvFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "herald.env")
	body := "# comment\n\nHERALD_BROKERS=127.0.0.1:9092\nexport HERALD_KAFKA_USER=herald\nHERALD_KAFKA_PASSWORD=a=b\n"
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadEnvFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got[VarBrokers] != "127.0.0.1:9092" || got[VarKafkaUser] != "herald" || got[VarKafkaPassword] != "a=b" || len(got) != 3 {
		t.Errorf("got %q", got)
	}
	if err := os.WriteFile(path, []byte("HERALD_BROKERS\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadEnvFile(path); err == nil || !strings.Contains(err.Error(), ":1:") {
		t.Errorf("malformed line: err = %v, want one with its line number", err)
	}
}

// unsetVars blanks every connection variable for the test (Load treats
// empty as unset).
func unsetVars(t *testing.T) {
	for _, k := range Vars {
		t.Setenv(k, "")
	}
}

func TestLoadPrefersEnvironmentOverFile(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("STACK_DIR", dir)
	if err := os.WriteFile(filepath.Join(dir, "herald.env"), []byte("HERALD_BROKERS=file:9092\nHERALD_REDIS_URL=redis://file:6379/0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	unsetVars(t)

	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if s.Source != filepath.Join(dir, "herald.env") || s.Kafka.Brokers[0] != "file:9092" {
		t.Errorf("from the file: source %q, brokers %v", s.Source, s.Kafka.Brokers)
	}

	// One variable in the environment: the environment is used as a whole.
	t.Setenv(VarBrokers, "env:9092")
	s, err = Load()
	if err != nil {
		t.Fatal(err)
	}
	if s.Source != "environment" || s.Kafka.Brokers[0] != "env:9092" || s.Redis.URL != "redis://127.0.0.1:6379/0" {
		t.Errorf("from the environment: source %q, brokers %v, redis %q", s.Source, s.Kafka.Brokers, s.Redis.URL)
	}
}

func TestLoadWithoutFileUsesDefaults(t *testing.T) {
	t.Setenv("STACK_DIR", t.TempDir())
	unsetVars(t)
	s, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	if s.Source != "defaults" || s.Kafka.Brokers[0] != "127.0.0.1:9092" {
		t.Errorf("source %q, brokers %v", s.Source, s.Kafka.Brokers)
	}
}
