package config

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/conn"
)

// validate checks the settings the role uses; each error names the flag,
// variable or file key it came from.
func (c *Command) validate() error {
	cfg := c.cfg
	var errs []error
	bad := func(flagName, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", c.name(flagName), fmt.Sprintf(format, args...)))
	}
	uses := func(name string) bool { return Uses(c.role, name) }

	if uses(fLogLevel) {
		var lvl slog.Level
		if err := lvl.UnmarshalText([]byte(cfg.LogLevel)); err != nil {
			bad(fLogLevel, "%q: want debug, info, warn or error", cfg.LogLevel)
		}
	}
	if uses(fLogFormat) && cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		bad(fLogFormat, "%q: want text or json", cfg.LogFormat)
	}
	if uses(fAddr) && strings.TrimSpace(cfg.Addr) == "" {
		bad(fAddr, "empty: give host:port")
	}
	// The admin listener serves profiles and goroutine dumps: a typo must
	// not leave it off unnoticed, and it may never share the public port.
	if uses(fAdminAddr) && cfg.AdminAddr != "" {
		// Port 0 (any free port, in tests) is never the same listener twice.
		if _, port, err := net.SplitHostPort(cfg.AdminAddr); err != nil {
			bad(fAdminAddr, "%q: want host:port, e.g. 127.0.0.1:6060", cfg.AdminAddr)
		} else if cfg.AdminAddr == cfg.Addr && port != "0" {
			bad(fAdminAddr, "%q: the same as %s; the admin listener must be a separate one", cfg.AdminAddr, c.name(fAddr))
		}
	}
	if uses(fShutdownTimeout) && cfg.ShutdownTimeout <= 0 {
		bad(fShutdownTimeout, "%s: must be positive", cfg.ShutdownTimeout)
	}
	for _, d := range []struct {
		flag string
		v    time.Duration
	}{{fHTTPReadTimeout, cfg.HTTPReadTimeout}, {fHTTPWriteTimeout, cfg.HTTPWriteTimeout},
		{fHTTPIdleTimeout, cfg.HTTPIdleTimeout}, {fProduceTimeout, cfg.ProduceTimeout}} {
		if uses(d.flag) && d.v <= 0 {
			bad(d.flag, "%s: must be positive", d.v)
		}
	}
	if uses(fHTTPMaxConns) && cfg.HTTPMaxConns < 1 {
		bad(fHTTPMaxConns, "%d: must be at least 1", cfg.HTTPMaxConns)
	}
	// A full batch (500 × 64 KiB + 64 KiB) must fit, or it could never pass.
	const fullBatch = 500*64<<10 + 64<<10
	if uses(fIntakeInflight) && cfg.IntakeMaxInflight < fullBatch {
		bad(fIntakeInflight, "%d: must be at least %d, one full batch", cfg.IntakeMaxInflight, fullBatch)
	}
	if uses(fBrokers) {
		c.validateKafka(bad)
	}
	if uses(fSessionTO) && cfg.SessionTimeout <= 0 {
		bad(fSessionTO, "%s: must be positive", cfg.SessionTimeout)
	}
	if uses(fReplication) && cfg.Replication != -1 && cfg.Replication < 1 {
		bad(fReplication, "%d: want -1 (broker default) or a factor of at least 1", cfg.Replication)
	}
	if uses(fStore) {
		switch cfg.Store {
		case "cassandra":
			c.validateCassandra(bad)
		case "embedded":
			if cfg.StorePath == "" {
				bad(fStorePath, "empty: the embedded store needs a file")
			}
		default:
			bad(fStore, "%q: want cassandra or embedded", cfg.Store)
		}
	} else if uses(fCassandra) {
		c.validateCassandra(bad)
	}
	if uses(fRedis) {
		c.validateRedis(bad)
	}
	if uses(fJWTSecret) && uses(fJWTPublicKeys) && c.role != "dev" &&
		cfg.JWTSecret == "" && len(cfg.JWTPublicKeys) == 0 {
		errs = append(errs, fmt.Errorf("no user-token key: set %s or %s", c.name(fJWTSecret), c.name(fJWTPublicKeys)))
	}
	if uses(fRateKey) && cfg.RateKey < 0 {
		bad(fRateKey, "%g: must be 0 (no limit) or more", cfg.RateKey)
	}
	if uses(fRateUser) && cfg.RateUser < 0 {
		bad(fRateUser, "%g: must be 0 (no limit) or more", cfg.RateUser)
	}
	if uses(fJWTLifetime) && cfg.JWTMaxLifetime < 0 {
		bad(fJWTLifetime, "%s: must be 0 (no limit) or more", cfg.JWTMaxLifetime)
	}
	if uses(fFanoutThreshold) && cfg.FanoutThreshold < 1 {
		bad(fFanoutThreshold, "%d: must be at least 1", cfg.FanoutThreshold)
	}
	if uses(fFanoutLiveHold) && (cfg.FanoutLiveHold < 0 || cfg.FanoutLiveHold > time.Minute) {
		bad(fFanoutLiveHold, "%s: must be from 0 (no wait) to 1m", cfg.FanoutLiveHold)
	}
	if uses(fFanoutRate) && (!(cfg.FanoutRate > 0) || math.IsInf(cfg.FanoutRate, 0)) {
		bad(fFanoutRate, "%g: must be a finite rate above 0", cfg.FanoutRate)
	}
	if uses(fWSFrameRate) && (!(cfg.WSFrameRate > 0) || math.IsInf(cfg.WSFrameRate, 0)) {
		bad(fWSFrameRate, "%g: must be a finite rate above 0", cfg.WSFrameRate)
	}
	if uses(fWSUpgradeRate) && (!(cfg.WSUpgradeRate > 0) || math.IsInf(cfg.WSUpgradeRate, 0)) {
		bad(fWSUpgradeRate, "%g: must be a finite rate above 0", cfg.WSUpgradeRate)
	}
	if uses(fWSUpgradeBurst) && cfg.WSUpgradeBurst < 1 {
		bad(fWSUpgradeBurst, "%d: must be 1 or more", cfg.WSUpgradeBurst)
	}
	if uses(fWSMaxReplays) && cfg.WSMaxReplays < 1 {
		bad(fWSMaxReplays, "%d: must be 1 or more", cfg.WSMaxReplays)
	}
	if uses(fWSReplayWait) && cfg.WSReplayWait <= 0 {
		bad(fWSReplayWait, "%s: must be above 0", cfg.WSReplayWait)
	}
	if uses(fWSReadMode) && cfg.WSReadMode != "goroutine" && cfg.WSReadMode != "epoll" {
		bad(fWSReadMode, "%q: must be goroutine or epoll", cfg.WSReadMode)
	}
	if uses(fWSPositionEvery) && cfg.WSPositionInterval < 0 {
		bad(fWSPositionEvery, "%s: must be 0 (never) or more", cfg.WSPositionInterval)
	}
	if uses(fReplayLimit) && cfg.ReplayLimit < 0 {
		bad(fReplayLimit, "%d: must be 0 (the default) or more", cfg.ReplayLimit)
	}
	if uses(fGatewayID) && cfg.GatewayID == "" {
		bad(fGatewayID, "empty: every gateway needs an id, unique in the fleet")
	}
	if uses(fTransactionalID) && cfg.TransactionalID == "" {
		bad(fTransactionalID, "empty: every enricher needs a transactional id, stable per instance")
	}
	if uses(fGroupInstanceID) && cfg.GroupInstanceID != "" && cfg.GroupInstanceID != "off" && !ValidInstanceID(cfg.GroupInstanceID) {
		bad(fGroupInstanceID, "%q: want 1 to 249 of a-z A-Z 0-9 . _ - (Kafka's rule), empty (derived) or off", cfg.GroupInstanceID)
	}
	if uses(fKafkaPort) && (cfg.KafkaPort < 0 || cfg.KafkaPort > 65535) {
		bad(fKafkaPort, "%d: want a port, 0 to 65535", cfg.KafkaPort)
	}
	if uses(fDataDir) && cfg.DataDir == "" {
		bad(fDataDir, "empty: give a directory")
	}
	// The roles that read the push section: the pusher (apps, delay,
	// retry), the API (default_app) and herald dev (all of it).
	if ps := cfg.Sections.Push; ps != nil && (c.role == "pusher" || c.role == "api" || c.role == "dev") {
		if err := ps.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("config file %s: %w", cfg.File, err))
		}
	}
	if pc := cfg.Sections.Policy; pc != nil && (c.role == "enricher" || c.role == "dev") {
		if err := pc.Validate(); err != nil {
			errs = append(errs, fmt.Errorf("config file %s: %w", cfg.File, err))
		}
	}
	return errors.Join(errs...)
}

func (c *Command) validateKafka(bad func(string, string, ...any)) {
	k := c.cfg.Kafka
	if len(k.Brokers) == 0 {
		bad(fBrokers, "empty: give at least one host:port")
	}
	switch mech := strings.ToUpper(k.SASL); mech {
	case "":
		if k.User != "" {
			bad(fKafkaUser, "set, but %s is empty: choose PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.name(fKafkaSASL))
		}
		if k.Password != "" {
			bad(fKafkaPassword, "set, but %s is empty: choose PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", c.name(fKafkaSASL))
		}
	case conn.SASLPlain, conn.SASLScramSHA256, conn.SASLScramSHA512:
		if k.User == "" {
			bad(fKafkaUser, "empty: SASL %s needs a user", mech)
		}
		if k.Password == "" {
			bad(fKafkaPassword, "empty: SASL %s needs a password", mech)
		}
	default:
		bad(fKafkaSASL, "%q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASL)
	}
	c.validateTLS(bad, k.TLS, fKafkaTLSCA, fKafkaTLSCert, fKafkaTLSKey)
}

func (c *Command) validateCassandra(bad func(string, string, ...any)) {
	cs := c.cfg.Cassandra
	if len(cs.Hosts) == 0 {
		bad(fCassandra, "empty: give at least one contact point")
	}
	if strings.TrimSpace(cs.Keyspace) == "" {
		bad(fKeyspace, "empty: give a keyspace")
	}
	if cs.User == "" && cs.Password != "" {
		bad(fCassandraPassword, "set, but %s is empty", c.name(fCassandraUser))
	}
	if cs.User != "" && cs.Password == "" {
		bad(fCassandraPassword, "empty, but %s is set", c.name(fCassandraUser))
	}
	c.validateTLS(bad, cs.TLS, fCassandraTLSCA, fCassandraTLSCert, fCassandraTLSKey)
}

func (c *Command) validateRedis(bad func(string, string, ...any)) {
	r := c.cfg.Redis
	if r.URL == "" {
		if r.Password != "" {
			bad(fRedisPassword, "set, but %s is empty", c.name(fRedis))
		}
		if r.TLS.CAFile != "" {
			bad(fRedisTLSCA, "set, but %s is empty", c.name(fRedis))
		}
		return
	}
	if !strings.HasPrefix(r.URL, "redis://") && !strings.HasPrefix(r.URL, "rediss://") {
		bad(fRedis, "%s: want a redis:// or rediss:// URL", conn.Redact(r.URL))
		return
	}
	if _, err := r.Options(); err != nil {
		bad(fRedis, "%v", err)
	}
}

// validateTLS checks that the files load, naming the setting that holds
// the bad one.
func (c *Command) validateTLS(bad func(string, string, ...any), t conn.TLS, ca, cert, key string) {
	if (t.CertFile == "") != (t.KeyFile == "") {
		if t.CertFile == "" {
			bad(cert, "empty, but %s is set: give both or neither", c.name(key))
		} else {
			bad(key, "empty, but %s is set: give both or neither", c.name(cert))
		}
		return
	}
	if t.CAFile != "" {
		if _, err := (conn.TLS{CAFile: t.CAFile}).Config(); err != nil {
			bad(ca, "%v", err)
			return
		}
	}
	if t.CertFile != "" {
		if _, err := (conn.TLS{CertFile: t.CertFile, KeyFile: t.KeyFile}).Config(); err != nil {
			bad(cert, "%v", err)
		}
	}
}
