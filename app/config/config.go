// Package config reads the settings of each herald subcommand: flags, then
// HERALD_* environment variables, then a YAML file (--config), then
// defaults, in that order of precedence. Each subcommand (role) registers
// only the settings it uses, so `herald send -h` lists what send needs;
// every value is parsed strictly (a malformed one is an error naming its
// flag, variable or key, never silently replaced by the default) and
// checked by Validate before the role starts.
//
// The settings are one table (settings.go): flag name, environment
// variable, YAML key, default, help and the roles that use it.
// docs/CONFIGURATION.md is that table for people; a test keeps the two in
// step.
package config

import (
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/heraldhq/herald/internal/conn"
	"github.com/heraldhq/herald/policy"
)

// Config is the settings of one process. A role reads only the fields of
// the settings it registered; the others keep their defaults.
type Config struct {
	// Role is the subcommand these settings were parsed for ("api", "dev"…).
	Role string
	// File is the --config file read, "" if none.
	File string

	Addr            string        // HTTP listen address (API, WebSocket, health, metrics)
	ShutdownTimeout time.Duration // how long a graceful shutdown may take
	LogLevel        string        // debug, info, warn, error
	LogFormat       string        // text or json

	HTTPReadTimeout  time.Duration // whole request, headers and body (headers alone ≤ 10s)
	HTTPWriteTimeout time.Duration // writing a response; WebSockets set their own deadlines
	HTTPIdleTimeout  time.Duration // keep-alive connection idle that long is closed
	HTTPMaxConns     int           // open connections of the listener; past it 503 + close

	AdminAddr string // admin listener (net/http/pprof); "" = off. Never the public Addr

	ProduceTimeout    time.Duration // POST /v1/events: Kafka acknowledgement deadline, then 503
	IntakeMaxInflight int           // POST /v1/events: bytes of bodies held at once, then 503

	Kafka          conn.Kafka    // brokers, TLS, SASL
	TopicPrefix    string        // prefix of every topic name and consumer group
	Replication    int           // `herald topics`: replication factor; -1 = broker default
	SessionTimeout time.Duration // Kafka group session timeout: how soon a crashed member's partitions move

	Store     string    // "cassandra" or "embedded"
	StorePath string    // embedded store file
	Cassandra Cassandra // contact points, keyspace, credentials, TLS

	Redis conn.Redis // presence, cross-gateway routing, preference cache; URL "" = local only

	JWTSecret     string   // HS256 secret for user tokens
	JWTPublicKeys []string // PEM files with RS256/ES256 public keys
	APIKeys       []string // upstream service keys for POST /v1/events
	Origins       []string // allowed browser origins (WebSocket and CORS); "*" = any
	RateKey       float64  // POST /v1/events per API key, events/s (burst 2×); 0 = no limit
	RateUser      float64  // user endpoints per user, requests/s (burst 2×); 0 = no limit

	JWTMaxLifetime time.Duration // longest exp - iat of a user token (iat then required); 0 = no limit

	GatewayID       string        // this gateway's id (presence, gw:<id> channel)
	TransactionalID string        // enricher transactional id; stable per instance
	GroupInstanceID string        // consumers' static group membership id; "" = derived per role, "off" = dynamic
	LiveDirect      bool          // the enricher publishes committed notifications straight to the live gateways
	FanoutRate      float64       // recipients/s of the fan-out stage
	FanoutThreshold int           // members from which an audience takes the large-audience path
	FanoutLiveHold  time.Duration // a live broadcast's catch-ups wait this long; 0 = no wait
	ReplayLimit     int           // WebSocket replay without `after`
	WSFrameRate     float64       // WebSocket client frames/s per user on one gateway (burst 2×); 0 = the gateway default (20)
	RouterFromEnd   bool          // a gateway group with no committed offsets starts at the end of herald.deliveries

	// Reconnect storms and position checks of the gateway (delivery.Config).
	WSUpgradeRate      float64       // WebSocket upgrades/s admitted per gateway
	WSUpgradeBurst     int           // burst of the upgrade bucket
	WSMaxReplays       int           // replays reading the store at once
	WSReplayWait       time.Duration // wait for a replay slot before close 1013
	WSPositionInterval time.Duration // position check of quiet connections; 0 = never
	WSReadMode         string        // how the gateway reads WebSockets: goroutine or epoll (delivery.ReadMode)
	WSCompression      bool          // permessage-deflate negotiable with the clients that offer it

	DataDir   string // herald dev, token, send: data directory (embedded Kafka, store, dev secrets)
	KafkaPort int    // herald dev: port of the embedded Kafka on 127.0.0.1 (0: any)

	// Sections are the structured settings of the --config file.
	Sections Sections
}

// Cassandra is how to reach the Cassandra cluster.
type Cassandra struct {
	Hosts       []string // contact points
	Keyspace    string
	Consistency string // e.g. LOCAL_QUORUM
	Replication string // `herald migrate`: "" (SimpleStrategy 1), "3", or "dc1=3,dc2=3"
	User        string // PasswordAuthenticator user; "" = no authentication
	Password    string
	TLS         conn.TLS
	LocalDC     string // keep requests in this datacenter; "" = any
}

// Sections are the structured parts of the --config file, which have no
// flag or environment variable. The file is decoded into them strictly
// (an unknown key is an error), so a setting that this build does not know
// is never silently ignored.
type Sections struct {
	// Push: the pusher's apps (APNs, FCM credentials), the default app of
	// a device registration, the push delay per type and the retry policy
	// (push.go). Nil when the file has no push: section; read it with
	// Config.PushSettings, which fills the defaults.
	Push *Push `yaml:"push"`
	// Policy: the notification policy of the enricher (per-type digests,
	// rate limits, daily caps: package policy). Nil when the file has no
	// policy: section (no policy). Read by herald enricher and herald dev,
	// and again on SIGHUP (ReadPolicy).
	Policy *policy.Config `yaml:"policy"`
}

// PolicySettings is the policy of the policy: section (an empty one,
// governing nothing, without it). The section was validated by Parse.
func (c *Config) PolicySettings() (*policy.Policy, error) {
	var pc policy.Config
	if c.Sections.Policy != nil {
		pc = *c.Sections.Policy
	}
	return policy.New(pc)
}

// ReadPolicy reads the policy: section of the --config file at path
// again, for a reload: the whole file must still parse (a file that this
// build would refuse at start is refused), but only its policy is
// returned; the other settings keep the values the process started with.
func ReadPolicy(path string) (*policy.Policy, error) {
	var sections Sections
	if _, err := loadFile(path, &sections); err != nil {
		return nil, err
	}
	var pc policy.Config
	if sections.Policy != nil {
		pc = *sections.Policy
	}
	p, err := policy.New(pc)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return p, nil
}

// Logger builds the process logger from LogLevel and LogFormat (checked
// by Validate).
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

// LogValue describes the settings for a start-up log line, without any
// secret.
func (c *Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("role", c.Role), slog.String("addr", c.Addr),
		slog.Any("kafka", c.Kafka.LogValue()), slog.String("store", c.Store),
		slog.Any("cassandra", slog.GroupValue(
			slog.Any("hosts", c.Cassandra.Hosts), slog.String("keyspace", c.Cassandra.Keyspace),
			slog.String("user", c.Cassandra.User), slog.Bool("tls", c.Cassandra.TLS.On()),
			slog.String("local_dc", c.Cassandra.LocalDC))),
		slog.Any("redis", c.Redis.LogValue()), slog.String("topic_prefix", c.TopicPrefix),
	)
}
