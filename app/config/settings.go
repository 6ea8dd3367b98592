package config

import (
	"os"
	"sync"
)

// setting is one row of the table: where a value comes from and where it
// goes.
type setting struct {
	flag   string // flag name, without dashes; also the YAML key
	env    string // environment variable; "" = flag only
	def    string // default, in the text form Set parses
	usage  string
	secret bool   // never shown: no default in -h, value never quoted in errors
	docDef string // the default as documented, when def depends on the machine
	bind   func(c *Config) value
}

func (s *setting) yamlKey() string { return s.flag }

// Flag names of the settings, for Validate's messages and the role lists.
const (
	fConfig          = "config"
	fAddr            = "addr"
	fShutdownTimeout = "shutdown-timeout"
	fLogLevel        = "log-level"
	fLogFormat       = "log-format"

	fAdminAddr = "admin-addr"

	fHTTPReadTimeout  = "http-read-timeout"
	fHTTPWriteTimeout = "http-write-timeout"
	fHTTPIdleTimeout  = "http-idle-timeout"
	fHTTPMaxConns     = "http-max-conns"
	fProduceTimeout   = "produce-timeout"
	fIntakeInflight   = "intake-max-inflight-bytes"

	fBrokers       = "brokers"
	fKafkaTLS      = "kafka-tls"
	fKafkaTLSCA    = "kafka-tls-ca"
	fKafkaTLSCert  = "kafka-tls-cert"
	fKafkaTLSKey   = "kafka-tls-key"
	fKafkaSASL     = "kafka-sasl"
	fKafkaUser     = "kafka-user"
	fKafkaPassword = "kafka-password"
	fTopicPrefix   = "topic-prefix"
	fReplication   = "replication"
	fSessionTO     = "session-timeout"

	fStore             = "store"
	fStorePath         = "store-path"
	fCassandra         = "cassandra"
	fKeyspace          = "keyspace"
	fConsistency       = "consistency"
	fReplicationCQL    = "replication-cql"
	fCassandraUser     = "cassandra-user"
	fCassandraPassword = "cassandra-password"
	fCassandraTLS      = "cassandra-tls"
	fCassandraTLSCA    = "cassandra-tls-ca"
	fCassandraTLSCert  = "cassandra-tls-cert"
	fCassandraTLSKey   = "cassandra-tls-key"
	fCassandraLocalDC  = "cassandra-local-dc"

	fRedis         = "redis"
	fRedisPassword = "redis-password"
	fRedisTLSCA    = "redis-tls-ca"

	fJWTSecret     = "jwt-secret"
	fJWTPublicKeys = "jwt-public-keys"
	fJWTLifetime   = "jwt-max-lifetime"
	fAPIKeys       = "api-keys"
	fOrigins       = "origins"
	fRateKey       = "rate-events-per-key"
	fRateUser      = "rate-user"

	fGatewayID       = "gateway-id"
	fTransactionalID = "transactional-id"
	fGroupInstanceID = "group-instance-id"
	fLiveDirect      = "live-direct"
	fFanoutRate      = "fanout-rate"
	fFanoutThreshold = "fanout-threshold"
	fFanoutLiveHold  = "fanout-live-hold"
	fReplayLimit     = "replay-limit"
	fWSFrameRate     = "ws-frame-rate"
	fWSUpgradeRate   = "ws-upgrade-rate"
	fWSUpgradeBurst  = "ws-upgrade-burst"
	fWSMaxReplays    = "ws-max-replays"
	fWSReplayWait    = "ws-replay-wait"
	fWSPositionEvery = "ws-position-interval"
	fWSReadMode      = "ws-read-mode"
	fWSCompression   = "ws-compression"
	fRouterFromEnd   = "router-from-end"

	fDataDir   = "data-dir"
	fKafkaPort = "kafka-port"
)

var (
	tableOnce sync.Once
	table     []*setting
	byFlag    map[string]*setting
)

func str(p func(*Config) *string) func(*Config) value {
	return func(c *Config) value { return stringValue{p(c)} }
}
func list(p func(*Config) *[]string) func(*Config) value {
	return func(c *Config) value { return listValue{p(c)} }
}
func num(p func(*Config) *int) func(*Config) value {
	return func(c *Config) value { return intValue{p(c)} }
}

// settings returns the table, built once (some defaults use the host name).
func settings() ([]*setting, map[string]*setting) {
	tableOnce.Do(func() {
		host, _ := os.Hostname()
		if host == "" {
			host = "herald"
		}
		table = []*setting{
			{flag: fConfig, env: "HERALD_CONFIG", usage: "YAML file of settings (flags and environment override it)",
				bind: str(func(c *Config) *string { return &c.File })},
			{flag: fAddr, env: "HERALD_ADDR", def: ":8080", usage: "HTTP listen address",
				bind: str(func(c *Config) *string { return &c.Addr })},
			{flag: fShutdownTimeout, env: "HERALD_SHUTDOWN_TIMEOUT", def: "20s", usage: "how long a graceful shutdown may take",
				bind: func(c *Config) value { return durationValue{&c.ShutdownTimeout} }},
			{flag: fLogLevel, env: "HERALD_LOG_LEVEL", def: "info", usage: "debug, info, warn or error",
				bind: str(func(c *Config) *string { return &c.LogLevel })},
			{flag: fLogFormat, env: "HERALD_LOG_FORMAT", def: "text", usage: "text or json",
				bind: str(func(c *Config) *string { return &c.LogFormat })},

			{flag: fAdminAddr, env: "HERALD_ADMIN_ADDR", usage: "admin listener serving net/http/pprof at /debug/pprof/, never the public --addr; bind it to loopback or a private interface, e.g. 127.0.0.1:6060 (empty: off)",
				bind: str(func(c *Config) *string { return &c.AdminAddr })},

			{flag: fHTTPReadTimeout, env: "HERALD_HTTP_READ_TIMEOUT", def: "30s", usage: "how long a client may take to send a whole request, headers (at most 10s of it) and body",
				bind: func(c *Config) value { return durationValue{&c.HTTPReadTimeout} }},
			{flag: fHTTPWriteTimeout, env: "HERALD_HTTP_WRITE_TIMEOUT", def: "30s", usage: "how long writing a response may take before the connection is cut (WebSockets set their own deadlines)",
				bind: func(c *Config) value { return durationValue{&c.HTTPWriteTimeout} }},
			{flag: fHTTPIdleTimeout, env: "HERALD_HTTP_IDLE_TIMEOUT", def: "60s", usage: "an idle keep-alive connection is closed after this",
				bind: func(c *Config) value { return durationValue{&c.HTTPIdleTimeout} }},
			{flag: fHTTPMaxConns, env: "HERALD_HTTP_MAX_CONNS", def: "10000", usage: "open HTTP connections (WebSockets included); one more is answered 503 and closed",
				bind: num(func(c *Config) *int { return &c.HTTPMaxConns })},
			{flag: fProduceTimeout, env: "HERALD_PRODUCE_TIMEOUT", def: "5s", usage: "how long POST /v1/events waits for Kafka to acknowledge before answering 503 (a retried batch is deduplicated by event id)",
				bind: func(c *Config) value { return durationValue{&c.ProduceTimeout} }},
			{flag: fIntakeInflight, env: "HERALD_INTAKE_MAX_INFLIGHT_BYTES", def: "67108864", usage: "bytes of POST /v1/events bodies held at once (64 MiB); past it 503 with Retry-After",
				bind: num(func(c *Config) *int { return &c.IntakeMaxInflight })},

			{flag: fBrokers, env: "HERALD_BROKERS", def: "127.0.0.1:9092", usage: "Kafka seed brokers, comma separated",
				bind: list(func(c *Config) *[]string { return &c.Kafka.Brokers })},
			{flag: fKafkaTLS, env: "HERALD_KAFKA_TLS", def: "false", usage: "connect to Kafka over TLS (implied by the TLS files below)",
				bind: func(c *Config) value { return boolValue{&c.Kafka.TLS.Enabled} }},
			{flag: fKafkaTLSCA, env: "HERALD_KAFKA_TLS_CA", usage: "PEM file of the CAs of the Kafka brokers (empty: system roots)",
				bind: str(func(c *Config) *string { return &c.Kafka.TLS.CAFile })},
			{flag: fKafkaTLSCert, env: "HERALD_KAFKA_TLS_CERT", usage: "PEM client certificate for Kafka (with --kafka-tls-key)",
				bind: str(func(c *Config) *string { return &c.Kafka.TLS.CertFile })},
			{flag: fKafkaTLSKey, env: "HERALD_KAFKA_TLS_KEY", usage: "PEM client key for Kafka (with --kafka-tls-cert)",
				bind: str(func(c *Config) *string { return &c.Kafka.TLS.KeyFile })},
			{flag: fKafkaSASL, env: "HERALD_KAFKA_SASL", usage: "Kafka SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none)",
				bind: str(func(c *Config) *string { return &c.Kafka.SASL })},
			{flag: fKafkaUser, env: "HERALD_KAFKA_USER", usage: "Kafka SASL user",
				bind: str(func(c *Config) *string { return &c.Kafka.User })},
			{flag: fKafkaPassword, env: "HERALD_KAFKA_PASSWORD", secret: true, usage: "Kafka SASL password",
				bind: str(func(c *Config) *string { return &c.Kafka.Password })},
			{flag: fTopicPrefix, env: "HERALD_TOPIC_PREFIX", def: "herald.", usage: "prefix of Herald's topic names and consumer groups",
				bind: str(func(c *Config) *string { return &c.TopicPrefix })},
			{flag: fReplication, env: "HERALD_REPLICATION", def: "-1", usage: "topic replication factor (-1: broker default)",
				bind: num(func(c *Config) *int { return &c.Replication })},
			// 10s, down from 15s: a member that dies and does not come back
			// stalls its partitions for this long (one that restarts takes
			// them back sooner, --group-instance-id). Heartbeats go every
			// tenth of it from their own goroutine, whatever the batches do,
			// so only a whole-process stall of ~9 s evicts a live member: Go's
			// GC pauses are sub-millisecond, but a 2-core machine shared with
			// Kafka and Cassandra, or a throttled container, can deschedule a
			// process for a second or more. The broker's floor,
			// group.min.session.timeout.ms, is 6s by default: 6s would leave
			// no margin on such machines.
			{flag: fSessionTO, env: "HERALD_SESSION_TIMEOUT", def: "10s", usage: "Kafka consumer group session timeout: a crashed member's partitions move after it, unless it restarts first with its --group-instance-id; heartbeats every tenth of it (at most 3s); at least the brokers' group.min.session.timeout.ms (6s by default)",
				bind: func(c *Config) value { return durationValue{&c.SessionTimeout} }},

			{flag: fStore, env: "HERALD_STORE", def: "cassandra", usage: "store: cassandra, or embedded (one process only)",
				bind: str(func(c *Config) *string { return &c.Store })},
			{flag: fStorePath, env: "HERALD_STORE_PATH", def: "herald.db", usage: "embedded store file",
				bind: str(func(c *Config) *string { return &c.StorePath })},
			{flag: fCassandra, env: "HERALD_CASSANDRA_HOSTS", def: "127.0.0.1:9042", usage: "Cassandra contact points, comma separated",
				bind: list(func(c *Config) *[]string { return &c.Cassandra.Hosts })},
			{flag: fKeyspace, env: "HERALD_CASSANDRA_KEYSPACE", def: "herald", usage: "Cassandra keyspace",
				bind: str(func(c *Config) *string { return &c.Cassandra.Keyspace })},
			{flag: fConsistency, env: "HERALD_CASSANDRA_CONSISTENCY", def: "LOCAL_QUORUM", usage: "Cassandra consistency level",
				bind: str(func(c *Config) *string { return &c.Cassandra.Consistency })},
			{flag: fReplicationCQL, env: "HERALD_CASSANDRA_REPLICATION", usage: `keyspace replication (empty: SimpleStrategy factor 1; "3"; or "dc1=3,dc2=3")`,
				bind: str(func(c *Config) *string { return &c.Cassandra.Replication })},
			{flag: fCassandraUser, env: "HERALD_CASSANDRA_USER", usage: "Cassandra user (PasswordAuthenticator; empty: none)",
				bind: str(func(c *Config) *string { return &c.Cassandra.User })},
			{flag: fCassandraPassword, env: "HERALD_CASSANDRA_PASSWORD", secret: true, usage: "Cassandra password",
				bind: str(func(c *Config) *string { return &c.Cassandra.Password })},
			{flag: fCassandraTLS, env: "HERALD_CASSANDRA_TLS", def: "false", usage: "connect to Cassandra over TLS (implied by the TLS files below)",
				bind: func(c *Config) value { return boolValue{&c.Cassandra.TLS.Enabled} }},
			{flag: fCassandraTLSCA, env: "HERALD_CASSANDRA_TLS_CA", usage: "PEM file of the CAs of the Cassandra nodes (empty: system roots)",
				bind: str(func(c *Config) *string { return &c.Cassandra.TLS.CAFile })},
			{flag: fCassandraTLSCert, env: "HERALD_CASSANDRA_TLS_CERT", usage: "PEM client certificate for Cassandra (with --cassandra-tls-key)",
				bind: str(func(c *Config) *string { return &c.Cassandra.TLS.CertFile })},
			{flag: fCassandraTLSKey, env: "HERALD_CASSANDRA_TLS_KEY", usage: "PEM client key for Cassandra (with --cassandra-tls-cert)",
				bind: str(func(c *Config) *string { return &c.Cassandra.TLS.KeyFile })},
			{flag: fCassandraLocalDC, env: "HERALD_CASSANDRA_LOCAL_DC", usage: "keep Cassandra requests in this datacenter (empty: any)",
				bind: str(func(c *Config) *string { return &c.Cassandra.LocalDC })},

			{flag: fRedis, env: "HERALD_REDIS_URL", secret: true, usage: "Redis URL, redis:// or rediss:// (TLS), for presence, routing and the preference cache (empty: local only)",
				bind: str(func(c *Config) *string { return &c.Redis.URL })},
			{flag: fRedisPassword, env: "HERALD_REDIS_PASSWORD", secret: true, usage: "Redis password (wins over the URL's)",
				bind: str(func(c *Config) *string { return &c.Redis.Password })},
			{flag: fRedisTLSCA, env: "HERALD_REDIS_TLS_CA", usage: "PEM file of the CAs of Redis (turns TLS on)",
				bind: str(func(c *Config) *string { return &c.Redis.TLS.CAFile })},

			{flag: fJWTSecret, env: "HERALD_JWT_SECRET", secret: true, usage: "HS256 secret of user tokens",
				bind: str(func(c *Config) *string { return &c.JWTSecret })},
			{flag: fJWTPublicKeys, env: "HERALD_JWT_PUBLIC_KEYS", usage: "PEM files of RS256/ES256 public keys of user tokens, comma separated",
				bind: list(func(c *Config) *[]string { return &c.JWTPublicKeys })},
			{flag: fJWTLifetime, env: "HERALD_JWT_MAX_LIFETIME", def: "0", usage: "longest lifetime (exp - iat) a user token may claim; tokens without iat are then refused (0: no limit)",
				bind: func(c *Config) value { return durationValue{&c.JWTMaxLifetime} }},
			{flag: fAPIKeys, env: "HERALD_API_KEYS", secret: true, usage: "upstream API keys, comma separated",
				bind: list(func(c *Config) *[]string { return &c.APIKeys })},
			{flag: fOrigins, env: "HERALD_ORIGINS", usage: "allowed browser origins for WebSockets and CORS, comma separated (* for any; empty: same host)",
				bind: list(func(c *Config) *[]string { return &c.Origins })},
			{flag: fRateKey, env: "HERALD_RATE_EVENTS_PER_KEY", def: "0", usage: "events/s accepted per API key, bursts of twice that (0: no limit)",
				bind: func(c *Config) value { return floatValue{&c.RateKey} }},
			{flag: fRateUser, env: "HERALD_RATE_USER", def: "20", usage: "user API requests/s per user, bursts of twice that (0: no limit)",
				bind: func(c *Config) value { return floatValue{&c.RateUser} }},

			{flag: fGatewayID, env: "HERALD_GATEWAY_ID", def: host, docDef: "the host name", usage: "this gateway's id, unique in the fleet",
				bind: str(func(c *Config) *string { return &c.GatewayID })},
			{flag: fTransactionalID, env: "HERALD_TRANSACTIONAL_ID", def: "herald-enricher-" + host, docDef: "herald-enricher-<host name>", usage: "enricher transactional id, stable per instance",
				bind: str(func(c *Config) *string { return &c.TransactionalID })},
			{flag: fGroupInstanceID, env: "HERALD_GROUP_INSTANCE_ID", docDef: "derived per role", usage: "static consumer group membership id (Kafka group.instance.id): unique per live process, stable across its restarts, so that a restarted member takes its partitions back without a rebalance; two live processes with one id fence each other. Empty: the enricher's --transactional-id, the gateway's --gateway-id, the pusher's herald-pusher-<host name>; off: dynamic membership",
				bind: str(func(c *Config) *string { return &c.GroupInstanceID })},
			{flag: fLiveDirect, env: "HERALD_LIVE_DIRECT", def: "true", usage: "the enricher also publishes each committed notification straight to the gateways holding the user (through Redis), so live delivery waits neither for a router's poll nor for a crashed gateway's partitions to move; the routers still deliver everything (false: routers only)",
				bind: func(c *Config) value { return boolValue{&c.LiveDirect} }},
			{flag: fFanoutRate, env: "HERALD_FANOUT_RATE", def: "2000", usage: "recipients/s the fan-out stage expands multi-recipient events (user_ids, audience) to, in pages of 500: a broadcast reaches herald.events no faster, so ordinary events are not held up behind it",
				bind: func(c *Config) value { return floatValue{&c.FanoutRate} }},
			{flag: fFanoutThreshold, env: "HERALD_FANOUT_THRESHOLD", def: "10000", usage: "members from which an audience's broadcast takes the large-audience path: written once to the topic's feed, sent live to the connected members and pushed to those with devices, and taken into every other member's inbox when they next read or connect (below it: one event per member, fan-out on write)",
				bind: num(func(c *Config) *int { return &c.FanoutThreshold })},
			{flag: fFanoutLiveHold, env: "HERALD_FANOUT_LIVE_HOLD", def: "1s", usage: "how long the catch-up of a large audience's connected members waits after its broadcast was sent live, so that the gateways write the broadcast frames before the members' inbox copies load the machine; their inbox copies come that much later (0: no wait)",
				bind: func(c *Config) value { return durationValue{&c.FanoutLiveHold} }},
			{flag: fReplayLimit, env: "HERALD_REPLAY_LIMIT", def: "100", usage: "notifications replayed to a client connecting without after",
				bind: num(func(c *Config) *int { return &c.ReplayLimit })},
			{flag: fWSFrameRate, env: "HERALD_WS_FRAME_RATE", def: "20", usage: "WebSocket client frames/s per user on each gateway, bursts of twice that; past it the socket is closed with 4029",
				bind: func(c *Config) value { return floatValue{&c.WSFrameRate} }},
			// Reconnect storms (delivery/admission.go). On the 2-core dev
			// machine one gateway with the stack's Cassandra resyncs about
			// 1,000 clients/s when nothing holds it back (3 store reads each,
			// docs/BENCHMARKS.md "Reconnect storm"): 500/s keeps half of that
			// for live traffic and the roles sharing the store, and brings
			// 15,000 clients back in about 30 s (29.3-29.9 s measured against
			// one herald dev, make bench-storm); the burst absorbs an ordinary
			// restart's clients at once. 256 replay slots keep up with 500/s
			// against that Cassandra (64 held it to a third).
			{flag: fWSUpgradeRate, env: "HERALD_WS_UPGRADE_RATE", def: "500", usage: "WebSocket upgrades/s this gateway admits; the excess gets 503 with a jittered Retry-After",
				bind: func(c *Config) value { return floatValue{&c.WSUpgradeRate} }},
			{flag: fWSUpgradeBurst, env: "HERALD_WS_UPGRADE_BURST", def: "1000", usage: "burst of the WebSocket upgrade bucket",
				bind: num(func(c *Config) *int { return &c.WSUpgradeBurst })},
			{flag: fWSMaxReplays, env: "HERALD_WS_MAX_REPLAYS", def: "256", usage: "WebSocket replays reading the store at once; other new connections wait for a slot",
				bind: num(func(c *Config) *int { return &c.WSMaxReplays })},
			{flag: fWSReplayWait, env: "HERALD_WS_REPLAY_WAIT", def: "10s", usage: "how long a new WebSocket waits for a replay slot before it is closed with 1013",
				bind: func(c *Config) value { return durationValue{&c.WSReplayWait} }},
			{flag: fWSPositionEvery, env: "HERALD_WS_POSITION_INTERVAL", def: "60s", usage: "how often a quiet WebSocket is compared with the inbox's last seq, a safety net beside the checks after a presence write or a Redis resubscription (0: never)",
				bind: func(c *Config) value { return durationValue{&c.WSPositionInterval} }},
			{flag: fWSReadMode, env: "HERALD_WS_READ_MODE", def: "goroutine", usage: "how the gateway reads WebSockets: goroutine (a reader goroutine per connection) or epoll (quiet connections parked on one epoll instance, read by a pool of goroutines when they have input: less memory per idle connection; Linux only, elsewhere goroutine)",
				bind: str(func(c *Config) *string { return &c.WSReadMode })},
			// Off by default: it saves about a third of a notification's
			// bytes for 17 to 42 µs more CPU per frame, 3 to 9 times the
			// uncompressed write (docs/BENCHMARKS.md "WebSocket
			// compression"): worth it on metered or slow links only.
			{flag: fWSCompression, env: "HERALD_WS_COMPRESSION", def: "false", usage: "let WebSocket clients that offer permessage-deflate negotiate it: frames of 128 bytes or more are then sent deflated (flate level 1), for CPU on every frame (false: never negotiated)",
				bind: func(c *Config) value { return boolValue{&c.WSCompression} }},
			{flag: fRouterFromEnd, env: "HERALD_ROUTER_FROM_END", def: "false", usage: "a new gateway group starts at the end of herald.deliveries instead of replaying its retention",
				bind: func(c *Config) value { return boolValue{&c.RouterFromEnd} }},

			{flag: fDataDir, env: "HERALD_DATA_DIR", def: ".herald", usage: "data directory of herald dev: embedded Kafka, store and dev secrets (token and send read the secrets there)",
				bind: str(func(c *Config) *string { return &c.DataDir })},
			{flag: fKafkaPort, env: "HERALD_KAFKA_PORT", def: "19092", usage: "port of the embedded Kafka on 127.0.0.1 (0: any free port)",
				bind: num(func(c *Config) *int { return &c.KafkaPort })},
		}
		byFlag = make(map[string]*setting, len(table))
		for _, s := range table {
			byFlag[s.flag] = s
		}
	})
	return table, byFlag
}

// Groups of settings, composed into the roles below.
var (
	logging   = []string{fLogLevel, fLogFormat}
	server    = []string{fAddr, fShutdownTimeout, fHTTPReadTimeout, fHTTPWriteTimeout, fHTTPIdleTimeout, fHTTPMaxConns, fAdminAddr}
	intake    = []string{fProduceTimeout, fIntakeInflight}
	kafka     = []string{fBrokers, fKafkaTLS, fKafkaTLSCA, fKafkaTLSCert, fKafkaTLSKey, fKafkaSASL, fKafkaUser, fKafkaPassword}
	cassandra = []string{fCassandra, fKeyspace, fConsistency, fCassandraUser, fCassandraPassword,
		fCassandraTLS, fCassandraTLSCA, fCassandraTLSCert, fCassandraTLSKey, fCassandraLocalDC}
	storeSel = []string{fStore, fStorePath}
	redis    = []string{fRedis, fRedisPassword, fRedisTLSCA}
	users    = []string{fJWTSecret, fJWTPublicKeys, fJWTLifetime}
)

func join(groups ...[]string) []string {
	var out []string
	for _, g := range groups {
		out = append(out, g...)
	}
	return out
}

// roles lists, for each subcommand, the settings it registers (besides
// --config, which every subcommand has), in the order -h shows them.
var roles = map[string][]string{
	"dev": join(server, logging, []string{fDataDir, fKafkaPort, fTopicPrefix, fReplayLimit, fOrigins,
		fRateKey, fRateUser, fFanoutRate, fFanoutThreshold, fFanoutLiveHold, fWSReadMode, fWSCompression}, intake, users, []string{fAPIKeys}),
	"token":   {fDataDir, fJWTSecret},
	"send":    {fDataDir, fAPIKeys},
	"topics":  join(logging, kafka, []string{fTopicPrefix, fReplication}),
	"migrate": join(logging, cassandra, []string{fReplicationCQL}),
	"api": join(server, logging, kafka, []string{fTopicPrefix}, storeSel, cassandra, redis, users,
		[]string{fAPIKeys, fOrigins, fRateKey, fRateUser, fGatewayID}, intake),
	"enricher": join(server, logging, kafka, []string{fTopicPrefix, fSessionTO, fTransactionalID, fGroupInstanceID, fLiveDirect, fFanoutRate, fFanoutThreshold, fFanoutLiveHold}, storeSel, cassandra, redis),
	"gateway": join(server, logging, kafka, []string{fTopicPrefix, fSessionTO, fGroupInstanceID, fRouterFromEnd}, storeSel, cassandra, redis, users,
		[]string{fOrigins, fGatewayID, fReplayLimit, fWSFrameRate,
			fWSUpgradeRate, fWSUpgradeBurst, fWSMaxReplays, fWSReplayWait, fWSPositionEvery, fWSReadMode, fWSCompression}),
	// The pusher serves only health, readiness and metrics on --addr; its
	// apps, delay and retry policy are the push: section of --config.
	"pusher": join(server, logging, kafka, []string{fTopicPrefix, fSessionTO, fGroupInstanceID}, storeSel, cassandra),
	// herald dlq list|replay: an operator's command, Kafka only.
	"dlq": join(logging, kafka, []string{fTopicPrefix}),
}

// Roles are the subcommands that have settings, in the order of the
// documentation.
var Roles = []string{"dev", "token", "send", "topics", "migrate", "api", "enricher", "gateway", "pusher", "dlq"}

// Uses reports whether role registers the setting whose flag is name.
func Uses(role, name string) bool {
	if name == fConfig {
		_, ok := roles[role]
		return ok
	}
	for _, n := range roles[role] {
		if n == name {
			return true
		}
	}
	return false
}
