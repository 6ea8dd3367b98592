// Package conn turns Herald's connection settings for its dependencies
// (Kafka, Cassandra, Redis) into the options of their client libraries:
// TLS with a custom CA and client certificates, Kafka SASL (PLAIN,
// SCRAM-SHA-256, SCRAM-SHA-512), Cassandra password authentication and
// local datacenter, Redis passwords and rediss://. The roles and the
// integration tests build their clients through it, so both connect the
// same way.
//
// Secrets (passwords, keys) are held in fields that String and LogValue
// never print.
package conn

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// TLS configures an encrypted connection. The zero value means no TLS.
type TLS struct {
	// Enabled turns TLS on. Setting any file below implies it.
	Enabled bool
	// CAFile is a PEM bundle of the CAs that sign the server's certificate;
	// "" means the system roots.
	CAFile string
	// CertFile and KeyFile are the client certificate and key (PEM) for
	// servers that require client authentication; both or neither.
	CertFile, KeyFile string
	// ServerName overrides the name checked against the server's
	// certificate; "" means the host dialled.
	ServerName string
}

// On reports whether TLS is in use.
func (t TLS) On() bool {
	return t.Enabled || t.CAFile != "" || t.CertFile != "" || t.KeyFile != ""
}

// Config returns the *tls.Config, or nil when TLS is off. Certificates are
// always verified; there is no switch to skip that.
func (t TLS) Config() (*tls.Config, error) {
	if !t.On() {
		return nil, nil
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("TLS CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("TLS CA file %s: no PEM certificate in it", t.CAFile)
		}
		c.RootCAs = pool
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		return nil, errors.New("TLS client certificate: give both the certificate and the key file, or neither")
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("TLS client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}

// SASL mechanisms for Kafka.
const (
	SASLPlain       = "PLAIN"
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
)

// Kafka is how to reach and authenticate to the Kafka cluster.
type Kafka struct {
	// Brokers are the seed brokers, host:port. Required.
	Brokers []string
	// TLS of the broker connections.
	TLS TLS
	// SASL is the mechanism: "" (none), PLAIN, SCRAM-SHA-256 or
	// SCRAM-SHA-512 (case-insensitive).
	SASL string
	// User and Password are the SASL credentials.
	User, Password string
}

// Validate checks the settings without reading files.
func (k Kafka) Validate() error {
	if len(k.Brokers) == 0 {
		return errors.New("kafka: no brokers")
	}
	switch strings.ToUpper(k.SASL) {
	case "":
		if k.User != "" || k.Password != "" {
			return errors.New("kafka: a user or password is set but no SASL mechanism")
		}
	case SASLPlain, SASLScramSHA256, SASLScramSHA512:
		if k.User == "" || k.Password == "" {
			return fmt.Errorf("kafka: SASL %s needs a user and a password", strings.ToUpper(k.SASL))
		}
	default:
		return fmt.Errorf("kafka: unknown SASL mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.SASL)
	}
	return nil
}

// Opts returns the franz-go options for these settings: seed brokers, TLS
// and SASL.
func (k Kafka) Opts() ([]kgo.Opt, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(k.Brokers...)}
	tc, err := k.TLS.Config()
	if err != nil {
		return nil, fmt.Errorf("kafka: %w", err)
	}
	if tc != nil {
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if m := k.mechanism(); m != nil {
		opts = append(opts, kgo.SASL(m))
	}
	return opts, nil
}

func (k Kafka) mechanism() sasl.Mechanism {
	switch strings.ToUpper(k.SASL) {
	case SASLPlain:
		return plain.Auth{User: k.User, Pass: k.Password}.AsMechanism()
	case SASLScramSHA256:
		return scram.Auth{User: k.User, Pass: k.Password}.AsSha256Mechanism()
	case SASLScramSHA512:
		return scram.Auth{User: k.User, Pass: k.Password}.AsSha512Mechanism()
	}
	return nil
}

// LogValue describes the settings without the password.
func (k Kafka) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("brokers", k.Brokers), slog.Bool("tls", k.TLS.On()),
		slog.String("sasl", k.SASL), slog.String("user", k.User),
	)
}

// Redis is how to reach and authenticate to Redis.
type Redis struct {
	// URL is redis://[[user]:password@]host:port[/db] or rediss://… for TLS.
	// It may hold a password: it is never logged (see LogValue).
	URL string
	// Password, when set, wins over the URL's.
	Password string
	// TLS adds a CA or client certificate to rediss://, or turns TLS on for
	// a redis:// URL.
	TLS TLS
}

// Options returns the go-redis options, with ContextTimeoutEnabled so that
// a call's context bounds a stalled read.
func (r Redis) Options() (*redis.Options, error) {
	if r.URL == "" {
		return nil, errors.New("redis: no URL")
	}
	opt, err := redis.ParseURL(r.URL)
	if err != nil {
		// ParseURL's errors can quote the URL, password included.
		return nil, fmt.Errorf("redis: malformed URL %s", Redact(r.URL))
	}
	opt.ContextTimeoutEnabled = true
	if r.Password != "" {
		opt.Password = r.Password
	}
	if r.TLS.On() {
		tc, err := r.TLS.Config()
		if err != nil {
			return nil, fmt.Errorf("redis: %w", err)
		}
		if tc.ServerName == "" && opt.TLSConfig != nil {
			tc.ServerName = opt.TLSConfig.ServerName
		}
		if tc.ServerName == "" {
			tc.ServerName = hostOnly(opt.Addr)
		}
		opt.TLSConfig = tc
	}
	return opt, nil
}

// Client returns a new client for these settings; the caller closes it.
func (r Redis) Client() (*redis.Client, error) {
	opt, err := r.Options()
	if err != nil {
		return nil, err
	}
	return redis.NewClient(opt), nil
}

// LogValue describes the settings without the password.
func (r Redis) LogValue() slog.Value {
	return slog.GroupValue(slog.String("url", Redact(r.URL)), slog.Bool("tls", r.TLS.On() || strings.HasPrefix(r.URL, "rediss:")))
}

// Redact returns a URL with its password replaced by "xxxxx".
func Redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "<unparsable URL>"
	}
	return u.Redacted()
}

func hostOnly(addr string) string {
	if i := strings.LastIndex(addr, ":"); i >= 0 {
		return strings.Trim(addr[:i], "[]")
	}
	return addr
}
