// Command cleanup drops what one benchmark run created on the stack: its
// Cassandra keyspace and its Kafka topics (every topic under its prefix).
// Without it a series of runs leaves the one broker and the one node with
// ever more partitions and tables (about 75 partitions and 25 tables a
// run; 2,246 partition directories after a session of 40 runs), whose
// background work slows the later runs of the series, so that figures
// drift with the run's position. Used by scripts/bench/e2e.sh after each
// run:
//
//	go run ./scripts/bench/cleanup -keyspace herald_bench_17_3 -topic-prefix bench17r3.
//
// It reaches the stack through internal/stacktest (the HERALD_*
// environment, else .stack/herald.env) and refuses names that are not a
// benchmark's (a keyspace herald_bench_*, a prefix bench*.), so that a slip
// cannot drop real data. Exit 1 when something could not be dropped.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/internal/stacktest"
)

var (
	benchKeyspace = regexp.MustCompile(`^herald_bench_[a-z0-9_]{1,32}$`)
	benchPrefix   = regexp.MustCompile(`^bench[a-z0-9]{1,40}\.$`)
)

func main() { os.Exit(run()) }

func run() int {
	keyspace := flag.String("keyspace", "", "the run's Cassandra keyspace (herald_bench_*)")
	prefix := flag.String("topic-prefix", "", "the run's topic prefix (bench*.)")
	timeout := flag.Duration("timeout", 2*time.Minute, "bound on the whole cleanup")
	flag.Parse()
	if err := validate(*keyspace, *prefix); err != nil {
		fmt.Fprintln(os.Stderr, "cleanup:", err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	code := 0
	if *prefix != "" {
		n, err := dropTopics(ctx, *prefix)
		if err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: topics under %s: %v\n", *prefix, err)
			code = 1
		} else {
			fmt.Printf("cleanup: deleted %d topics under %s\n", n, *prefix)
		}
	}
	if *keyspace != "" {
		if err := dropKeyspace(ctx, *keyspace); err != nil {
			fmt.Fprintf(os.Stderr, "cleanup: keyspace %s: %v\n", *keyspace, err)
			code = 1
		} else {
			fmt.Printf("cleanup: dropped keyspace %s\n", *keyspace)
		}
	}
	return code
}

// validate accepts only a benchmark's names, and at least one of them.
func validate(keyspace, prefix string) error {
	switch {
	case keyspace == "" && prefix == "":
		return fmt.Errorf("give -keyspace, -topic-prefix or both")
	case keyspace != "" && !benchKeyspace.MatchString(keyspace):
		return fmt.Errorf("-keyspace %q is not a benchmark's (herald_bench_*)", keyspace)
	case prefix != "" && !benchPrefix.MatchString(prefix):
		return fmt.Errorf("-topic-prefix %q is not a benchmark's (bench*.)", prefix)
	}
	return nil
}

func dropTopics(ctx context.Context, prefix string) (int, error) {
	cl, err := kgo.NewClient(stacktest.KafkaOpts()...)
	if err != nil {
		return 0, err
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	all, err := adm.ListTopics(ctx)
	if err != nil {
		return 0, err
	}
	var names []string
	for _, t := range all.Names() {
		if strings.HasPrefix(t, prefix) {
			names = append(names, t)
		}
	}
	if len(names) == 0 {
		return 0, nil
	}
	res, err := adm.DeleteTopics(ctx, names...)
	if err != nil {
		return 0, err
	}
	if err := res.Error(); err != nil {
		return 0, err
	}
	return len(names), nil
}

func dropKeyspace(ctx context.Context, keyspace string) error {
	c := stacktest.CassandraCluster()
	c.Timeout = time.Minute
	s, err := c.CreateSession()
	if err != nil {
		return err
	}
	defer s.Close()
	// The name matched benchKeyspace: safe to put in the statement.
	return s.Query("DROP KEYSPACE IF EXISTS " + keyspace).ExecContext(ctx)
}
