// Command probe checks whether the Herald integration stack (Kafka, Cassandra,
// Redis) is ready to serve clients. It is used by scripts/stack/stack.sh for
// its readiness waits and for `status`, and can be run on its own:
//
//	go run ./scripts/stack/probe -kafka 127.0.0.1:9092 -cassandra 127.0.0.1:9042 -redis 127.0.0.1:6379
//
// With -env FILE (the stack's .stack/herald.env) it connects through the
// secured settings written there: Kafka SASL_SSL, Cassandra password and
// TLS, Redis password and TLS (see internal/stacktest); the addresses
// still come from the flags. With -cassandra-admin FILE (a file holding
// the admin password) a failed login as the env file's Cassandra user
// bootstraps that role: the probe logs in as the superuser "cassandra"
// (with that password, or the default "cassandra" of a fresh node, which
// it then replaces by the file's), creates or re-passwords the user, and
// tries again.
//
// A component whose flag is empty is not checked. Each checked component gets
// one line on stdout, "NAME ready ADDR detail" or "NAME not-ready ADDR: reason".
// The exit code is 0 when every checked component is ready, 1 when at least
// one is not, and 2 on a usage error.
//
// Readiness means:
//   - kafka: a Metadata request answers with at least one broker and a known
//     controller (the KRaft broker has registered and is unfenced);
//   - cassandra: a CQL session can be opened (authenticated, over TLS when
//     configured) and SELECT release_version FROM system.local answers;
//   - redis: PING answers PONG (after AUTH, over TLS when configured).
//
// With -wait D the not-yet-ready components are retried every -interval until
// all are ready or D has passed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/internal/stacktest"
)

// settings are the connection settings of this run: the -env file's, or
// the unsecured defaults.
var settings stacktest.Settings

// adminPasswordFile is -cassandra-admin.
var adminPasswordFile string

type check struct {
	name string
	addr string
	fn   func(ctx context.Context, addr string) (string, error)

	ready  bool
	detail string
	err    error
}

// quietLog drops go-redis's internal log lines (dial retries and the like);
// the probe reports the outcome itself.
type quietLog struct{}

func (quietLog) Printf(context.Context, string, ...interface{}) {}

func main() {
	redis.SetLogger(quietLog{})
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is the probe; it returns the exit code. Failed writes to stdout or
// stderr are ignored: the exit code alone carries the result.
func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("probe", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kafkaAddr := fs.String("kafka", "", "Kafka bootstrap address host:port (empty: not checked)")
	cassAddr := fs.String("cassandra", "", "Cassandra native transport address host:port (empty: not checked)")
	redisAddr := fs.String("redis", "", "Redis address host:port (empty: not checked)")
	timeout := fs.Duration("timeout", 5*time.Second, "time limit of one attempt at one component")
	wait := fs.Duration("wait", 0, "keep retrying not-ready components for up to this long (0: one attempt)")
	interval := fs.Duration("interval", time.Second, "pause between attempts when -wait is set")
	quiet := fs.Bool("q", false, "print nothing; only the exit code tells")
	envFile := fs.String("env", "", "the stack's herald.env: connect with its TLS, SASL and passwords (empty: unsecured)")
	fs.StringVar(&adminPasswordFile, "cassandra-admin", "", "file with the Cassandra superuser's password: create the env file's user when its login fails")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "probe: unexpected arguments: %v\n", fs.Args())
		return 2
	}
	vars := map[string]string{}
	if *envFile != "" {
		var err error
		if vars, err = stacktest.ReadEnvFile(*envFile); err != nil {
			_, _ = fmt.Fprintf(stderr, "probe: -env: %v\n", err)
			return 2
		}
	}
	var err error
	if settings, err = stacktest.Parse(vars); err != nil {
		_, _ = fmt.Fprintf(stderr, "probe: -env %s: %v\n", *envFile, err)
		return 2
	}

	var checks []*check
	for _, c := range []*check{
		{name: "kafka", addr: *kafkaAddr, fn: checkKafka},
		{name: "cassandra", addr: *cassAddr, fn: checkCassandra},
		{name: "redis", addr: *redisAddr, fn: checkRedis},
	} {
		if c.addr == "" {
			continue
		}
		if _, _, err := net.SplitHostPort(c.addr); err != nil {
			_, _ = fmt.Fprintf(stderr, "probe: -%s %q: want host:port: %v\n", c.name, c.addr, err)
			return 2
		}
		checks = append(checks, c)
	}
	if len(checks) == 0 {
		_, _ = fmt.Fprintln(stderr, "probe: nothing to check: give at least one of -kafka, -cassandra, -redis")
		return 2
	}

	deadline := time.Now().Add(*wait)
	for {
		allReady := true
		for _, c := range checks {
			if c.ready {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), *timeout)
			c.detail, c.err = c.fn(ctx, c.addr)
			cancel()
			c.ready = c.err == nil
			allReady = allReady && c.ready
		}
		if allReady || !time.Now().Add(*interval).Before(deadline) {
			break
		}
		time.Sleep(*interval)
	}

	code := 0
	for _, c := range checks {
		if !c.ready {
			code = 1
		}
		if *quiet {
			continue
		}
		if c.ready {
			_, _ = fmt.Fprintf(stdout, "%-9s ready     %s %s\n", c.name, c.addr, c.detail)
		} else {
			_, _ = fmt.Fprintf(stdout, "%-9s not-ready %s: %v\n", c.name, c.addr, oneLine(c.err))
		}
	}
	return code
}

func checkKafka(ctx context.Context, addr string) (string, error) {
	k := settings.Kafka
	k.Brokers = []string{addr}
	opts, err := k.Opts()
	if err != nil {
		return "", err
	}
	cl, err := kgo.NewClient(append(opts,
		kgo.DialTimeout(2*time.Second),
		kgo.RequestRetries(0),
		kgo.MetadataMinAge(100*time.Millisecond),
	)...)
	if err != nil {
		return "", err
	}
	defer cl.Close()
	md, err := kadm.NewClient(cl).BrokerMetadata(ctx)
	if err != nil {
		return "", err
	}
	if len(md.Brokers) == 0 {
		return "", errors.New("metadata lists no broker yet")
	}
	if md.Controller < 0 {
		return "", errors.New("metadata names no controller yet")
	}
	detail := fmt.Sprintf("cluster=%s brokers=%d controller=%d", md.Cluster, len(md.Brokers), md.Controller)
	if k.SASL != "" {
		detail += " sasl=" + k.SASL + " user=" + k.User
	}
	if k.TLS.On() {
		detail += " tls"
	}
	return detail, nil
}

func checkCassandra(ctx context.Context, addr string) (string, error) {
	host, portStr, _ := net.SplitHostPort(addr)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", fmt.Errorf("bad port %q", portStr)
	}
	cs := settings.Cassandra
	session, err := cassandraSession(ctx, cs, host, port)
	if err != nil && cs.User != "" && adminPasswordFile != "" && errors.Is(err, errAuth) {
		if berr := bootstrapRole(ctx, cs, host, port); berr != nil {
			return "", fmt.Errorf("%w; creating role %q: %w", err, cs.User, berr)
		}
		session, err = cassandraSession(ctx, cs, host, port)
	}
	if err != nil {
		return "", err
	}
	defer session.Close()
	var version string
	if err := session.Query("SELECT release_version FROM system.local").ScanContext(ctx, &version); err != nil {
		return "", err
	}
	detail := "release_version=" + version
	if cs.User != "" {
		detail += " user=" + cs.User
	}
	if cs.TLS.On() {
		detail += " tls"
	}
	return detail, nil
}

// errAuth marks a session that failed on its credentials.
var errAuth = errors.New("authentication failed")

func cassandraSession(ctx context.Context, cs stacktest.CassandraSettings, host string, port int) (*gocql.Session, error) {
	limit := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		limit = time.Until(d)
	}
	cluster := cs.Cluster(host)
	cluster.Port = port
	cluster.ConnectTimeout = limit
	cluster.Timeout = limit
	cluster.NumConns = 1
	cluster.DisableInitialHostLookup = true
	cluster.Consistency = gocql.One
	// No reconnection storms from a one-shot probe.
	cluster.ReconnectionPolicy = &gocql.ConstantReconnectionPolicy{MaxRetries: 1, Interval: time.Second}
	session, err := cluster.CreateSession()
	if err != nil {
		if msg := strings.ToLower(err.Error()); strings.Contains(msg, "authentic") || strings.Contains(msg, "password") ||
			strings.Contains(msg, "credentials") {
			return nil, fmt.Errorf("%w: %w", errAuth, err)
		}
		return nil, err
	}
	return session, nil
}

// bootstrapRole logs in as the superuser "cassandra" (with the admin
// password, else the default one of a fresh node, which it then replaces)
// and creates cs.User with cs.Password, or resets its password.
func bootstrapRole(ctx context.Context, cs stacktest.CassandraSettings, host string, port int) error {
	raw, err := os.ReadFile(adminPasswordFile)
	if err != nil {
		return fmt.Errorf("admin password: %w", err)
	}
	adminPassword := strings.TrimSpace(string(raw))
	if adminPassword == "" {
		return fmt.Errorf("admin password file %s is empty", adminPasswordFile)
	}
	admin := cs
	admin.User, admin.Password = "cassandra", adminPassword
	session, err := cassandraSession(ctx, admin, host, port)
	fresh := false
	if err != nil {
		admin.Password = "cassandra" // a fresh node's default superuser
		var derr error
		if session, derr = cassandraSession(ctx, admin, host, port); derr != nil {
			return fmt.Errorf("as the superuser cassandra: %w", err)
		}
		fresh = true
	}
	defer session.Close()
	// Role statements take no bind markers: literals, quoted.
	stmts := []string{
		"CREATE ROLE IF NOT EXISTS " + cqlString(cs.User) + " WITH PASSWORD = " + cqlString(cs.Password) + " AND LOGIN = true",
		"ALTER ROLE " + cqlString(cs.User) + " WITH PASSWORD = " + cqlString(cs.Password) + " AND LOGIN = true",
	}
	if fresh {
		// Retire the well-known default password.
		stmts = append(stmts, "ALTER ROLE cassandra WITH PASSWORD = "+cqlString(adminPassword))
	}
	for _, stmt := range stmts {
		if err := session.Query(stmt).Consistency(gocql.Quorum).ExecContext(ctx); err != nil {
			// The statement holds a password: report only its verb.
			return fmt.Errorf("%s: %w", strings.Join(strings.Fields(stmt)[:2], " "), err)
		}
	}
	return nil
}

// cqlString quotes s as a CQL string literal.
func cqlString(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func checkRedis(ctx context.Context, addr string) (string, error) {
	opt, err := settings.Redis.Options()
	if err != nil {
		return "", err
	}
	opt.Addr = addr
	if opt.TLSConfig != nil && opt.TLSConfig.ServerName == "" {
		opt.TLSConfig.ServerName, _, _ = net.SplitHostPort(addr)
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout = 2*time.Second, 2*time.Second, 2*time.Second
	opt.MaxRetries = -1
	opt.PoolSize = 1
	// Redis 7.0 does not know CLIENT SETINFO: skip the client-side noise.
	opt.DisableIdentity = true
	rdb := redis.NewClient(opt)
	defer func() { _ = rdb.Close() }() // a one-shot probe: nothing to report on close
	pong, err := rdb.Ping(ctx).Result()
	if err != nil {
		return "", err
	}
	if pong != "PONG" {
		return "", fmt.Errorf("PING answered %q", pong)
	}
	detail := ""
	if info, err := rdb.Info(ctx, "server").Result(); err == nil {
		for _, line := range strings.Split(info, "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "redis_version:"); ok {
				detail = "redis_version=" + v
			}
		}
	}
	if opt.Password != "" {
		detail += " auth"
	}
	if opt.TLSConfig != nil {
		detail += " tls"
	}
	return detail, nil
}

func oneLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}
