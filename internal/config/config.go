// Package config reads Herald's settings from command-line flags whose
// defaults come from HERALD_* environment variables, so every role can be
// configured either way (flags win).
package config

import (
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"
)

// Config is every setting a role may use. Each role reads only its part.
type Config struct {
	Addr        string   // HTTP listen address (API, WebSocket, metrics)
	Brokers     []string // Kafka seed brokers
	TopicPrefix string   // prefix of every topic name
	Replication int      // replication factor for `herald topics`; -1 = broker default

	DataDir   string // herald dev: where kfake and the embedded store keep data
	KafkaPort int    // herald dev: port of the embedded Kafka on 127.0.0.1 (0: any)

	Store             string   // "embedded" or "cassandra"
	StorePath         string   // embedded store file
	CassandraHosts    []string // Cassandra contact points
	CassandraKeyspace string
	CassandraConsist  string // e.g. LOCAL_QUORUM
	CassandraRepl     string // keyspace replication for `herald migrate`: "" (SimpleStrategy 1), "3", or "dc1=3,dc2=3"
	RedisURL          string // presence and cross-gateway routing; "" = local only

	JWTSecret     string   // HS256 secret for user tokens
	JWTPublicKeys []string // PEM files with RS256/ES256 public keys
	APIKeys       []string // upstream service keys for POST /v1/events
	Origins       []string // allowed browser origins (WebSocket and CORS); "*" = any
	RateKey       float64  // POST /v1/events per API key, events/s (burst 2×); 0 = no limit
	RateUser      float64  // user endpoints per user, requests/s (burst 2×); 0 = no limit

	GatewayID       string        // this gateway's id (presence, gw:<id> channel)
	TransactionalID string        // enricher transactional id; stable per instance
	ReplayLimit     int           // WebSocket replay without `after`
	SessionTimeout  time.Duration // Kafka group session timeout: how soon a crashed member's partitions move
	RouterFromEnd   bool          // a gateway group with no committed offsets starts at the end of herald.deliveries
	ShutdownTimeout time.Duration

	LogLevel  string // debug, info, warn, error
	LogFormat string // text or json
}

// Flags registers every setting on fs with HERALD_* environment defaults
// and returns the Config they fill once fs is parsed.
func Flags(fs *flag.FlagSet) *Config {
	c := &Config{}
	host, _ := os.Hostname()
	str(fs, &c.Addr, "addr", "HERALD_ADDR", ":8080", "HTTP listen address")
	list(fs, &c.Brokers, "brokers", "HERALD_BROKERS", "127.0.0.1:9092", "Kafka seed brokers, comma separated")
	str(fs, &c.TopicPrefix, "topic-prefix", "HERALD_TOPIC_PREFIX", "herald.", "prefix of Herald's topic names")
	num(fs, &c.Replication, "replication", "HERALD_REPLICATION", -1, "topic replication factor (-1: broker default)")
	str(fs, &c.DataDir, "data-dir", "HERALD_DATA_DIR", ".herald", "herald dev: data directory (embedded Kafka and store)")
	num(fs, &c.KafkaPort, "kafka-port", "HERALD_KAFKA_PORT", 19092, "herald dev: port of the embedded Kafka on 127.0.0.1 (0: any free port)")
	str(fs, &c.Store, "store", "HERALD_STORE", "cassandra", "store: embedded or cassandra")
	str(fs, &c.StorePath, "store-path", "HERALD_STORE_PATH", "herald.db", "embedded store file")
	list(fs, &c.CassandraHosts, "cassandra", "HERALD_CASSANDRA_HOSTS", "127.0.0.1:9042", "Cassandra contact points, comma separated")
	str(fs, &c.CassandraKeyspace, "keyspace", "HERALD_CASSANDRA_KEYSPACE", "herald", "Cassandra keyspace")
	str(fs, &c.CassandraConsist, "consistency", "HERALD_CASSANDRA_CONSISTENCY", "LOCAL_QUORUM", "Cassandra consistency level")
	str(fs, &c.CassandraRepl, "replication-cql", "HERALD_CASSANDRA_REPLICATION", "", "herald migrate: keyspace replication (empty: SimpleStrategy factor 1; \"3\"; or \"dc1=3,dc2=3\")")
	str(fs, &c.RedisURL, "redis", "HERALD_REDIS_URL", "", "Redis URL for presence and cross-gateway routing (empty: local only)")
	str(fs, &c.JWTSecret, "jwt-secret", "HERALD_JWT_SECRET", "", "HS256 secret for user tokens")
	list(fs, &c.JWTPublicKeys, "jwt-public-keys", "HERALD_JWT_PUBLIC_KEYS", "", "PEM files of RS256/ES256 public keys, comma separated")
	list(fs, &c.APIKeys, "api-keys", "HERALD_API_KEYS", "", "upstream API keys, comma separated")
	list(fs, &c.Origins, "origins", "HERALD_ORIGINS", "", "allowed browser origins for WebSockets and CORS, comma separated (* for any; empty: same host)")
	float(fs, &c.RateKey, "rate-events-per-key", "HERALD_RATE_EVENTS_PER_KEY", 0, "events/s accepted per API key, bursts of twice that (0: no limit)")
	float(fs, &c.RateUser, "rate-user", "HERALD_RATE_USER", 20, "user API requests/s per user, bursts of twice that (0: no limit)")
	str(fs, &c.GatewayID, "gateway-id", "HERALD_GATEWAY_ID", host, "this gateway's id")
	str(fs, &c.TransactionalID, "transactional-id", "HERALD_TRANSACTIONAL_ID", "herald-enricher-"+host, "enricher transactional id (stable per instance)")
	num(fs, &c.ReplayLimit, "replay-limit", "HERALD_REPLAY_LIMIT", 100, "notifications replayed to a client connecting without after")
	dur(fs, &c.SessionTimeout, "session-timeout", "HERALD_SESSION_TIMEOUT", 15*time.Second, "Kafka consumer group session timeout (a crashed member's partitions move after it)")
	boolean(fs, &c.RouterFromEnd, "router-from-end", "HERALD_ROUTER_FROM_END", false, "a new gateway group starts at the end of herald.deliveries instead of replaying its retention")
	dur(fs, &c.ShutdownTimeout, "shutdown-timeout", "HERALD_SHUTDOWN_TIMEOUT", 20*time.Second, "how long a graceful shutdown may take")
	str(fs, &c.LogLevel, "log-level", "HERALD_LOG_LEVEL", "info", "debug, info, warn or error")
	str(fs, &c.LogFormat, "log-format", "HERALD_LOG_FORMAT", "text", "text or json")
	return c
}

// Logger builds the process logger.
func (c *Config) Logger() *slog.Logger {
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(c.LogLevel)); err != nil {
		lvl = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lvl}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func envOr(env, def string) string {
	if v, ok := os.LookupEnv(env); ok {
		return v
	}
	return def
}

func str(fs *flag.FlagSet, p *string, name, env, def, usage string) {
	fs.StringVar(p, name, envOr(env, def), usage+" ($"+env+")")
}

func num(fs *flag.FlagSet, p *int, name, env string, def int, usage string) {
	v := def
	if s, ok := os.LookupEnv(env); ok {
		if n, err := strconv.Atoi(s); err == nil {
			v = n
		} else {
			fmt.Fprintf(os.Stderr, "ignoring $%s=%q: not a number\n", env, s)
		}
	}
	fs.IntVar(p, name, v, usage+" ($"+env+")")
}

func dur(fs *flag.FlagSet, p *time.Duration, name, env string, def time.Duration, usage string) {
	v := def
	if s, ok := os.LookupEnv(env); ok {
		if d, err := time.ParseDuration(s); err == nil {
			v = d
		} else {
			fmt.Fprintf(os.Stderr, "ignoring $%s=%q: not a duration\n", env, s)
		}
	}
	fs.DurationVar(p, name, v, usage+" ($"+env+")")
}

func float(fs *flag.FlagSet, p *float64, name, env string, def float64, usage string) {
	v := def
	if s, ok := os.LookupEnv(env); ok {
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			v = f
		} else {
			fmt.Fprintf(os.Stderr, "ignoring $%s=%q: not a number\n", env, s)
		}
	}
	fs.Float64Var(p, name, v, usage+" ($"+env+")")
}

// Limit is a rate with bursts of twice it (at least 1).
func Limit(perSecond float64) (rate float64, burst int) {
	if perSecond <= 0 {
		return 0, 0
	}
	return perSecond, max(1, int(2*perSecond))
}

func boolean(fs *flag.FlagSet, p *bool, name, env string, def bool, usage string) {
	v := def
	if s, ok := os.LookupEnv(env); ok {
		if b, err := strconv.ParseBool(s); err == nil {
			v = b
		} else {
			fmt.Fprintf(os.Stderr, "ignoring $%s=%q: not a boolean\n", env, s)
		}
	}
	fs.BoolVar(p, name, v, usage+" ($"+env+")")
}

type listValue struct{ p *[]string }

func (l listValue) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listValue) Set(s string) error {
	*l.p = SplitList(s)
	return nil
}

func list(fs *flag.FlagSet, p *[]string, name, env, def, usage string) {
	*p = SplitList(envOr(env, def))
	fs.Var(listValue{p}, name, usage+" ($"+env+")")
}

// SplitList splits a comma-separated list, dropping empty items.
func SplitList(s string) []string {
	out := []string{}
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}
