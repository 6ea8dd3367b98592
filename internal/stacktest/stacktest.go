// Package stacktest gives Herald's integration tests (and the stack's
// readiness probe) the connection settings of the integration stack
// started by scripts/stack/stack.sh: Kafka over SASL_SSL, Cassandra with
// a password and TLS, Redis with a password and TLS.
//
// The settings are the HERALD_* connection variables (see Vars). They are
// read from the environment when any of them is set there (as `make
// test-integration` does, after sourcing .stack/herald.env); otherwise
// from the file $STACK_DIR/herald.env, by default <repo>/.stack/herald.env,
// so that `go test -tags integration ./store/cassandra/` works on its own.
// When neither exists the defaults of an unsecured local stack are used
// (127.0.0.1:9092, 127.0.0.1:9042, redis://127.0.0.1:6379/0), and the
// tests fail loudly against a secured one. Nothing here skips a test.
//
// The package-level helpers load the settings once and panic with a
// message naming the variable when they are malformed (a missing CA file,
// an unknown SASL mechanism): a broken test environment, not a test
// failure. Load and Parse return errors instead.
package stacktest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/internal/conn"
)

// The connection variables, as written by stack.sh into herald.env and read
// by the roles' configuration.
const (
	VarBrokers         = "HERALD_BROKERS"
	VarKafkaTLS        = "HERALD_KAFKA_TLS"
	VarKafkaTLSCA      = "HERALD_KAFKA_TLS_CA"
	VarKafkaTLSCert    = "HERALD_KAFKA_TLS_CERT"
	VarKafkaTLSKey     = "HERALD_KAFKA_TLS_KEY"
	VarKafkaSASL       = "HERALD_KAFKA_SASL"
	VarKafkaUser       = "HERALD_KAFKA_USER"
	VarKafkaPassword   = "HERALD_KAFKA_PASSWORD"
	VarCassandraHosts  = "HERALD_CASSANDRA_HOSTS"
	VarCassandraUser   = "HERALD_CASSANDRA_USER"
	VarCassandraPass   = "HERALD_CASSANDRA_PASSWORD"
	VarCassandraTLS    = "HERALD_CASSANDRA_TLS"
	VarCassandraTLSCA  = "HERALD_CASSANDRA_TLS_CA"
	VarCassandraCert   = "HERALD_CASSANDRA_TLS_CERT"
	VarCassandraKey    = "HERALD_CASSANDRA_TLS_KEY"
	VarCassandraDC     = "HERALD_CASSANDRA_LOCAL_DC"
	VarRedisURL        = "HERALD_REDIS_URL"
	VarRedisPassword   = "HERALD_REDIS_PASSWORD"
	VarRedisTLSCA      = "HERALD_REDIS_TLS_CA"
	defaultBrokers     = "127.0.0.1:9092"
	defaultCassandra   = "127.0.0.1:9042"
	defaultRedisURL    = "redis://127.0.0.1:6379/0"
	envFileName        = "herald.env"
	stackDirVar        = "STACK_DIR"
	defaultStackSubdir = ".stack"
)

// Vars are the connection variables, in herald.env's order.
var Vars = []string{
	VarBrokers, VarKafkaTLS, VarKafkaTLSCA, VarKafkaTLSCert, VarKafkaTLSKey,
	VarKafkaSASL, VarKafkaUser, VarKafkaPassword,
	VarCassandraHosts, VarCassandraUser, VarCassandraPass, VarCassandraTLS,
	VarCassandraTLSCA, VarCassandraCert, VarCassandraKey, VarCassandraDC,
	VarRedisURL, VarRedisPassword, VarRedisTLSCA,
}

// CassandraSettings is how to reach and authenticate to Cassandra.
type CassandraSettings struct {
	// Hosts are the contact points, host:port.
	Hosts []string
	// User and Password enable PasswordAuthenticator when User is set.
	User, Password string
	// TLS of the native-protocol connections; zero: plaintext.
	TLS conn.TLS
	// LocalDC, when set, is the datacenter to keep requests in.
	LocalDC string

	tls *tls.Config // built from TLS by Parse
}

// TLSConfig is the client TLS configuration, nil when TLS is off. Callers
// may keep it; it is a fresh clone each time.
func (c CassandraSettings) TLSConfig() *tls.Config {
	if c.tls == nil {
		return nil
	}
	return c.tls.Clone()
}

// Cluster returns a gocql cluster configuration for these settings: the
// contact points (hosts, or c.Hosts when none are given), the password
// authenticator and TLS with host verification. Tune timeouts and
// consistency on the result.
func (c CassandraSettings) Cluster(hosts ...string) *gocql.ClusterConfig {
	if len(hosts) == 0 {
		hosts = c.Hosts
	}
	cluster := gocql.NewCluster(hosts...)
	if c.User != "" {
		cluster.Authenticator = gocql.PasswordAuthenticator{Username: c.User, Password: c.Password}
	}
	if tc := c.TLSConfig(); tc != nil {
		cluster.SslOpts = &gocql.SslOptions{Config: tc, EnableHostVerification: true}
	}
	if c.LocalDC != "" {
		cluster.PoolConfig.HostSelectionPolicy = gocql.TokenAwareHostPolicy(gocql.DCAwareRoundRobinPolicy(c.LocalDC))
	}
	return cluster
}

// Settings are the stack's connection settings.
type Settings struct {
	Kafka     conn.Kafka
	Cassandra CassandraSettings
	Redis     conn.Redis
	// Source says where they came from: "environment", a file path, or
	// "defaults".
	Source string

	vars map[string]string
}

// Env returns the connection variables as KEY=VALUE, the non-empty ones
// only, for the environment of a `herald` role process.
func (s Settings) Env() []string {
	var out []string
	for _, k := range Vars {
		if v := s.vars[k]; v != "" {
			out = append(out, k+"="+v)
		}
	}
	return out
}

// Var returns one connection variable as loaded ("" when unset).
func (s Settings) Var(name string) string { return s.vars[name] }

// Parse builds the settings from connection variables (missing ones take
// the unsecured defaults). It reads the TLS files, so that a missing CA
// shows here and not as a handshake error. Errors name the variable.
func Parse(vars map[string]string) (Settings, error) {
	v := make(map[string]string, len(vars))
	for _, k := range Vars {
		if val := strings.TrimSpace(vars[k]); val != "" {
			v[k] = val
		}
	}
	for k, def := range map[string]string{VarBrokers: defaultBrokers, VarCassandraHosts: defaultCassandra, VarRedisURL: defaultRedisURL} {
		if v[k] == "" {
			v[k] = def
		}
	}
	s := Settings{vars: v}

	kafkaTLS, err := tlsOf(v, VarKafkaTLS, VarKafkaTLSCA, VarKafkaTLSCert, VarKafkaTLSKey)
	if err != nil {
		return Settings{}, err
	}
	s.Kafka = conn.Kafka{
		Brokers:  splitList(v[VarBrokers]),
		TLS:      kafkaTLS,
		SASL:     v[VarKafkaSASL],
		User:     v[VarKafkaUser],
		Password: v[VarKafkaPassword],
	}
	if _, err := s.Kafka.Opts(); err != nil {
		return Settings{}, fmt.Errorf("%s/%s/%s/%s: %w", VarBrokers, VarKafkaSASL, VarKafkaUser, VarKafkaPassword, err)
	}

	cassTLS, err := tlsOf(v, VarCassandraTLS, VarCassandraTLSCA, VarCassandraCert, VarCassandraKey)
	if err != nil {
		return Settings{}, err
	}
	s.Cassandra = CassandraSettings{
		Hosts:    splitList(v[VarCassandraHosts]),
		User:     v[VarCassandraUser],
		Password: v[VarCassandraPass],
		TLS:      cassTLS,
		LocalDC:  v[VarCassandraDC],
	}
	if s.Cassandra.User == "" && s.Cassandra.Password != "" {
		return Settings{}, fmt.Errorf("%s is set but %s is not", VarCassandraPass, VarCassandraUser)
	}
	if s.Cassandra.tls, err = cassTLS.Config(); err != nil {
		return Settings{}, fmt.Errorf("%s: %w", VarCassandraTLSCA, err)
	}

	s.Redis = conn.Redis{URL: v[VarRedisURL], Password: v[VarRedisPassword], TLS: conn.TLS{CAFile: v[VarRedisTLSCA]}}
	if _, err := s.Redis.Options(); err != nil {
		return Settings{}, fmt.Errorf("%s/%s: %w", VarRedisURL, VarRedisTLSCA, err)
	}
	return s, nil
}

func tlsOf(v map[string]string, on, ca, cert, key string) (conn.TLS, error) {
	t := conn.TLS{CAFile: v[ca], CertFile: v[cert], KeyFile: v[key]}
	switch strings.ToLower(v[on]) {
	case "", "false", "0", "no":
	case "true", "1", "yes":
		t.Enabled = true
	default:
		return conn.TLS{}, fmt.Errorf("%s=%q: want true or false", on, v[on])
	}
	if _, err := t.Config(); err != nil {
		return conn.TLS{}, fmt.Errorf("%s/%s/%s: %w", ca, cert, key, err)
	}
	return t, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// ReadEnvFile reads a herald.env file: KEY=VALUE lines, # comments and
// blank lines ignored, an optional leading "export ", values taken as
// written (no quotes, no expansion).
func ReadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer func() { _ = f.Close() }() // read-only
	return parseEnv(f, path)
}

func parseEnv(r io.Reader, name string) (map[string]string, error) {
	out := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		k, val, ok := strings.Cut(line, "=")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return nil, fmt.Errorf("%s:%d: want KEY=VALUE", name, n)
		}
		out[k] = val
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}

// EnvFile is where the stack's herald.env is looked for: $STACK_DIR/herald.env,
// else <repo>/.stack/herald.env.
func EnvFile() string {
	if d := os.Getenv(stackDirVar); d != "" {
		return filepath.Join(d, envFileName)
	}
	return filepath.Join(repoRoot(), defaultStackSubdir, envFileName)
}

// repoRoot is the module root: from this file's compile-time path, or, when
// built with -trimpath, the first parent of the working directory holding
// go.mod.
func repoRoot() string {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	}
	dir, err := os.Getwd()
	if err != nil {
		return "."
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d
		}
		if filepath.Dir(d) == d {
			return dir
		}
	}
}

// Load reads the settings: from the environment when any connection
// variable is set there (the environment is then taken as a whole, never
// mixed with the file), else from EnvFile when it exists, else the
// defaults.
func Load() (Settings, error) {
	vars := map[string]string{}
	fromEnv := false
	for _, k := range Vars {
		if val, ok := os.LookupEnv(k); ok && val != "" {
			vars[k] = val
			fromEnv = true
		}
	}
	source := "environment"
	if !fromEnv {
		path := EnvFile()
		fileVars, err := ReadEnvFile(path)
		switch {
		case err == nil:
			vars, source = fileVars, path
		case errors.Is(err, os.ErrNotExist):
			source = "defaults"
		default:
			return Settings{}, fmt.Errorf("stack env file: %w", err)
		}
	}
	s, err := Parse(vars)
	if err != nil {
		return Settings{}, fmt.Errorf("stack settings from %s: %w", source, err)
	}
	s.Source = source
	return s, nil
}

var loaded = sync.OnceValues(Load)

// Get returns the settings loaded once by Load; it panics when they are
// malformed.
func Get() Settings {
	s, err := loaded()
	if err != nil {
		panic("stacktest: " + err.Error())
	}
	return s
}

// Kafka is the Kafka connection settings.
func Kafka() conn.Kafka { return Get().Kafka }

// KafkaOpts returns the franz-go options that reach the stack's Kafka
// (seed brokers, TLS, SASL) followed by extra.
func KafkaOpts(extra ...kgo.Opt) []kgo.Opt {
	opts, err := Get().Kafka.Opts()
	if err != nil {
		panic("stacktest: kafka: " + err.Error()) // Parse has checked them
	}
	return append(opts, extra...)
}

// Brokers are the Kafka seed brokers.
func Brokers() []string { return Get().Kafka.Brokers }

// Cassandra is the Cassandra connection settings.
func Cassandra() CassandraSettings { return Get().Cassandra }

// CassandraHosts are the Cassandra contact points.
func CassandraHosts() []string { return Get().Cassandra.Hosts }

// CassandraCluster is Cassandra().Cluster(hosts...): a gocql configuration
// with the authenticator and TLS, and a 10 s connect timeout.
func CassandraCluster(hosts ...string) *gocql.ClusterConfig {
	c := Get().Cassandra.Cluster(hosts...)
	c.ConnectTimeout = 10 * time.Second
	return c
}

// Redis is the Redis connection settings.
func Redis() conn.Redis { return Get().Redis }

// RedisOptions returns fresh go-redis options for the stack's Redis.
func RedisOptions() *redis.Options {
	opt, err := Get().Redis.Options()
	if err != nil {
		panic("stacktest: redis: " + err.Error()) // Parse has checked them
	}
	return opt
}

// RedisClient returns a new client for the stack's Redis; the caller
// closes it.
func RedisClient() *redis.Client { return redis.NewClient(RedisOptions()) }

// Env is Get().Env(): the connection variables for a role process.
func Env() []string { return Get().Env() }

// Describe is a one-line summary of the settings without secrets, for
// failure messages.
func Describe() string {
	s := Get()
	return fmt.Sprintf("kafka %v (tls=%t sasl=%s), cassandra %v (user=%q tls=%t), redis %s (from %s)",
		s.Kafka.Brokers, s.Kafka.TLS.On(), orNone(s.Kafka.SASL), s.Cassandra.Hosts, s.Cassandra.User,
		s.Cassandra.TLS.On(), conn.Redact(s.Redis.URL), s.Source)
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}
