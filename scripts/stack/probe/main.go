// Command probe checks whether the Herald integration stack (Kafka, Cassandra,
// Redis) is ready to serve clients. It is used by scripts/stack/stack.sh for
// its readiness waits and for `status`, and can be run on its own:
//
//	go run ./scripts/stack/probe -kafka 127.0.0.1:9092 -cassandra 127.0.0.1:9042 -redis 127.0.0.1:6379
//
// A component whose flag is empty is not checked. Each checked component gets
// one line on stdout, "NAME ready ADDR detail" or "NAME not-ready ADDR: reason".
// The exit code is 0 when every checked component is ready, 1 when at least
// one is not, and 2 on a usage error.
//
// Readiness means:
//   - kafka: a Metadata request answers with at least one broker and a known
//     controller (the KRaft broker has registered and is unfenced);
//   - cassandra: a CQL session can be opened and
//     SELECT release_version FROM system.local answers;
//   - redis: PING answers PONG.
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
)

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
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		_, _ = fmt.Fprintf(stderr, "probe: unexpected arguments: %v\n", fs.Args())
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
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(addr),
		kgo.DialTimeout(2*time.Second),
		kgo.RequestRetries(0),
		kgo.MetadataMinAge(100*time.Millisecond),
	)
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
	return fmt.Sprintf("cluster=%s brokers=%d controller=%d", md.Cluster, len(md.Brokers), md.Controller), nil
}

func checkCassandra(ctx context.Context, addr string) (string, error) {
	host, portStr, _ := net.SplitHostPort(addr)
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return "", fmt.Errorf("bad port %q", portStr)
	}
	limit := 5 * time.Second
	if d, ok := ctx.Deadline(); ok {
		limit = time.Until(d)
	}
	cluster := gocql.NewCluster(host)
	cluster.Port = port
	cluster.ConnectTimeout = limit
	cluster.Timeout = limit
	cluster.NumConns = 1
	cluster.DisableInitialHostLookup = true
	cluster.Consistency = gocql.One
	session, err := cluster.CreateSession()
	if err != nil {
		return "", err
	}
	defer session.Close()
	var version string
	if err := session.Query("SELECT release_version FROM system.local").ScanContext(ctx, &version); err != nil {
		return "", err
	}
	return "release_version=" + version, nil
}

func checkRedis(ctx context.Context, addr string) (string, error) {
	rdb := redis.NewClient(&redis.Options{
		Addr:         addr,
		DialTimeout:  2 * time.Second,
		ReadTimeout:  2 * time.Second,
		WriteTimeout: 2 * time.Second,
		MaxRetries:   -1,
		PoolSize:     1,
		// The stack runs a plain RESP2/RESP3 server; skip the client-side
		// CLIENT SETINFO noise on servers that do not know it.
		DisableIdentity: true,
	})
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
	return detail, nil
}

func oneLine(err error) string {
	if err == nil {
		return ""
	}
	return strings.Join(strings.Fields(err.Error()), " ")
}
