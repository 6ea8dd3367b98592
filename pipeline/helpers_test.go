package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store/memory"
	"github.com/heraldhq/herald/topics"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// env is one test's Kafka cluster (kfake, in process) and store.
type env struct {
	tb    testing.TB
	ctx   context.Context
	addrs []string
	names topics.Names
	adm   *kadm.Client
	prod  *kgo.Client // plain (non-transactional) producer
	store *memory.Store
}

var quietLog = slog.New(slog.NewTextHandler(io.Discard, nil))

func newEnv(tb testing.TB) *env {
	tb.Helper()
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	// A generous failure guard, never an assertion on time.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)

	e := &env{tb: tb, ctx: ctx, addrs: c.ListenAddrs(), names: topics.WithPrefix(""), store: memory.New()}
	admCl, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(admCl.Close)
	e.adm = kadm.NewClient(admCl)
	if err := topics.Apply(ctx, e.adm, "", -1); err != nil {
		tb.Fatal(err)
	}
	e.prod, err = kgo.NewClient(kgo.SeedBrokers(e.addrs...), kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(0))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(e.prod.Close)
	return e
}

// partitionFor is the partition franz-go's default partitioner (and Java's)
// picks for key in a topic of n partitions.
func partitionFor(key string, n int) int32 {
	return int32(kgo.StickyKeyPartitioner(nil).ForTopic("").Partition(&kgo.Record{Key: []byte(key)}, n))
}

// produceEvents produces values keyed by user to herald.events, each to the
// partition its key hashes to, and returns the records with their offsets.
func (e *env) produce(topic string, key string, values ...[]byte) []*kgo.Record {
	e.tb.Helper()
	n := 12
	if topic != e.names.Events && topic != e.names.Deliveries {
		e.tb.Fatalf("produce: unexpected topic %s", topic)
	}
	rs := make([]*kgo.Record, len(values))
	for i, v := range values {
		rs[i] = &kgo.Record{Topic: topic, Key: []byte(key), Value: v, Partition: partitionFor(key, n)}
	}
	if err := e.prod.ProduceSync(e.ctx, rs...).FirstErr(); err != nil {
		e.tb.Fatal(err)
	}
	return rs
}

func eventJSON(id, user, typ string, extra ...string) []byte {
	m := map[string]any{"id": id, "user_id": user, "type": typ, "title": "t " + id}
	for i := 0; i+1 < len(extra); i += 2 {
		m[extra[i]] = extra[i+1]
	}
	b, _ := json.Marshal(m)
	return b
}

func (e *env) enricherConfig(txnID string) EnricherConfig {
	return EnricherConfig{
		Brokers:         e.addrs,
		TransactionalID: txnID,
		Store:           e.store,
		Logger:          quietLog,
		RetryBackoff:    20 * time.Millisecond,
		MaxRetryBackoff: 100 * time.Millisecond,
		ClientOptions:   []kgo.Opt{kgo.FetchMaxWait(200 * time.Millisecond)},
	}
}

// runner runs Run in a goroutine; wait returns its result.
type runner struct {
	done chan error
}

func start(tb testing.TB, ctx context.Context, run func(context.Context) error, closeFn func()) *runner {
	r := &runner{done: make(chan error, 1)}
	go func() { r.done <- run(ctx) }()
	tb.Cleanup(func() {
		closeFn()
		<-r.done
	})
	return r
}

func (r *runner) wait(tb testing.TB, ctx context.Context) error {
	tb.Helper()
	select {
	case err := <-r.done:
		r.done <- err // let Cleanup receive it too
		return err
	case <-ctx.Done():
		tb.Fatal("Run did not return")
		return nil
	}
}

func (e *env) startEnricher(cfg EnricherConfig) (*Enricher, *runner) {
	e.tb.Helper()
	en, err := NewEnricher(cfg)
	if err != nil {
		e.tb.Fatal(err)
	}
	return en, start(e.tb, e.ctx, en.Run, en.Close)
}

// waitCommitted polls until group has committed offsets at the end of every
// partition of topic (lag 0), i.e. every produced record was handled and
// its transaction committed.
func (e *env) waitCommitted(group, topic string) {
	e.tb.Helper()
	for {
		ends, err := e.adm.ListEndOffsets(e.ctx, topic)
		if err != nil {
			e.tb.Fatal(err)
		}
		committed, err := e.adm.FetchOffsets(e.ctx, group)
		if err == nil {
			// Metadata answered from a stale cache lists no partitions
			// (or errors): never take that for "caught up".
			done := len(ends[topic]) > 0
			ends.Each(func(o kadm.ListedOffset) {
				if o.Err != nil {
					done = false
					return
				}
				if o.Offset == 0 {
					return
				}
				c, ok := committed.Lookup(topic, o.Partition)
				if !ok || c.At < o.Offset {
					done = false
				}
			})
			if done {
				return
			}
		}
		select {
		case <-e.ctx.Done():
			e.tb.Fatalf("group %s never caught up on %s", group, topic)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

var sentinelSeq atomic.Int64

// readAll returns every committed record of topic, in partition then offset
// order. To know it has read everything without waiting on a clock, it
// appends a sentinel to each partition and reads until it has seen them
// all (a read_committed reader sees them only past every committed
// transaction before them).
func (e *env) readAll(topic string) []*kgo.Record {
	e.tb.Helper()
	details, err := e.adm.ListTopics(kadm.WithAuthorizedOps(e.ctx), topic) // uncached
	if err != nil {
		e.tb.Fatal(err)
	}
	id := strconv.FormatInt(sentinelSeq.Add(1), 10)
	var sentinels []*kgo.Record
	for p := range details[topic].Partitions {
		sentinels = append(sentinels, &kgo.Record{Topic: topic, Partition: p, Value: []byte("sentinel"),
			Headers: []kgo.RecordHeader{{Key: "test-sentinel", Value: []byte(id)}}})
	}
	if err := e.prod.ProduceSync(e.ctx, sentinels...).FirstErr(); err != nil {
		e.tb.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.addrs...), kgo.ConsumeTopics(topic),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(100*time.Millisecond))
	if err != nil {
		e.tb.Fatal(err)
	}
	defer cl.Close()
	byPart := map[int32][]*kgo.Record{}
	seen := 0
	for seen < len(sentinels) {
		fs := cl.PollFetches(e.ctx)
		if e.ctx.Err() != nil {
			e.tb.Fatalf("readAll %s: saw %d/%d sentinels", topic, seen, len(sentinels))
		}
		fs.EachRecord(func(r *kgo.Record) {
			if v, ok := header(r, "test-sentinel"); ok {
				if v == id {
					seen++
				}
				return
			}
			byPart[r.Partition] = append(byPart[r.Partition], r)
		})
	}
	var out []*kgo.Record
	for p := int32(0); p < int32(len(details[topic].Partitions)); p++ {
		out = append(out, byPart[p]...)
	}
	return out
}

func decodeNotification(tb testing.TB, r *kgo.Record) herald.Notification {
	tb.Helper()
	var n herald.Notification
	if err := json.Unmarshal(r.Value, &n); err != nil {
		tb.Fatalf("deliveries record at %d/%d: %v", r.Partition, r.Offset, err)
	}
	n.UserID = string(r.Key)
	return n
}

func mustHeader(tb testing.TB, r *kgo.Record, key string) string {
	tb.Helper()
	v, ok := header(r, key)
	if !ok {
		tb.Fatalf("record %s/%d/%d has no %s header: %v", r.Topic, r.Partition, r.Offset, key, r.Headers)
	}
	return v
}

func (e *env) list(user string) []herald.Notification {
	e.tb.Helper()
	ns, err := e.store.List(e.ctx, user, 0, 0, false)
	if err != nil {
		e.tb.Fatal(err)
	}
	return ns
}

func (e *env) setPrefs(user string, p herald.Preferences) {
	e.tb.Helper()
	if err := p.Validate(); err != nil {
		e.tb.Fatal(err)
	}
	if err := e.store.PutPreferences(e.ctx, user, p); err != nil {
		e.tb.Fatal(err)
	}
}

func eventIDs(ns []herald.Notification) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.EventID
	}
	return out
}

func fmtRecords(rs []*kgo.Record) string {
	s := ""
	for _, r := range rs {
		s += fmt.Sprintf("\n  %d/%d key=%s value=%.80s", r.Partition, r.Offset, r.Key, r.Value)
	}
	return s
}
