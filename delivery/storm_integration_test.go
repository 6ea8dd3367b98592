//go:build integration

package delivery

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/stacktest"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/cassandra"
)

// BenchmarkReconnectStormCassandra is BenchmarkReconnectStorm with the
// integration stack's Cassandra as the inbox (a fresh keyspace, dropped
// afterwards), so replays cost real reads. Same STORM_* variables. Run:
//
//	set -a && . .stack/herald.env && set +a && \
//	  go test -tags integration -run '^$' -bench ReconnectStormCassandra -benchtime 1x ./delivery/
func BenchmarkReconnectStormCassandra(b *testing.B) {
	if os.Getenv("STORM_GATEWAYS") != "" {
		b.Skip("STORM_GATEWAYS: external gateways have their own store; run BenchmarkReconnectStorm")
	}
	cs := stacktest.Cassandra()
	ks := "herald_storm_" + strings.ToLower(strings.ReplaceAll(herald.NewID(time.Now()), "-", "_"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st, err := cassandra.OpenAndMigrate(ctx, cassandra.Config{
		Hosts: cs.Hosts, Username: cs.User, Password: cs.Password, TLS: cs.TLSConfig(), LocalDC: cs.LocalDC,
		Keyspace: ks, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Timeout: 20 * time.Second,
	})
	if err != nil {
		b.Fatalf("cassandra (%s): %v", stacktest.Describe(), err)
	}
	b.Cleanup(func() {
		_ = st.Close()
		c := stacktest.CassandraCluster()
		c.Consistency = gocql.LocalQuorum
		c.Timeout = time.Minute
		s, err := c.CreateSession()
		if err != nil {
			b.Logf("drop keyspace %s: %v", ks, err)
			return
		}
		defer s.Close()
		if err := s.Query("DROP KEYSPACE IF EXISTS " + ks).Exec(); err != nil {
			b.Logf("drop keyspace %s: %v", ks, err)
		}
	})
	for range b.N {
		runStorm(b, func(store.Inbox) store.Inbox { return st })
	}
}
