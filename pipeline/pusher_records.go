package pipeline

import (
	"encoding/json"
	"fmt"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Headers of the push retry topics (herald.push.retry.<tier>) and of the
// pusher's herald.push.dlq records. A retry record's key and value are
// those of a herald.push record (the value's attempt field counts the
// sends already tried); these headers carry the rest of the job's state.
const (
	// HeaderNotBefore is the earliest time (RFC 3339, nanoseconds) a retry
	// record may be worked. Absent: at once.
	HeaderNotBefore = "herald-not-before"
	// HeaderPushTokens is a JSON array of the device tokens still pending:
	// the retry (or a replay from herald.push.dlq) sends to these of the
	// user's devices only. Absent: every device of the user.
	HeaderPushTokens = "herald-push-tokens"
	// HeaderPushDelayed is "true" once the job waited its type's push
	// delay, so that it does not wait again.
	HeaderPushDelayed = "herald-push-delayed"
	// HeaderRetryReason is why the job is waiting: the provider's last
	// reason, "delay" (per-type push delay) or "circuit_open".
	HeaderRetryReason = "herald-retry-reason"
)

// pushMeta is the state a push job carries between attempts.
type pushMeta struct {
	notBefore time.Time
	// tokens are the pending devices; nil means all the user's devices.
	tokens  []string
	delayed bool
	reason  string
}

// decodePushMeta reads the retry headers of r (all optional).
func decodePushMeta(r *kgo.Record) (pushMeta, error) {
	var m pushMeta
	if s, ok := header(r, HeaderNotBefore); ok {
		t, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			return m, fmt.Errorf("%s header %q: %w", HeaderNotBefore, s, err)
		}
		m.notBefore = t
	}
	if s, ok := header(r, HeaderPushTokens); ok {
		if err := json.Unmarshal([]byte(s), &m.tokens); err != nil {
			return m, fmt.Errorf("%s header: %w", HeaderPushTokens, err)
		}
		if m.tokens == nil {
			m.tokens = []string{}
		}
	}
	if s, ok := header(r, HeaderPushDelayed); ok {
		m.delayed = s == "true"
	}
	m.reason, _ = header(r, HeaderRetryReason)
	return m, nil
}

// pushMetaHeaders encodes m (a zero notBefore, nil tokens, false delayed
// and empty reason are omitted).
func pushMetaHeaders(m *pushMeta) []kgo.RecordHeader {
	var h []kgo.RecordHeader
	if !m.notBefore.IsZero() {
		h = append(h, kgo.RecordHeader{Key: HeaderNotBefore, Value: []byte(m.notBefore.UTC().Format(time.RFC3339Nano))})
	}
	if m.tokens != nil {
		b, _ := json.Marshal(m.tokens) // []string: cannot fail
		h = append(h, kgo.RecordHeader{Key: HeaderPushTokens, Value: b})
	}
	if m.delayed {
		h = append(h, kgo.RecordHeader{Key: HeaderPushDelayed, Value: []byte("true")})
	}
	if m.reason != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderRetryReason, Value: []byte(m.reason)})
	}
	return h
}

// pushRetry is the retry record of job on topic, with m's headers and
// timestamp now (a tier's wait is bounded from it).
func (c Codec) pushRetry(topic string, job *herald.PushJob, m *pushMeta, now time.Time) (*kgo.Record, error) {
	r, err := c.Push(job)
	if err != nil {
		return nil, err
	}
	r.Topic, r.Headers, r.Timestamp = topic, pushMetaHeaders(m), now
	return r, nil
}

// pushGiveUp is the herald.push.dlq record of job for the devices tokens
// (nil: all), read from src: src's location, the job with its attempt
// count reset (a replay starts afresh; the count is in herald-attempts),
// the tokens header, the reason and the attempts made.
func (c Codec) pushGiveUp(src *kgo.Record, job herald.PushJob, tokens []string, reason string, attempts int) (*kgo.Record, error) {
	job.Attempt = 0
	r, err := c.Push(&job)
	if err != nil {
		return nil, err
	}
	r.Topic, r.Partition, r.Offset = src.Topic, src.Partition, src.Offset
	r.Headers = pushMetaHeaders(&pushMeta{tokens: tokens})
	return c.PushDLQ(r, errReason(reason), attempts), nil
}

// errReason is a reason as an error (Codec.PushDLQ takes one).
type errReason string

func (e errReason) Error() string { return string(e) }
