package pipeline

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// This file is the one codec of Herald's Kafka records: the key, headers
// and value of every topic (docs/ARCHITECTURE.md, "Kafka topics"). Every
// producer and consumer of these topics goes through it, so that the wire
// format is written down once.

// Record headers Herald writes. They are part of the Kafka contract
// (docs/ARCHITECTURE.md): DLQ tooling and the router read them.
const (
	// HeaderError is the reason a record was dead-lettered.
	HeaderError = "herald-error"
	// HeaderSourceTopic, HeaderSourcePartition and HeaderSourceOffset locate
	// a dead-lettered record in the topic it was read from.
	HeaderSourceTopic     = "herald-source-topic"
	HeaderSourcePartition = "herald-source-partition"
	HeaderSourceOffset    = "herald-source-offset"
	// HeaderAttempts is the number of sends tried before a push job was
	// dead-lettered to herald.push.dlq.
	HeaderAttempts = "herald-attempts"
	// HeaderPush is the push decision of a herald.deliveries record:
	// "allowed", "disabled" or "quiet_hours" (herald.PushDecision.String()).
	HeaderPush = "herald-push"
	// HeaderCollapseKey carries the event's collapse_key, if any.
	HeaderCollapseKey = "herald-collapse-key"
	// HeaderExpiresAt is created_at+ttl in RFC 3339, only for events with a
	// TTL: no push is sent after it.
	HeaderExpiresAt = "herald-expires-at"
	// HeaderPolicyTick marks a herald.events record that is not an event
	// but a policy tick (PolicyTick): the enricher's signal, to itself, that
	// a digest window is due (policy_due.go).
	HeaderPolicyTick = "herald-policy-tick"
)

// Codec encodes Herald's records for the topics of Names. The zero value
// has no topic names: build it with NewCodec.
type Codec struct {
	Names topics.Names
}

// NewCodec returns the codec for names; zero names mean
// topics.WithPrefix("").
func NewCodec(names topics.Names) Codec {
	if names.IsZero() {
		names = topics.WithPrefix("")
	}
	return Codec{Names: names}
}

// EncodeEvent returns ev's canonical JSON: the contract's field names,
// compact, without HTML escaping, re-encoded from the struct (never the
// bytes it was decoded from), so duplicate keys, unknown fields and odd
// whitespace never reach Kafka. herald.DecodeEvent gives ev back.
func EncodeEvent(ev *herald.Event) ([]byte, error) {
	return encodeJSON(ev)
}

// Event is the herald.events record of a validated event: key = user id
// (a multi-recipient event, ev.Multi(), has none: key = event id, which
// spreads broadcasts over the partitions), value = EncodeEvent, timestamp
// = ts (zero: set by the client when produced).
func (c Codec) Event(ev *herald.Event, ts time.Time) (*kgo.Record, error) {
	v, err := EncodeEvent(ev)
	if err != nil {
		return nil, fmt.Errorf("encode event %s/%s: %w", ev.UserID, ev.ID, err)
	}
	return &kgo.Record{Topic: c.Names.Events, Key: []byte(EventKey(ev)), Value: v, Timestamp: ts}, nil
}

// EventKey is the herald.events key of ev: its user id, or its id when
// it is addressed to several users (user_ids or audience).
func EventKey(ev *herald.Event) string {
	if ev.Multi() {
		return ev.ID
	}
	return ev.UserID
}

// DecodeEventRecord decodes and validates a herald.events record; an event
// without created_at takes the record's timestamp. Every error is a
// *herald.ValidationError (the record belongs in the DLQ).
func DecodeEventRecord(r *kgo.Record) (herald.Event, error) {
	return herald.DecodeEvent(r.Value, r.Timestamp)
}

// PolicyTick is the value of a herald.events record marked with
// HeaderPolicyTick: the digest window Key of UserID was due at DueAt. The
// enricher produces one per entry of its due index, keyed by the user id
// like the user's events, and closes the window when it consumes it, in
// that batch's transaction. A tick for a window that is not open (closed
// already, a duplicate tick) changes nothing.
type PolicyTick struct {
	UserID string    `json:"user_id"`
	Key    string    `json:"key"`
	DueAt  time.Time `json:"due_at"`
}

// Tick is the herald.events record of t.
func (c Codec) Tick(t PolicyTick) (*kgo.Record, error) {
	v, err := encodeJSON(t)
	if err != nil {
		return nil, fmt.Errorf("encode policy tick %s: %w", t.UserID, err)
	}
	return &kgo.Record{
		Topic: c.Names.Events, Key: []byte(t.UserID), Value: v,
		Headers: []kgo.RecordHeader{{Key: HeaderPolicyTick, Value: []byte("1")}},
	}, nil
}

// maxTickBytes bounds a tick record's value: a user id, a key and a time,
// JSON-quoted.
const maxTickBytes = 8 << 10

// DecodeTickRecord reads r as a policy tick: ok is false when r is not
// one (no HeaderPolicyTick: an event). A malformed tick returns a
// *herald.ValidationError (the record belongs in the DLQ).
func DecodeTickRecord(r *kgo.Record) (t PolicyTick, ok bool, err error) {
	if _, ok := header(r, HeaderPolicyTick); !ok {
		return PolicyTick{}, false, nil
	}
	invalid := func(field, reason string) error {
		return &herald.ValidationError{Field: field, Reason: reason}
	}
	if len(r.Value) > maxTickBytes {
		return PolicyTick{}, true, invalid("", fmt.Sprintf("policy tick is %d bytes, more than %d", len(r.Value), maxTickBytes))
	}
	dec := json.NewDecoder(bytes.NewReader(r.Value))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return PolicyTick{}, true, invalid("", "policy tick is not valid JSON: "+err.Error())
	}
	switch {
	case t.UserID == "" || len(t.UserID) > herald.MaxUserIDLen:
		return PolicyTick{}, true, invalid("user_id", fmt.Sprintf("must be 1 to %d bytes", herald.MaxUserIDLen))
	case t.Key == "" || len(t.Key) > store.MaxPolicyKeyBytes:
		return PolicyTick{}, true, invalid("key", fmt.Sprintf("must be 1 to %d bytes", store.MaxPolicyKeyBytes))
	case t.DueAt.IsZero():
		return PolicyTick{}, true, invalid("due_at", "is required")
	case string(r.Key) != t.UserID:
		return PolicyTick{}, true, invalid("user_id", "differs from the record key")
	}
	return t, true, nil
}

// DeadLetter describes a dead-lettered record: why, and where it was read.
type DeadLetter struct {
	Reason          string
	SourceTopic     string
	SourcePartition int32
	SourceOffset    int64
	// Attempts is the number of sends tried (herald.push.dlq only; 0
	// elsewhere).
	Attempts int
}

// EventDLQ is the herald.events.dlq record of r, rejected for reason: r's
// key, value and headers as received, then the herald-error and
// herald-source-* headers.
func (c Codec) EventDLQ(r *kgo.Record, reason error) *kgo.Record {
	return deadLetter(c.Names.EventsDLQ, r, reason, -1)
}

// PushDLQ is the herald.push.dlq record of the herald.push record r, given
// up on after attempts sends: like EventDLQ, plus a herald-attempts header.
func (c Codec) PushDLQ(r *kgo.Record, reason error, attempts int) *kgo.Record {
	return deadLetter(c.Names.PushDLQ, r, reason, attempts)
}

// deadLetter copies r to topic with the DLQ headers; attempts < 0 omits
// the attempts header.
func deadLetter(topic string, r *kgo.Record, reason error, attempts int) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(r.Headers)+5)
	h = append(h, r.Headers...)
	h = append(h,
		kgo.RecordHeader{Key: HeaderError, Value: []byte(reason.Error())},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
	)
	if attempts >= 0 {
		h = append(h, kgo.RecordHeader{Key: HeaderAttempts, Value: []byte(strconv.Itoa(attempts))})
	}
	return &kgo.Record{Topic: topic, Key: r.Key, Value: r.Value, Headers: h}
}

// DecodeDeadLetter reads the DLQ headers of a herald.events.dlq or
// herald.push.dlq record; the original record is r's key, value and its
// other headers. The last occurrence of each header wins (a record
// dead-lettered twice keeps both sets; the newest is last).
func DecodeDeadLetter(r *kgo.Record) (DeadLetter, error) {
	var d DeadLetter
	reason, ok := header(r, HeaderError)
	if !ok {
		return d, fmt.Errorf("no %s header: not a dead letter", HeaderError)
	}
	d.Reason = reason
	d.SourceTopic, _ = header(r, HeaderSourceTopic)
	if s, ok := header(r, HeaderSourcePartition); ok {
		p, err := strconv.ParseInt(s, 10, 32)
		if err != nil {
			return d, fmt.Errorf("%s header %q: %w", HeaderSourcePartition, s, err)
		}
		d.SourcePartition = int32(p)
	}
	if s, ok := header(r, HeaderSourceOffset); ok {
		o, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return d, fmt.Errorf("%s header %q: %w", HeaderSourceOffset, s, err)
		}
		d.SourceOffset = o
	}
	if s, ok := header(r, HeaderAttempts); ok {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			return d, fmt.Errorf("%s header %q: not a count", HeaderAttempts, s)
		}
		d.Attempts = n
	}
	return d, nil
}

// Delivery is a herald.deliveries record: a stored notification and what
// the router needs to decide on a push without reading preferences again.
type Delivery struct {
	UserID       string
	Notification herald.Notification
	// Push is the enricher's push decision. PushKnown is false when the
	// record has no herald-push header or one this version does not know:
	// never push then.
	Push      herald.PushDecision
	PushKnown bool
	// CollapseKey is the event's collapse_key ("" for none).
	CollapseKey string
	// ExpiresAt is created_at+ttl; zero for no expiry. A malformed header
	// leaves it zero and sets ExpiresAtErr: the record is still usable.
	ExpiresAt    time.Time
	ExpiresAtErr error
}

// Delivery is the herald.deliveries record of d: key = user id, value =
// Notification JSON, headers herald-push, herald-collapse-key (if any) and
// herald-expires-at (if any, RFC 3339). PushKnown and ExpiresAtErr are
// not encoded.
func (c Codec) Delivery(d *Delivery) (*kgo.Record, error) {
	v, err := json.Marshal(d.Notification)
	if err != nil {
		return nil, fmt.Errorf("encode notification %s/%d: %w", d.UserID, d.Notification.Seq, err)
	}
	h := make([]kgo.RecordHeader, 1, 3)
	h[0] = kgo.RecordHeader{Key: HeaderPush, Value: []byte(d.Push.String())}
	if d.CollapseKey != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderCollapseKey, Value: []byte(d.CollapseKey)})
	}
	if !d.ExpiresAt.IsZero() {
		h = append(h, kgo.RecordHeader{Key: HeaderExpiresAt, Value: []byte(d.ExpiresAt.Format(time.RFC3339))})
	}
	return &kgo.Record{Topic: c.Names.Deliveries, Key: []byte(d.UserID), Value: v, Headers: h}, nil
}

// NewDelivery is the delivery of n, stored for ev under route.
func NewDelivery(n herald.Notification, ev *herald.Event, route herald.Route) Delivery {
	return Delivery{
		UserID:       ev.UserID,
		Notification: n,
		Push:         route.Push,
		PushKnown:    true,
		CollapseKey:  ev.CollapseKey,
		ExpiresAt:    ev.ExpiresAt(),
	}
}

// DecodeDelivery reads a herald.deliveries record. An error (bad key,
// value not a notification, no seq or event_id) means the record cannot be
// used at all; header problems are reported in the Delivery instead.
func DecodeDelivery(r *kgo.Record) (Delivery, error) {
	var d Delivery
	userID := string(r.Key)
	if err := herald.ValidateUserID(userID); err != nil {
		return d, fmt.Errorf("key: %w", err)
	}
	if err := json.Unmarshal(r.Value, &d.Notification); err != nil {
		return d, fmt.Errorf("value: %w", err)
	}
	if d.Notification.Seq == 0 || d.Notification.EventID == "" {
		return d, errors.New("value: notification without seq or event_id")
	}
	d.UserID = userID
	d.Notification.UserID = userID
	if s, ok := header(r, HeaderPush); ok {
		d.Push, d.PushKnown = herald.ParsePushDecision(s)
	}
	d.CollapseKey, _ = header(r, HeaderCollapseKey)
	if s, ok := header(r, HeaderExpiresAt); ok {
		exp, err := time.Parse(time.RFC3339, s)
		if err != nil {
			d.ExpiresAtErr = fmt.Errorf("%s header %q: %w", HeaderExpiresAt, s, err)
		} else {
			d.ExpiresAt = exp
		}
	}
	return d, nil
}

// Push is the herald.push record of job: key = user id, value = PushJob
// JSON.
func (c Codec) Push(job *herald.PushJob) (*kgo.Record, error) {
	v, err := json.Marshal(job)
	if err != nil {
		return nil, fmt.Errorf("encode push job %s/%s: %w", job.UserID, job.Notification.EventID, err)
	}
	return &kgo.Record{Topic: c.Names.Push, Key: []byte(job.UserID), Value: v}, nil
}

// DecodePush reads a herald.push (or herald.push.dlq) record.
func DecodePush(r *kgo.Record) (herald.PushJob, error) {
	var job herald.PushJob
	if err := json.Unmarshal(r.Value, &job); err != nil {
		return job, fmt.Errorf("value: %w", err)
	}
	if err := herald.ValidateUserID(job.UserID); err != nil {
		return job, fmt.Errorf("value: %w", err)
	}
	if string(r.Key) != job.UserID {
		return job, fmt.Errorf("key %q is not the job's user_id %q", r.Key, job.UserID)
	}
	job.Notification.UserID = job.UserID
	return job, nil
}

// encodeJSON marshals v compactly without HTML escaping.
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// header returns the value of the last header named key.
func header(r *kgo.Record, key string) (string, bool) {
	for i := len(r.Headers) - 1; i >= 0; i-- {
		if r.Headers[i].Key == key {
			return string(r.Headers[i].Value), true
		}
	}
	return "", false
}
