//go:build integration

package cassandra

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/heraldhq/herald/internal/stacktest"
	"github.com/heraldhq/herald/migrations"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/storetest"
)

// The integration tests share one keyspace per test binary run, named
// herald_test_<random>, migrated once and dropped by TestMain. The
// conformance suite keeps its ids unique per run, so subtests share it.
var shared struct {
	once  sync.Once
	ks    string
	err   error
	hosts []string
}

// testHosts are the integration stack's contact points (internal/stacktest:
// HERALD_CASSANDRA_HOSTS, else .stack/herald.env, else 127.0.0.1:9042).
func testHosts() []string { return stacktest.CassandraHosts() }

func TestMain(m *testing.M) {
	code := m.Run()
	if shared.ks != "" && shared.err == nil {
		if err := dropKeyspace(shared.ks); err != nil {
			fmt.Fprintf(os.Stderr, "drop keyspace %s: %v\n", shared.ks, err)
		}
	}
	os.Exit(code)
}

func adminSession() (*gocql.Session, error) {
	c := stacktest.CassandraCluster() // the stack's user, password and TLS
	c.Consistency = gocql.LocalQuorum
	c.Timeout = 30 * time.Second
	c.ConnectTimeout = 10 * time.Second
	return c.CreateSession()
}

func dropKeyspace(ks string) error {
	s, err := adminSession()
	if err != nil {
		return err
	}
	defer s.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return s.Query("DROP KEYSPACE IF EXISTS " + ks).ExecContext(ctx)
}

// keyspace returns the shared, migrated test keyspace. An unreachable
// Cassandra fails the test: the integration suite never skips.
func keyspace(t testing.TB) string {
	t.Helper()
	shared.once.Do(func() {
		shared.hosts = testHosts()
		var b [5]byte
		_, _ = rand.Read(b[:])
		ks := "herald_test_" + hex.EncodeToString(b[:])
		s, err := adminSession()
		if err != nil {
			shared.err = fmt.Errorf("Cassandra at %v is unreachable (%w): start it with `bash scripts/stack/stack.sh up` "+
				"or point HERALD_CASSANDRA_HOSTS (and its user, password, TLS) at one; settings: %s", shared.hosts, err, stacktest.Describe())
			return
		}
		defer s.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		shared.ks = ks
		shared.err = migrations.Apply(ctx, s, ks, quiet)
	})
	if shared.err != nil {
		t.Fatalf("integration keyspace: %v", shared.err)
	}
	return shared.ks
}

func testConfig(t testing.TB) Config {
	cs := stacktest.Cassandra()
	return Config{Hosts: cs.Hosts, Username: cs.User, Password: cs.Password, TLS: cs.TLSConfig(), LocalDC: cs.LocalDC,
		Keyspace: keyspace(t), Logger: quiet, Timeout: 20 * time.Second}
}

func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := Open(ctx, cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// TestConformance runs the suite with an approximate member count: the
// count is a Cassandra counter that a failed counter update leaves off
// (doc.go, "Subscriptions").
func TestConformance(t *testing.T) {
	storetest.RunWith(t, func(t *testing.T) store.Store { return openStore(t, testConfig(t)) },
		storetest.Options{ApproxMemberCount: true})
}

func BenchmarkStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) store.Store { return openStore(b, testConfig(b)) })
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func uniq(name string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return name + "-" + hex.EncodeToString(b[:])
}

func mkNotif(userID, eventID string) herald.Notification {
	at := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	return herald.Notification{
		ID: herald.NewID(at), EventID: eventID, Type: "mention", Priority: herald.PriorityNormal,
		Title: "t " + eventID, Body: "b", Data: []byte(`{"e":"` + eventID + `"}`), CreatedAt: at, UserID: userID,
	}
}

// checkDense asserts that the user's inbox is seqs 1..n with prev = seq-1
// and each event id exactly once.
func checkDense(t *testing.T, ctx context.Context, s *Store, u string, n int) []herald.Notification {
	t.Helper()
	l, err := s.List(ctx, u, 0, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != n {
		t.Fatalf("%s has %d notifications, want %d", u, len(l), n)
	}
	events := map[string]bool{}
	for i, x := range l {
		if x.Seq != uint64(i+1) || x.Prev != x.Seq-1 {
			t.Fatalf("%s: position %d has seq/prev %d/%d", u, i, x.Seq, x.Prev)
		}
		if events[x.EventID] {
			t.Fatalf("%s: event %s stored twice", u, x.EventID)
		}
		events[x.EventID] = true
	}
	last, err := s.LastSeq(ctx, u)
	if err != nil || last != uint64(n) {
		t.Fatalf("LastSeq(%s) = %d, %v; want %d", u, last, err, n)
	}
	return l
}

func TestOpenNotMigrated(t *testing.T) {
	cfg := testConfig(t)
	cfg.Keyspace = "herald_absent_" + strings.ReplaceAll(uniq("k"), "-", "_")
	_, err := Open(ctxFor(t), cfg)
	if !errors.Is(err, ErrNotMigrated) {
		t.Fatalf("Open on a missing keyspace = %v, want ErrNotMigrated", err)
	}
}

// TestLargeAppendIsSplit: one user's notifications beyond MaxBatch are
// committed in several parts, still dense and in input order.
func TestLargeAppendIsSplit(t *testing.T) {
	cfg := testConfig(t)
	cfg.MaxBatch = 7
	s := openStore(t, cfg)
	ctx := ctxFor(t)
	u := uniq("split")
	var batch []herald.Notification
	for i := range 30 {
		batch = append(batch, mkNotif(u, fmt.Sprintf("e%02d", i)))
	}
	batch = append(batch, mkNotif(u, "e03")) // a duplicate of an earlier part
	res, err := wr(t, s).Append(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if !res[i].Created || res[i].Notification.Seq != uint64(i+1) {
			t.Fatalf("result %d: created=%v seq %d", i, res[i].Created, res[i].Notification.Seq)
		}
	}
	if r := res[30]; r.Created || r.Notification.Seq != 4 {
		t.Fatalf("duplicate across parts: created=%v seq %d, want false 4", r.Created, r.Notification.Seq)
	}
	checkDense(t, ctx, s, u, 30)
	if n, _ := s.UnreadCount(ctx, u); n != 30 {
		t.Fatalf("UnreadCount = %d", n)
	}
}

// writers holds one Writer per Store of the test binary.
var writers sync.Map

// wr returns a Writer of s for a scope of its own, fencing it on first use.
func wr(t testing.TB, s *Store) store.Writer {
	t.Helper()
	if w, ok := writers.Load(s); ok {
		return w.(store.Writer)
	}
	w, err := s.Fence(ctxFor(t), uniq("test"))
	if err != nil {
		t.Fatalf("Fence: %v", err)
	}
	writers.Store(s, w)
	return w
}

// TestFencedWriterLateWrite: the zombie case. Writer 1 plans an append
// and its batch is held back (a paused process, a slow network) while
// writer 2, in another process, fences the scope and appends; then the
// held batch lands. It loses every cell writer 2 wrote, and what it leaves
// past last_seq is never read: the inbox is writer 2's, dense, each event
// once, and writer 2 goes on from there. Writer 1's next call is refused.
func TestFencedWriterLateWrite(t *testing.T) {
	ctx := ctxFor(t)
	s1, s2 := openStore(t, testConfig(t)), openStore(t, testConfig(t))
	scope, u := uniq("scope"), uniq("zombie")
	w1, err := s1.Fence(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w1.Append(ctx, []herald.Notification{mkNotif(u, "e1"), mkNotif(u, "e2"), mkNotif(u, "e3")}); err != nil {
		t.Fatal(err)
	}

	var held *gocql.Batch
	s1.execFn = func(ctx context.Context, b *gocql.Batch) error { held = b; return nil }
	res, err := w1.Append(ctx, []herald.Notification{mkNotif(u, "z4"), mkNotif(u, "z5")})
	if err != nil || len(res) != 2 || res[0].Notification.Seq != 4 || held == nil {
		t.Fatalf("zombie append (held back) = %+v, %v", res, err)
	}

	w2, err := s2.Fence(ctx, scope)
	if err != nil {
		t.Fatal(err)
	}
	if res, err := w2.Append(ctx, []herald.Notification{mkNotif(u, "e4")}); err != nil || res[0].Notification.Seq != 4 || !res[0].Created {
		t.Fatalf("new writer's append = %+v, %v; want e4 created at 4", res, err)
	}
	if err := held.ExecContext(ctx); err != nil { // the late arrival
		t.Fatal(err)
	}
	l := checkDense(t, ctx, s2, u, 4)
	if l[3].EventID != "e4" {
		t.Fatalf("seq 4 holds %s after the late write, want e4", l[3].EventID)
	}
	if n, _ := s2.UnreadCount(ctx, u); n != 4 {
		t.Fatalf("UnreadCount = %d, want 4", n)
	}
	if got, _ := s2.List(ctx, u, 3, 10, true); len(got) != 1 || got[0].EventID != "e4" {
		t.Fatalf("List(after=3, unreadOnly) = %+v", got)
	}

	// The zombie's event-index entries (z4 -> 4, z5 -> 5) are not trusted:
	// z5's points past last_seq, z4's at a seq holding another event.
	res, err = w2.Append(ctx, []herald.Notification{mkNotif(u, "z5"), mkNotif(u, "e6"), mkNotif(u, "z4")})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []uint64{5, 6, 7} {
		if !res[i].Created || res[i].Notification.Seq != want {
			t.Fatalf("result %d: created=%v seq %d, want created at %d", i, res[i].Created, res[i].Notification.Seq, want)
		}
	}
	checkDense(t, ctx, s2, u, 7)

	s1.execFn = execBatch
	if _, err := w1.Append(ctx, []herald.Notification{mkNotif(u, "z8")}); !errors.Is(err, store.ErrFenced) {
		t.Fatalf("fenced writer's Append = %v, want ErrFenced", err)
	}
	checkDense(t, ctx, s2, u, 7)
}

func counterValue(c prometheus.Counter) float64 {
	var m dto.Metric
	_ = c.Write(&m)
	return m.GetCounter().GetValue()
}

// lostAnswer makes the next commits report a timeout: before executing
// them (the commit did not happen) or after (it did).
type lostAnswer struct {
	mu            sync.Mutex
	before, after int
}

func (l *lostAnswer) install(s *Store) {
	real := s.commit
	s.commitFn = func(ctx context.Context, b *gocql.Batch) (bool, error) {
		l.mu.Lock()
		var skip, lose bool
		switch {
		case l.before > 0:
			l.before--
			skip = true
		case l.after > 0:
			l.after--
			lose = true
		}
		l.mu.Unlock()
		if skip {
			return false, gocql.ErrTimeoutNoResponse
		}
		applied, err := real(ctx, b)
		if lose && err == nil {
			return false, gocql.ErrTimeoutNoResponse
		}
		return applied, err
	}
}

// TestCommitOutcomeLost: a read-state commit whose answer is lost is
// settled by a serial read of the op id: an applied one is not applied
// again, an unapplied one is retried; the count stays exact.
func TestCommitOutcomeLost(t *testing.T) {
	s := openStore(t, testConfig(t))
	ctx := ctxFor(t)
	lost := &lostAnswer{}
	lost.install(s)
	unknown := func() float64 {
		return counterValue(s.m.casUnknown.WithLabelValues("mark_read")) + counterValue(s.m.casUnknown.WithLabelValues("mark_all_read"))
	}
	before := unknown()

	u := uniq("lost")
	if _, err := wr(t, s).Append(ctx, []herald.Notification{mkNotif(u, "a"), mkNotif(u, "b"), mkNotif(u, "c"), mkNotif(u, "d")}); err != nil {
		t.Fatal(err)
	}
	lost.after = 1 // applied, answer lost
	if n, err := s.MarkRead(ctx, u, []uint64{1, 2}); err != nil || n != 2 {
		t.Fatalf("MarkRead with a lost answer = %d, %v; want 2", n, err)
	}
	lost.before = 1 // not applied, answer lost
	if n, err := s.MarkRead(ctx, u, []uint64{3}); err != nil || n != 1 {
		t.Fatalf("MarkRead with a lost answer = %d, %v; want 1", n, err)
	}
	if got := unknown() - before; got != 2 {
		t.Fatalf("cas_unknown_total rose by %v, want 2", got)
	}
	if n, _ := s.UnreadCount(ctx, u); n != 1 {
		t.Fatalf("UnreadCount = %d, want 1", n)
	}

	// Too many lost answers in a row: the call fails, and a retry finds the
	// state consistent.
	lost.before = 10
	if _, err := s.MarkAllRead(ctx, u); err == nil {
		t.Fatal("MarkAllRead succeeded although every commit answer was lost")
	}
	lost.before = 0
	if n, err := s.MarkAllRead(ctx, u); err != nil || n != 0 {
		t.Fatalf("MarkAllRead = %d, %v", n, err)
	}
	if n, _ := s.UnreadCount(ctx, u); n != 0 {
		t.Fatalf("UnreadCount = %d, want 0", n)
	}
	checkDense(t, ctx, s, u, 4)
}

// TestRetention: notifications expire after Config.Retention; the per-user
// state does not, so seqs continue, and MarkAllRead clears the count of
// expired unread notifications.
func TestRetention(t *testing.T) {
	cfg := testConfig(t)
	cfg.Retention = 2 * time.Second
	s := openStore(t, cfg)
	ctx := ctxFor(t)
	u := uniq("ttl")
	if _, err := wr(t, s).Append(ctx, []herald.Notification{mkNotif(u, "old1"), mkNotif(u, "old2")}); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.Claim(ctx, u, "push-only", "tok"); err != nil || !ok {
		t.Fatalf("Claim = %v, %v", ok, err)
	}
	// The statics carry no TTL, the rows do.
	var (
		staticTTL, rowTTL *int
		kind              int8
	)
	if err := s.session.Query("SELECT kind, TTL(last_seq) FROM "+cfg.Keyspace+".inbox WHERE user_id = ? AND kind = 0 AND seq = 0 AND event_key = ''", u).
		ScanContext(ctx, &kind, &staticTTL); err != nil {
		t.Fatal(err)
	}
	if err := s.session.Query("SELECT TTL(body) FROM "+cfg.Keyspace+".inbox WHERE user_id = ? AND kind = 1 AND seq = 1 AND event_key = ''", u).
		ScanContext(ctx, &rowTTL); err != nil {
		t.Fatal(err)
	}
	if staticTTL != nil {
		t.Fatalf("TTL(last_seq) = %d, want none", *staticTTL)
	}
	if rowTTL == nil || *rowTTL < 1 || *rowTTL > 2 {
		t.Fatalf("TTL(body) = %v, want 1..2", rowTTL)
	}

	// Wait (bounded by ctx) for the rows to expire.
	for {
		l, err := s.List(ctx, u, 0, 0, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(l) == 0 {
			break
		}
		if !retry.Sleep(ctx, 250*time.Millisecond) {
			t.Fatalf("notifications did not expire: %v", ctx.Err())
		}
	}
	if last, _ := s.LastSeq(ctx, u); last != 2 {
		t.Fatalf("LastSeq after expiry = %d, want 2", last)
	}
	if n, _ := s.UnreadCount(ctx, u); n != 2 {
		t.Fatalf("UnreadCount after expiry = %d; the documented behaviour is to keep counting until MarkAllRead", n)
	}
	if l, _ := s.List(ctx, u, 0, 0, true); len(l) != 0 {
		t.Fatalf("List(unreadOnly) after expiry = %d", len(l))
	}
	// Replaying an expired event stores it again, after the old seqs.
	res, err := wr(t, s).Append(ctx, []herald.Notification{mkNotif(u, "old1"), mkNotif(u, "new")})
	if err != nil {
		t.Fatal(err)
	}
	for i, r := range res {
		if !r.Created || r.Notification.Seq != uint64(3+i) || r.Notification.Prev != uint64(2+i) {
			t.Fatalf("after expiry, result %d: created=%v seq/prev %d/%d", i, r.Created, r.Notification.Seq, r.Notification.Prev)
		}
	}
	if n, _ := s.MarkAllRead(ctx, u); n != 0 {
		t.Fatalf("MarkAllRead = %d", n)
	}
	if n, _ := s.UnreadCount(ctx, u); n != 0 {
		t.Fatalf("UnreadCount after MarkAllRead = %d", n)
	}
	// The claim expires too. It was written after the notifications, and
	// TTLs count in whole seconds, so it may outlive them by up to one: wait
	// for it (bounded by ctx). A refused Claim writes nothing.
	for {
		ok, err := s.Claim(ctx, u, "push-only", "another")
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			break
		}
		if !retry.Sleep(ctx, 250*time.Millisecond) {
			t.Fatalf("Claim after expiry still refused: %v; want a fresh claim", ctx.Err())
		}
	}
}

// TestListAcrossMarkAllRead: read flags combine the watermark and the
// markers; unread listing skips moot markers even under a small limit.
func TestListAcrossMarkAllRead(t *testing.T) {
	s := openStore(t, testConfig(t))
	ctx := ctxFor(t)
	u := uniq("watermark")
	var batch []herald.Notification
	for i := range 10 {
		batch = append(batch, mkNotif(u, fmt.Sprintf("a%d", i)))
	}
	if _, err := wr(t, s).Append(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if _, err := s.MarkAllRead(ctx, u); err != nil { // read_upto = 10; markers 1..10 moot
		t.Fatal(err)
	}
	batch = batch[:0]
	for i := range 4 {
		batch = append(batch, mkNotif(u, fmt.Sprintf("b%d", i)))
	}
	if _, err := wr(t, s).Append(ctx, batch); err != nil { // 11..14 unread
		t.Fatal(err)
	}
	if n, err := s.MarkRead(ctx, u, []uint64{3, 12}); err != nil || n != 3 { // 3 is already read
		t.Fatalf("MarkRead = %d, %v; want 3", n, err)
	}
	for _, c := range []struct {
		after uint64
		limit int
		want  []uint64
	}{
		{0, 2, []uint64{11, 13}},
		{0, 0, []uint64{11, 13, 14}},
		{5, 1, []uint64{11}},
		{11, 5, []uint64{13, 14}},
		{14, 5, nil},
	} {
		l, err := s.List(ctx, u, c.after, c.limit, true)
		if err != nil {
			t.Fatal(err)
		}
		var got []uint64
		for _, n := range l {
			got = append(got, n.Seq)
			if n.Read || n.Prev != n.Seq-1 || n.UserID != u {
				t.Fatalf("unread listing gave %+v", n)
			}
		}
		if !slices.Equal(got, c.want) {
			t.Fatalf("List(after=%d, limit=%d, unreadOnly) = %v, want %v", c.after, c.limit, got, c.want)
		}
	}
	all, err := s.List(ctx, u, 8, 5, false)
	if err != nil {
		t.Fatal(err)
	}
	wantRead := map[uint64]bool{9: true, 10: true, 11: false, 12: true, 13: false}
	if len(all) != 5 {
		t.Fatalf("List(after=8, limit=5) returned %d", len(all))
	}
	for _, n := range all {
		if n.Read != wantRead[n.Seq] {
			t.Fatalf("seq %d: Read=%v, want %v", n.Seq, n.Read, wantRead[n.Seq])
		}
	}
}

// BenchmarkAppendPoll is the shape of a full enricher poll: 1000
// notifications over 100 users in one Append.
func BenchmarkAppendPoll(b *testing.B) {
	s := openStore(b, testConfig(b))
	ctx := context.Background()
	users := make([]string, 100)
	for i := range users {
		users[i] = uniq(fmt.Sprintf("poll%d", i))
	}
	batch := make([]herald.Notification, 1000)
	n := 0
	b.ReportAllocs()
	for b.Loop() {
		for j := range batch {
			batch[j] = mkNotif(users[j%len(users)], fmt.Sprintf("e-%d", n))
			n++
		}
		if _, err := wr(b, s).Append(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "notifications/s")
}

// BenchmarkMarkRead measures one MarkRead of one unread seq (a Paxos round).
func BenchmarkMarkRead(b *testing.B) {
	s := openStore(b, testConfig(b))
	ctx := context.Background()
	u := uniq("markread")
	seq := uint64(0)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if seq%100 == 0 {
			var batch []herald.Notification
			for i := range 100 {
				batch = append(batch, mkNotif(u, fmt.Sprintf("m%d-%d", seq, i)))
			}
			if _, err := wr(b, s).Append(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		seq++
		b.StartTimer()
		if _, err := s.MarkRead(ctx, u, []uint64{seq}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestOpenAndMigrate creates, migrates and opens a keyspace of its own, and
// a second call on the migrated keyspace just opens it.
func TestOpenAndMigrate(t *testing.T) {
	keyspace(t) // fail early, with the clear message, if Cassandra is down
	cfg := testConfig(t)
	cfg.Keyspace = "herald_test_" + strings.ReplaceAll(uniq("oam"), "-", "_")
	t.Cleanup(func() {
		if err := dropKeyspace(cfg.Keyspace); err != nil {
			t.Logf("drop keyspace %s: %v", cfg.Keyspace, err)
		}
	})
	ctx := ctxFor(t)
	for i := range 2 {
		s, err := OpenAndMigrate(ctx, cfg)
		if err != nil {
			t.Fatalf("OpenAndMigrate #%d: %v", i+1, err)
		}
		if err := s.Ping(ctx); err != nil {
			t.Fatalf("Ping: %v", err)
		}
		u := uniq("u")
		if res, err := wr(t, s).Append(ctx, []herald.Notification{mkNotif(u, "e")}); err != nil || res[0].Notification.Seq != 1 {
			t.Fatalf("Append: %+v, %v", res, err)
		}
		_ = s.Close()
	}
}
