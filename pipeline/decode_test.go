package pipeline

import (
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// badProducerEvents are herald.events values a Kafka producer (not the
// API, which re-encodes) may write, and the reason each is dead-lettered
// with: the decoder checks the raw bytes, because encoding/json would
// repair invalid UTF-8 and keep the last of duplicate keys.
var badProducerEvents = []struct {
	name, value, reason string
}{
	{"invalid UTF-8 in title", "{\"id\":\"b1\",\"user_id\":\"u1\",\"type\":\"t\",\"title\":\"caf\xe9\"}", "title: must be valid UTF-8"},
	{"invalid UTF-8 in a data key", "{\"id\":\"b2\",\"user_id\":\"u1\",\"type\":\"t\",\"data\":{\"\xff\":1}}", "data: must be valid UTF-8"},
	{"invalid UTF-8 in a data value", "{\"id\":\"b3\",\"user_id\":\"u1\",\"type\":\"t\",\"data\":{\"k\":[\"\xc3\"]}}", "data: must be valid UTF-8"},
	{"invalid UTF-8 in a top-level key", "{\"id\":\"b4\",\"user_id\":\"u1\",\"type\":\"t\",\"x\xff\":1}", "a key is not valid UTF-8"},
	{"duplicate user_id", `{"id":"b5","user_id":"u1","type":"t","user_id":"u2"}`, "user_id: appears more than once"},
	{"duplicate user_id, other case", `{"id":"b6","user_id":"u1","type":"t","User_ID":"u2"}`, "user_id: appears more than once"},
	{"data too deep", `{"id":"b7","user_id":"u1","type":"t","data":{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`, "data: nests objects and arrays more than the 32 levels"},
	{"ttl as a string", `{"id":"b8","user_id":"u1","type":"t","ttl":"10"}`, "ttl: must be a non-negative whole number"},
	{"ttl of 300 years", `{"id":"b9","user_id":"u1","type":"t","ttl":9467280000}`, "ttl: is 9467280000 seconds, more than the 31536000 allowed"},
}

// TestDecodeStageRejects runs the decode stage alone: each bad record
// becomes a herald.events.dlq record with the reason, the good one an
// entry.
func TestDecodeStageRejects(t *testing.T) {
	t.Parallel()
	names := topics.WithPrefix("")
	en := &Enricher{codec: NewCodec(names), counts: &partitionCounts{n: map[string]int{names.Events: 1}}}
	var recs []*kgo.Record
	for i, c := range badProducerEvents {
		recs = append(recs, &kgo.Record{Topic: names.Events, Key: []byte("u1"), Value: []byte(c.value), Offset: int64(i)})
	}
	recs = append(recs, &kgo.Record{Topic: names.Events, Key: []byte("u1"), Value: eventJSON("ok", "u1", "t"), Offset: int64(len(recs))})
	b := &batch{e: en, now: time.Now(), recs: recs, byID: map[string]*userBatch{}}
	if err := b.decode(t.Context()); err != nil {
		t.Fatal(err)
	}

	if len(b.entries) != 1 || b.entries[0].ev.ID != "ok" {
		t.Fatalf("entries = %d, want only the valid event", len(b.entries))
	}
	if len(b.out) != len(badProducerEvents) || b.st.rejected != len(badProducerEvents) {
		t.Fatalf("out = %d, rejected = %d, want %d of each", len(b.out), b.st.rejected, len(badProducerEvents))
	}
	for i, c := range badProducerEvents {
		r := b.out[i]
		if r.Topic != names.EventsDLQ || string(r.Value) != c.value {
			t.Errorf("%s: record to %s with value %q, want the value as received on %s", c.name, r.Topic, r.Value, names.EventsDLQ)
		}
		if got := mustHeader(t, r, HeaderError); !strings.Contains(got, c.reason) {
			t.Errorf("%s: %s = %q, want it to contain %q", c.name, HeaderError, got, c.reason)
		}
	}
}

// TestEnricherDeadLettersBadProducerEvents is the same through Kafka: the
// inbox gets only the valid event, the DLQ the rest with their reasons.
func TestEnricherDeadLettersBadProducerEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	values := make([][]byte, 0, len(badProducerEvents)+1)
	for _, c := range badProducerEvents {
		values = append(values, []byte(c.value))
	}
	values = append(values, eventJSON("ok-1", "u1", "mention"))
	e.produce(e.names.Events, "u1", values...)

	e.startEnricher(e.enricherConfig("txn-decode"))
	e.waitCommitted(enricherGroup, e.names.Events)

	if got := eventIDs(e.list("u1")); !slices.Equal(got, []string{"ok-1"}) {
		t.Fatalf("inbox of u1 = %v, want [ok-1]", got)
	}
	if got := e.list("u2"); len(got) != 0 {
		t.Fatalf("inbox of u2 = %v: a duplicate user_id was routed", eventIDs(got))
	}
	dlq := e.readAll(e.names.EventsDLQ)
	if len(dlq) != len(badProducerEvents) {
		t.Fatalf("DLQ has %d records, want %d:%s", len(dlq), len(badProducerEvents), fmtRecords(dlq))
	}
	slices.SortFunc(dlq, func(a, b *kgo.Record) int {
		x, _ := strconv.Atoi(mustHeader(t, a, HeaderSourceOffset))
		y, _ := strconv.Atoi(mustHeader(t, b, HeaderSourceOffset))
		return x - y
	})
	for i, c := range badProducerEvents {
		if string(dlq[i].Value) != c.value {
			t.Errorf("dlq[%d]: value %q, want %q as received", i, dlq[i].Value, c.value)
		}
		if got := mustHeader(t, dlq[i], HeaderError); !strings.Contains(got, c.reason) {
			t.Errorf("%s: %s = %q, want it to contain %q", c.name, HeaderError, got, c.reason)
		}
	}
}
