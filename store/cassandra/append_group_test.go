//go:build integration

package cassandra

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	herald "github.com/heraldhq/herald"
)

// batchUsers returns how many append requests s made and how many users
// they carried together.
func batchUsers(t *testing.T, s *Store) (requests uint64, users float64) {
	t.Helper()
	var m dto.Metric
	if err := s.m.batchUsers.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
}

// TestMurmur3TokenMatchesCassandra: the ring's token of a user id is the
// node's token(user_id), for ASCII and multi-byte ids of every tail length.
func TestMurmur3TokenMatchesCassandra(t *testing.T) {
	ctx := ctxFor(t)
	s := openStore(t, testConfig(t))
	var users []string
	for n := 1; n <= 40; n++ {
		users = append(users, strings.Repeat("u", n), strings.Repeat("é", n/2+1)+fmt.Sprint(n), "ü"+strings.Repeat("x", n))
	}
	var ns []herald.Notification
	for _, u := range users {
		ns = append(ns, mkNotif(u, "e1"))
	}
	appendOK(t, ctx, wr(t, s), ns...)
	for _, u := range users {
		var tok int64
		if err := s.session.Query(`SELECT token(user_id) FROM `+s.cfg.Keyspace+`.inbox WHERE user_id = ? LIMIT 1`, u).
			ScanContext(ctx, &tok); err != nil {
			t.Fatal(err)
		}
		if got := murmur3Token([]byte(u)); got != tok {
			t.Errorf("token of %q: %d, Cassandra says %d", u, got, tok)
		}
	}
}

// TestAppendGroupsUsers: one Append of many users writes them several per
// request (one node: one coordinator), at most GroupUsers and GroupBytes a
// request, a part over GroupBytes alone, and GroupUsers 1 one per request;
// every user's inbox is the same either way.
func TestAppendGroupsUsers(t *testing.T) {
	for _, tc := range []struct {
		name       string
		groupUsers int
		groupBytes int
		bodyBytes  int
		wantReqs   uint64
	}{
		{"default", 0, 0, 10, 12},                         // about 530 bytes a part: 9 in 5,000, 6 requests a round
		{"by-users", 0, 1 << 20, 10, 10},                  // 10 a request, 5 a round
		{"one-each", 1, 0, 10, 100},                       // grouping off
		{"by-bytes", 0, 0, 1500, 50},                      // about 2 KB a part: two in 5,000
		{"over-the-budget", 0, 0, DefaultGroupBytes, 100}, // each alone
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := ctxFor(t)
			cfg := testConfig(t)
			cfg.Registerer = prometheus.NewRegistry()
			cfg.GroupUsers, cfg.GroupBytes = tc.groupUsers, tc.groupBytes
			cfg.MaxBatch = 1 // each user's second notification is a second part, in a second round
			s := openStore(t, cfg)
			w, err := s.Fence(ctx, uniq("scope"))
			if err != nil {
				t.Fatal(err)
			}
			var ns []herald.Notification
			var users []string
			for i := range 50 {
				u := uniq(fmt.Sprintf("g%d", i))
				users = append(users, u)
				n := mkNotif(u, "e1")
				n.Body = strings.Repeat("b", tc.bodyBytes)
				ns = append(ns, n)
			}
			for i := range 50 {
				n := mkNotif(users[i], "e2")
				n.Body = strings.Repeat("b", tc.bodyBytes)
				ns = append(ns, n)
			}
			res := appendOK(t, ctx, w, ns...)
			for i := range ns {
				wantResult(t, res[i], true, uint64(1+i/50))
			}
			reqs, carried := batchUsers(t, s)
			if reqs != tc.wantReqs || carried != 100 {
				t.Fatalf("%d parts in %d requests, want 100 in %d", int(carried), reqs, tc.wantReqs)
			}
			for _, u := range users {
				checkDense(t, ctx, s, u, 2)
			}
		})
	}
}

// TestAppendGroupFailure: a request of several users that fails (its
// answer lost after it landed, or never sent) fails the Append; the replay
// returns the landed parts as stored and stores the rest, once; the users
// of the requests that succeeded keep their cached state, those of the
// failed one are loaded again.
func TestAppendGroupFailure(t *testing.T) {
	for _, landed := range []bool{true, false} {
		t.Run(fmt.Sprintf("landed=%v", landed), func(t *testing.T) {
			ctx := ctxFor(t)
			cfg := testConfig(t)
			cfg.Registerer = prometheus.NewRegistry()
			cfg.GroupBytes = 1 << 20 // two requests of 10 users
			s := openStore(t, cfg)
			w, err := s.Fence(ctx, uniq("scope"))
			if err != nil {
				t.Fatal(err)
			}
			var users []string
			var first []herald.Notification
			for i := range 20 {
				u := uniq(fmt.Sprintf("f%d", i))
				users = append(users, u)
				first = append(first, mkNotif(u, "e1"))
			}
			appendOK(t, ctx, w, first...) // loads the 20 users
			var mu sync.Mutex
			calls := 0
			other := make(chan struct{}) // the other request is answered
			s.execFn = func(ctx context.Context, b *gocql.Batch) error {
				mu.Lock()
				calls++
				n := calls
				mu.Unlock()
				if n != 1 {
					defer close(other)
					return b.ExecContext(ctx)
				}
				<-other // fail after it, which the failure would cancel
				if landed {
					if err := b.ExecContext(ctx); err != nil {
						return err
					}
				}
				return gocql.ErrTimeoutNoResponse
			}
			var second []herald.Notification
			for _, u := range users {
				second = append(second, mkNotif(u, "e2"))
			}
			if _, err := w.Append(ctx, second); err == nil {
				t.Fatal("Append with a failed request succeeded")
			}
			s.execFn = execBatch
			_, _, loadsBefore := cacheCounts(s)
			res := appendOK(t, ctx, w, append(second, mkNotif(users[0], "e3"))...)
			_, _, loadsAfter := cacheCounts(s)
			for i := range second {
				if res[i].Notification.Seq != 2 {
					t.Fatalf("%s: seq %d, want 2", users[i], res[i].Notification.Seq)
				}
			}
			wantResult(t, res[20], true, 3)
			if reloaded := loadsAfter - loadsBefore; reloaded != 10 {
				t.Fatalf("%v users loaded again, want the failed request's 10", reloaded)
			}
			for i, u := range users {
				want := 2
				if i == 0 {
					want = 3
				}
				checkDense(t, ctx, s, u, want)
			}
		})
	}
}
