package dlq

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/pipeline"
	"github.com/heraldhq/herald/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// HeaderReplayedFrom is added to every replayed record:
// "<dlq topic>/<partition>/<offset>" of the dead letter it came from.
const HeaderReplayedFrom = "herald-replayed-from"

// ErrInvalidConfig wraps every configuration error of List and Replay.
var ErrInvalidConfig = errors.New("dlq: invalid config")

// Kind names one of the two dead-letter topics.
type Kind string

// The dead-letter topics.
const (
	Events Kind = "events" // herald.events.dlq, rejected events
	Push   Kind = "push"   // herald.push.dlq, push jobs given up on
)

// Kinds are the dead-letter topics, in pipeline order.
var Kinds = []Kind{Events, Push}

// ParseKind reads "events" or "push".
func ParseKind(s string) (Kind, error) {
	switch k := Kind(s); k {
	case Events, Push:
		return k, nil
	}
	return "", fmt.Errorf("dlq: unknown topic %q: want events or push", s)
}

// Topic is where one kind of dead letter lives and comes from.
type Topic struct {
	Kind Kind
	// DLQ is the dead-letter topic, e.g. herald.push.dlq.
	DLQ string
	// Source is the topic its records are replayed to when they have no
	// herald-source-topic header, e.g. herald.push.
	Source string
	// Group is the replay's consumer group and transactional id:
	// <prefix>dlq-replay-<kind>.
	Group string
}

// TopicOf returns the topic of kind under names (zero names: the default
// prefix).
func TopicOf(names topics.Names, kind Kind) (Topic, error) {
	if names.IsZero() {
		names = topics.WithPrefix("")
	}
	t := Topic{Kind: kind, Group: names.Prefix() + "dlq-replay-" + string(kind)}
	switch kind {
	case Events:
		t.DLQ, t.Source = names.EventsDLQ, names.Events
	case Push:
		t.DLQ, t.Source = names.PushDLQ, names.Push
	default:
		return Topic{}, fmt.Errorf("%w: unknown kind %q: want events or push", ErrInvalidConfig, kind)
	}
	return t, nil
}

// Entry is one dead letter as listed.
type Entry struct {
	Partition int32     `json:"partition"`
	Offset    int64     `json:"offset"`
	Time      time.Time `json:"time"` // when it was dead-lettered (record timestamp)
	Reason    string    `json:"reason"`
	// SourceTopic, SourcePartition and SourceOffset locate the record it is
	// a copy of; SourceTopic is where Replay sends it.
	SourceTopic     string `json:"source_topic"`
	SourcePartition int32  `json:"source_partition"`
	SourceOffset    int64  `json:"source_offset"`
	Attempts        int    `json:"attempts"` // push sends tried (herald.push.dlq only)
	// UserID and EventID are read from the value ("" when unknown); for an
	// undecodable value UserID falls back to the record key.
	UserID  string `json:"user_id"`
	EventID string `json:"event_id"`
	// Invalid says why the value did not decode as an event or push job
	// ("" when it did).
	Invalid string `json:"invalid,omitempty"`
	// Pending is false for a dead letter a replay already handled
	// (replayed or carried over); only List with All shows those.
	Pending bool `json:"pending"`
}

// Age is how long ago the record was dead-lettered.
func (e *Entry) Age(now time.Time) time.Duration { return now.Sub(e.Time) }

// decodeEntry reads r of topic t. A record without the herald-error header
// is listed with an empty reason and Invalid set: something that is not a
// dead letter was written to the DLQ.
func decodeEntry(t Topic, r *kgo.Record) Entry {
	e := Entry{Partition: r.Partition, Offset: r.Offset, Time: r.Timestamp}
	d, err := pipeline.DecodeDeadLetter(r)
	e.Reason, e.SourceTopic, e.SourcePartition, e.SourceOffset, e.Attempts =
		d.Reason, d.SourceTopic, d.SourcePartition, d.SourceOffset, d.Attempts
	if e.SourceTopic == "" {
		e.SourceTopic = t.Source
	}
	var invalid error
	switch t.Kind {
	case Events:
		ev, derr := herald.DecodeEvent(r.Value, r.Timestamp)
		if derr == nil {
			e.UserID, e.EventID = ev.UserID, ev.ID
		} else {
			invalid = derr
			f := looseFields(r.Value)
			e.UserID, e.EventID = scalar(f["user_id"]), scalar(f["id"])
		}
	case Push:
		job, derr := pipeline.DecodePush(r)
		if derr == nil {
			e.UserID, e.EventID = job.UserID, job.Notification.EventID
		} else {
			invalid = derr
			f := looseFields(r.Value)
			e.UserID, e.EventID = scalar(f["user_id"]), scalar(looseFields(f["notification"])["event_id"])
		}
	}
	if e.UserID == "" && invalid != nil {
		e.UserID = printable(string(r.Key))
	}
	if err != nil {
		e.Invalid = err.Error()
	} else if invalid != nil {
		e.Invalid = invalid.Error()
	}
	return e
}

// looseFields reads the members of the JSON object b as far as it is
// well formed: an event rejected for being truncated or mistyped still
// shows the ids written before the fault.
func looseFields(b []byte) map[string]json.RawMessage {
	out := map[string]json.RawMessage{}
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return out
	}
	for dec.More() {
		tok, err := dec.Token()
		key, ok := tok.(string)
		if err != nil || !ok {
			break
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			break
		}
		if _, dup := out[key]; !dup {
			out[key] = raw
		}
	}
	return out
}

// scalar shows a JSON string or number, "" for anything else.
func scalar(raw json.RawMessage) string {
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return ""
	}
	switch v := v.(type) {
	case string:
		return printable(v)
	case float64:
		return fmt.Sprint(v)
	}
	return ""
}

// printable bounds s and replaces control characters, for a table cell.
func printable(s string) string {
	const max = 128
	if len(s) > max {
		s = s[:max] + "…"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
}

// Filter selects dead letters. The zero Filter selects every one.
type Filter struct {
	// Reason keeps the dead letters whose reason contains it, ignoring
	// case. "" keeps every reason.
	Reason string
	// Since keeps the dead letters at most this old (dead-lettered at or
	// after now-Since). 0 keeps every age.
	Since time.Duration
}

// Match reports whether f selects e at now.
func (f Filter) Match(e *Entry, now time.Time) bool {
	if f.Reason != "" && !strings.Contains(strings.ToLower(e.Reason), strings.ToLower(f.Reason)) {
		return false
	}
	if f.Since > 0 && e.Time.Before(now.Add(-f.Since)) {
		return false
	}
	return true
}

// Config is what List and Replay share. Kind and a way to reach the
// brokers are required.
type Config struct {
	// Brokers are the seed brokers. May be empty if ClientOptions carries
	// kgo.SeedBrokers.
	Brokers []string
	// ClientOptions are extra franz-go options (TLS, SASL) appended after
	// Herald's (pipeline.ClientOptions); the options a replay's correctness
	// rests on (group, transactional id, isolation level) are set after
	// these.
	ClientOptions []kgo.Opt
	// Topics are the topic names. Zero value: topics.WithPrefix("").
	Topics topics.Names
	// Kind is the dead-letter topic to read. Required.
	Kind Kind
	// Filter selects the dead letters. Zero value: all of them.
	Filter Filter
	// Logger receives progress logs. Zero value: slog.Default().
	Logger *slog.Logger
	// Now is the clock of the age filter. Zero value: time.Now.
	Now func() time.Time
	// IdleCheck is how long a read waits for records before it checks
	// whether the partitions it still waits on were emptied by retention.
	// Zero value: 2s.
	IdleCheck time.Duration
}

func (c *Config) setDefaults() (Topic, error) {
	if len(c.Brokers) == 0 && len(c.ClientOptions) == 0 {
		return Topic{}, fmt.Errorf("%w: Brokers (or ClientOptions with seed brokers) required", ErrInvalidConfig)
	}
	if c.Kind == "" {
		return Topic{}, fmt.Errorf("%w: Kind is required (events or push)", ErrInvalidConfig)
	}
	if c.Filter.Since < 0 {
		return Topic{}, fmt.Errorf("%w: Filter.Since %s is negative", ErrInvalidConfig, c.Filter.Since)
	}
	if c.Topics.IsZero() {
		c.Topics = topics.WithPrefix("")
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.IdleCheck <= 0 {
		c.IdleCheck = 2 * time.Second
	}
	return TopicOf(c.Topics, c.Kind)
}
