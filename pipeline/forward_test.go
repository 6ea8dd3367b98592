package pipeline

import (
	"strconv"
	"testing"
	"time"

	"github.com/heraldhq/herald/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestUserPartitionMatchesProducers: the partition forwards go to is the
// one Herald's producers (franz-go's default partitioner, Java's murmur2)
// give the user id.
func TestUserPartitionMatchesProducers(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"u1", "ada", "user:42", "x"} {
		for _, n := range []int{1, 3, 12, 64} {
			if got, want := userPartition(u, n), partitionFor(u, n); got != want {
				t.Errorf("userPartition(%q, %d) = %d, want %d", u, n, got, want)
			}
		}
	}
}

// TestDecodeStageForwardsMisrouted: a valid event read outside its user's
// partition is not processed there but forwarded, keyed by the user id,
// with where it came from.
func TestDecodeStageForwardsMisrouted(t *testing.T) {
	t.Parallel()
	names := topics.WithPrefix("")
	en := &Enricher{codec: NewCodec(names), counts: &partitionCounts{n: map[string]int{names.Events: 12}}}
	home := partitionFor("u1", 12)
	wrong := (home + 1) % 12
	recs := []*kgo.Record{
		{Topic: names.Events, Partition: home, Offset: 7, Key: []byte("u1"), Value: eventJSON("a", "u1", "t")},
		{Topic: names.Events, Partition: wrong, Offset: 9, Key: []byte("not-the-user"), Value: eventJSON("b", "u1", "t"),
			Headers: []kgo.RecordHeader{{Key: "trace-id", Value: []byte("abc")}}},
	}
	b := &batch{e: en, now: time.Now(), recs: recs, byID: map[string]*userBatch{}}
	if err := b.decode(t.Context()); err != nil {
		t.Fatal(err)
	}
	if len(b.entries) != 1 || b.entries[0].ev.ID != "a" {
		t.Fatalf("entries = %d, want only the event in its user's partition", len(b.entries))
	}
	if len(b.out) != 1 || b.st.forwarded != 1 {
		t.Fatalf("out = %d, forwarded = %d, want 1 forward", len(b.out), b.st.forwarded)
	}
	f := b.out[0]
	if f.Topic != names.Events || string(f.Key) != "u1" || string(f.Value) != string(recs[1].Value) {
		t.Fatalf("forward = %s key %q value %s", f.Topic, f.Key, f.Value)
	}
	if got := mustHeader(t, f, HeaderForwardedFrom); got != names.Events+"/"+strconv.Itoa(int(wrong))+"/9" {
		t.Fatalf("%s = %q", HeaderForwardedFrom, got)
	}
	if got, _ := header(f, "trace-id"); got != "abc" {
		t.Fatalf("original header lost: %v", f.Headers)
	}
}

// TestEnricherForwardsMisroutedEvents: through Kafka, an event produced to
// the wrong partition reaches its user's inbox once, after the events of
// the right partition produced before its forward. (The inbox's dedup by
// event id is what keeps a replayed forward from doubling it.)
func TestEnricherForwardsMisroutedEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ev := e.names.Events
	home := partitionFor("u1", 12)
	wrong := &kgo.Record{Topic: ev, Key: []byte("u1"), Value: eventJSON("misrouted", "u1", "mention"), Partition: (home + 5) % 12}
	if err := e.prod.ProduceSync(e.ctx, wrong).FirstErr(); err != nil {
		t.Fatal(err)
	}
	e.produce(ev, "u1", eventJSON("r1", "u1", "mention"), eventJSON("r2", "u1", "mention"))
	cfg := e.enricherConfig("txn-forward")
	e.startEnricher(cfg)
	// (Not waitCommitted: the forward is a transactional record, whose
	// commit marker keeps the end offset one past what a consumer commits.)
	e.eventually("three notifications for u1", func() bool { return len(e.list("u1")) >= 3 })
	l := e.list("u1")
	if len(l) != 3 {
		t.Fatalf("u1 has %d notifications, want 3", len(l))
	}
	seen := map[string]int{}
	for i, n := range l {
		seen[n.EventID]++
		if n.Seq != uint64(i+1) {
			t.Fatalf("seq %d at %d", n.Seq, i)
		}
	}
	if seen["misrouted"] != 1 || seen["r1"] != 1 || seen["r2"] != 1 {
		t.Fatalf("stored events %v", seen)
	}
	forwards := 0
	for _, r := range e.readAll(ev) {
		if _, ok := header(r, HeaderForwardedFrom); ok {
			forwards++
			if r.Partition != home {
				t.Fatalf("forward landed in partition %d, want %d", r.Partition, home)
			}
		}
	}
	if forwards != 1 {
		t.Fatalf("%d forwards in %s, want 1", forwards, ev)
	}
}
