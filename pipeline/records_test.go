package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The contract's example event (docs/ARCHITECTURE.md), with odd
// whitespace, an unknown field and HTML-ish text.
const contractEvent = `{"id": "evt-7f3a", "user_id": "u-123", "type": "mention",
 "priority": "normal", "title": "Ada <ada@example.com> mentioned you", "body": "in #general: …",
 "data": { "url" : "/c/general/42?a=1&b=2" }, "collapse_key": "thread:42",
 "created_at": "2026-11-22T10:00:00Z", "ttl": 86400, "extra": true}`

// canonicalEvent is what herald.events carries for contractEvent: the
// contract's fields in the contract's order, compact, nothing escaped.
const canonicalEvent = `{"id":"evt-7f3a","user_id":"u-123","type":"mention","priority":"normal",` +
	`"title":"Ada <ada@example.com> mentioned you","body":"in #general: …",` +
	`"data":{"url":"/c/general/42?a=1&b=2"},"collapse_key":"thread:42",` +
	`"created_at":"2026-11-22T10:00:00Z","ttl":86400}`

func TestEventCanonicalRoundTrip(t *testing.T) {
	ev, err := herald.DecodeEvent([]byte(contractEvent), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	c := NewCodec(topics.Names{})
	rec, err := c.Event(&ev, time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if got := string(rec.Value); got != canonicalEvent {
		t.Fatalf("value\n got %s\nwant %s", got, canonicalEvent)
	}
	if rec.Topic != "herald.events" || string(rec.Key) != "u-123" {
		t.Fatalf("topic %q key %q", rec.Topic, rec.Key)
	}
	back, err := DecodeEventRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, ev) {
		t.Fatalf("enricher decodes\n%+v\nwant\n%+v", back, ev)
	}

	// An event without created_at gets the time it was received, which
	// the canonical encoding then carries explicitly; minimal events stay
	// minimal.
	recv := time.Date(2026, 11, 22, 10, 0, 0, 123e6, time.UTC)
	ev, err = herald.DecodeEvent([]byte(`{"id":"e","user_id":"u","type":"t"}`), recv)
	if err != nil {
		t.Fatal(err)
	}
	v, err := EncodeEvent(&ev)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"e","user_id":"u","type":"t","priority":"normal","created_at":"2026-11-22T10:00:00.123Z"}`; string(v) != want {
		t.Fatalf("minimal event: %s, want %s", v, want)
	}
	back, err = DecodeEventRecord(&kgo.Record{Value: v, Timestamp: recv.Add(time.Hour)})
	if err != nil || !reflect.DeepEqual(back, ev) {
		t.Fatalf("minimal event decodes to %+v, %v; want %+v", back, err, ev)
	}
}

func TestMultiRecipientEventRoundTrip(t *testing.T) {
	c := NewCodec(topics.Names{})
	for _, tc := range []struct{ in, want string }{
		{`{"id":"b-1","type":"t","user_ids":["a","b","a","c"],"created_at":"2026-11-22T10:00:00Z"}`,
			`{"id":"b-1","user_ids":["a","b","c"],"type":"t","priority":"normal","created_at":"2026-11-22T10:00:00Z"}`},
		{`{"id":"b-2","type":"t","audience":"team:42","created_at":"2026-11-22T10:00:00Z"}`,
			`{"id":"b-2","audience":"team:42","type":"t","priority":"normal","created_at":"2026-11-22T10:00:00Z"}`},
	} {
		ev, err := herald.DecodeEvent([]byte(tc.in), time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := c.Event(&ev, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		// No user_id (omitted when empty), keyed by the event id.
		if string(rec.Value) != tc.want || string(rec.Key) != ev.ID {
			t.Fatalf("record key %q value\n got %s\nwant %s", rec.Key, rec.Value, tc.want)
		}
		back, err := DecodeEventRecord(rec)
		if err != nil || !reflect.DeepEqual(back, ev) {
			t.Fatalf("decodes to %+v, %v; want %+v", back, err, ev)
		}
	}
}

func TestDeadLetterRecords(t *testing.T) {
	c := NewCodec(topics.WithPrefix("acme."))
	src := &kgo.Record{Topic: "acme.events", Partition: 7, Offset: 42, Key: []byte("u1"), Value: []byte("{bad"),
		Headers: []kgo.RecordHeader{{Key: "trace-id", Value: []byte("abc")}}}
	dlq := c.EventDLQ(src, errors.New("malformed JSON"))
	if dlq.Topic != "acme.events.dlq" || string(dlq.Key) != "u1" || string(dlq.Value) != "{bad" {
		t.Fatalf("event DLQ record: %+v", dlq)
	}
	wantHeaders := []kgo.RecordHeader{
		{Key: "trace-id", Value: []byte("abc")},
		{Key: "herald-error", Value: []byte("malformed JSON")},
		{Key: "herald-source-topic", Value: []byte("acme.events")},
		{Key: "herald-source-partition", Value: []byte("7")},
		{Key: "herald-source-offset", Value: []byte("42")},
	}
	if !reflect.DeepEqual(dlq.Headers, wantHeaders) {
		t.Fatalf("headers %v, want %v", dlq.Headers, wantHeaders)
	}
	d, err := DecodeDeadLetter(dlq)
	if err != nil {
		t.Fatal(err)
	}
	if want := (DeadLetter{Reason: "malformed JSON", SourceTopic: "acme.events", SourcePartition: 7, SourceOffset: 42}); d != want {
		t.Fatalf("decoded %+v, want %+v", d, want)
	}

	push := &kgo.Record{Topic: "acme.push", Partition: 1, Offset: 9, Key: []byte("u1"), Value: []byte(`{"user_id":"u1"}`)}
	pdlq := c.PushDLQ(push, errors.New("token unregistered"), 3)
	if pdlq.Topic != "acme.push.dlq" {
		t.Fatalf("push DLQ topic %q", pdlq.Topic)
	}
	if v, _ := header(pdlq, HeaderAttempts); v != "3" {
		t.Fatalf("attempts header %q", v)
	}
	d, err = DecodeDeadLetter(pdlq)
	if err != nil || d.Attempts != 3 || d.Reason != "token unregistered" || d.SourceOffset != 9 {
		t.Fatalf("decoded %+v, %v", d, err)
	}

	// Dead-lettered again (replayed and refused): the newest headers win.
	again := c.EventDLQ(&kgo.Record{Topic: "acme.events", Partition: 2, Offset: 5, Key: dlq.Key, Value: dlq.Value, Headers: dlq.Headers}, errors.New("second"))
	if d, err := DecodeDeadLetter(again); err != nil || d.Reason != "second" || d.SourcePartition != 2 || d.SourceOffset != 5 {
		t.Fatalf("re-dead-lettered: %+v, %v", d, err)
	}

	for _, bad := range []*kgo.Record{
		{},
		{Headers: []kgo.RecordHeader{{Key: HeaderError, Value: []byte("x")}, {Key: HeaderSourceOffset, Value: []byte("nope")}}},
		{Headers: []kgo.RecordHeader{{Key: HeaderError, Value: []byte("x")}, {Key: HeaderAttempts, Value: []byte("-1")}}},
	} {
		if _, err := DecodeDeadLetter(bad); err == nil {
			t.Errorf("DecodeDeadLetter(%v) accepted it", bad.Headers)
		}
	}
}

func TestDeliveryRecords(t *testing.T) {
	c := NewCodec(topics.Names{})
	created := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ev := herald.Event{ID: "e1", UserID: "u1", Type: "mention", Priority: herald.PriorityNormal, Title: "hi",
		Data: json.RawMessage(`{"k":1}`), CollapseKey: "thread:1", CreatedAt: created, TTL: 60}
	n := herald.NewNotification(&ev)
	n.Seq, n.Prev = 4, 3
	d := NewDelivery(n, &ev, herald.Route{InApp: true, Push: herald.PushQuietHours})
	rec, err := c.Delivery(&d)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Topic != "herald.deliveries" || string(rec.Key) != "u1" {
		t.Fatalf("topic %q key %q", rec.Topic, rec.Key)
	}
	wantValue, _ := json.Marshal(n) // the wire format: plain Notification JSON
	if string(rec.Value) != string(wantValue) {
		t.Fatalf("value %s, want %s", rec.Value, wantValue)
	}
	wantHeaders := []kgo.RecordHeader{
		{Key: "herald-push", Value: []byte("quiet_hours")},
		{Key: "herald-collapse-key", Value: []byte("thread:1")},
		{Key: "herald-expires-at", Value: []byte("2026-11-22T10:01:00Z")},
	}
	if !reflect.DeepEqual(rec.Headers, wantHeaders) {
		t.Fatalf("headers %v, want %v", rec.Headers, wantHeaders)
	}
	back, err := DecodeDelivery(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !back.PushKnown || back.Push != herald.PushQuietHours || back.CollapseKey != "thread:1" ||
		!back.ExpiresAt.Equal(ev.ExpiresAt()) || back.ExpiresAtErr != nil || back.UserID != "u1" {
		t.Fatalf("decoded %+v", back)
	}
	if back.Notification.Seq != 4 || back.Notification.EventID != "e1" || back.Notification.UserID != "u1" {
		t.Fatalf("decoded notification %+v", back.Notification)
	}

	// No TTL, no collapse key: only the push header.
	ev.TTL, ev.CollapseKey = 0, ""
	d = NewDelivery(n, &ev, herald.Route{InApp: true, Push: herald.PushAllowed})
	rec, _ = c.Delivery(&d)
	if len(rec.Headers) != 1 || string(rec.Headers[0].Value) != "allowed" {
		t.Fatalf("headers %v", rec.Headers)
	}

	// Header problems are reported, not fatal.
	rec.Headers = []kgo.RecordHeader{{Key: HeaderPush, Value: []byte("maybe")}, {Key: HeaderExpiresAt, Value: []byte("tomorrow")}}
	back, err = DecodeDelivery(rec)
	if err != nil || back.PushKnown || back.ExpiresAtErr == nil || !back.ExpiresAt.IsZero() {
		t.Fatalf("lenient headers: %+v, %v", back, err)
	}

	for name, bad := range map[string]*kgo.Record{
		"bad key":   {Key: []byte("u 1"), Value: wantValue},
		"not json":  {Key: []byte("u1"), Value: []byte("{")},
		"no seq":    {Key: []byte("u1"), Value: []byte(`{"event_id":"e"}`)},
		"no event":  {Key: []byte("u1"), Value: []byte(`{"seq":1}`)},
		"empty key": {Value: wantValue},
	} {
		if _, err := DecodeDelivery(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestPushRecords(t *testing.T) {
	c := NewCodec(topics.Names{})
	created := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	ev := herald.Event{ID: "e1", UserID: "u1", Type: "mention", Priority: herald.PriorityHigh, CreatedAt: created}
	job := herald.PushJob{UserID: "u1", Notification: herald.NewNotification(&ev), CollapseKey: "c", ExpiresAt: created.Add(time.Minute)}
	rec, err := c.Push(&job)
	if err != nil {
		t.Fatal(err)
	}
	wantValue, _ := json.Marshal(job)
	if rec.Topic != "herald.push" || string(rec.Key) != "u1" || string(rec.Value) != string(wantValue) || len(rec.Headers) != 0 {
		t.Fatalf("push record %s %s %s %v", rec.Topic, rec.Key, rec.Value, rec.Headers)
	}
	back, err := DecodePush(rec)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, job) {
		t.Fatalf("decoded %+v, want %+v", back, job)
	}
	if _, err := DecodePush(&kgo.Record{Key: []byte("u2"), Value: rec.Value}); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("key mismatch: %v", err)
	}
	if _, err := DecodePush(&kgo.Record{Key: []byte("u1"), Value: []byte("[]")}); err == nil {
		t.Fatal("array accepted")
	}
}

func TestEventWriter(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	w := NewEventWriter(e.prod, e.names)
	if err := w.SendEvents(e.ctx, nil); err != nil {
		t.Fatal(err)
	}
	ev, err := herald.DecodeEvent([]byte(contractEvent), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	ev2 := ev
	ev2.ID, ev2.UserID = "evt-2", "u-456"
	// e.prod partitions manually: a key-hashing client is what production
	// uses, and Partition 0 here is enough to find the records.
	if err := w.SendEvents(e.ctx, []herald.Event{ev, ev2}); err != nil {
		t.Fatal(err)
	}
	got := e.readAll(e.names.Events)
	if len(got) != 2 {
		t.Fatalf("herald.events: %s", fmtRecords(got))
	}
	byKey := map[string]*kgo.Record{}
	for _, r := range got {
		byKey[string(r.Key)] = r
	}
	if r := byKey["u-123"]; r == nil || string(r.Value) != canonicalEvent {
		t.Fatalf("u-123 record: %v", r)
	}
	back, err := DecodeEventRecord(byKey["u-456"])
	if err != nil || !reflect.DeepEqual(back, ev2) {
		t.Fatalf("u-456 decodes to %+v, %v", back, err)
	}

	// A multi-recipient event is keyed by its id.
	multi := herald.Event{ID: "evt-3", UserIDs: []string{"a", "b"}, Type: "t", Priority: herald.PriorityNormal, CreatedAt: ev.CreatedAt}
	if err := w.SendEvents(e.ctx, []herald.Event{multi}); err != nil {
		t.Fatal(err)
	}
	got = e.readAll(e.names.Events)
	var found bool
	for _, r := range got {
		if string(r.Key) == "evt-3" {
			back, err := DecodeEventRecord(r)
			found = err == nil && reflect.DeepEqual(back, multi)
		}
	}
	if !found {
		t.Fatalf("no evt-3 record keyed by its id: %s", fmtRecords(got))
	}

	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if err := w.SendEvents(ctx, []herald.Event{ev}); err == nil {
		t.Fatal("SendEvents on a canceled context succeeded")
	}
}
