package herald

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"
)

// Limits of the Event contract.
const (
	MaxEventBytes     = 64 << 10 // a whole encoded event
	MaxIDLen          = 128
	MaxUserIDLen      = 128
	MaxTypeLen        = 64
	MaxTitleLen       = 256 // characters
	MaxBodyLen        = 4096
	MaxDataBytes      = 4 << 10
	MaxCollapseKeyLen = 256
)

// Priority of an event. High bypasses quiet hours and throttling.
type Priority string

// The priorities an event may carry.
const (
	PriorityHigh   Priority = "high"
	PriorityNormal Priority = "normal"
	PriorityLow    Priority = "low"
)

// Event is what upstream services produce to herald.events or POST to
// /v1/events.
type Event struct {
	ID          string          `json:"id"`
	UserID      string          `json:"user_id"`
	Type        string          `json:"type"`
	Priority    Priority        `json:"priority,omitempty"`
	Title       string          `json:"title,omitempty"`
	Body        string          `json:"body,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	CollapseKey string          `json:"collapse_key,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	TTL         int64           `json:"ttl,omitempty"` // seconds; 0 means no expiry
}

// ExpiresAt is the instant after which no push may be sent for e; the zero
// time when the event has no TTL.
func (e *Event) ExpiresAt() time.Time {
	if e.TTL <= 0 {
		return time.Time{}
	}
	return e.CreatedAt.Add(time.Duration(e.TTL) * time.Second)
}

// ValidationError says which field of an input is wrong and why. Field is
// the JSON name ("" when the document as a whole is at fault).
type ValidationError struct {
	Field  string
	Reason string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Reason
	}
	return e.Field + ": " + e.Reason
}

func invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Reason: fmt.Sprintf(format, args...)}
}

// AsValidationError reports whether err is (or wraps) a ValidationError.
func AsValidationError(err error) (*ValidationError, bool) {
	var ve *ValidationError
	ok := errors.As(err, &ve)
	return ve, ok
}

// wireEvent mirrors Event with every field optional so that absence, null
// and wrong types can be told apart and reported precisely.
type wireEvent struct {
	ID          *string         `json:"id"`
	UserID      *string         `json:"user_id"`
	Type        *string         `json:"type"`
	Priority    *string         `json:"priority"`
	Title       *string         `json:"title"`
	Body        *string         `json:"body"`
	Data        json.RawMessage `json:"data"`
	CollapseKey *string         `json:"collapse_key"`
	CreatedAt   *string         `json:"created_at"`
	TTL         *json.Number    `json:"ttl"`
}

// DecodeEvent parses and validates one event. recordTime is used as
// created_at when the event has none (the Kafka record time, or the time the
// API received it). Unknown fields are ignored. Every failure is a
// *ValidationError naming the field.
func DecodeEvent(b []byte, recordTime time.Time) (Event, error) {
	if len(b) > MaxEventBytes {
		return Event{}, invalid("", "event is %d bytes, more than the %d allowed", len(b), MaxEventBytes)
	}
	trimmed := bytes.TrimSpace(b)
	if len(trimmed) == 0 {
		return Event{}, invalid("", "empty event")
	}
	if trimmed[0] != '{' {
		return Event{}, invalid("", "event must be a JSON object")
	}
	var w wireEvent
	dec := json.NewDecoder(bytes.NewReader(trimmed))
	dec.UseNumber()
	if err := dec.Decode(&w); err != nil {
		return Event{}, jsonError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Event{}, invalid("", "trailing data after the event object")
	}
	return w.validate(recordTime)
}

// jsonError turns an encoding/json error into a ValidationError naming the
// field where possible.
func jsonError(err error) *ValidationError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return invalid(te.Field, "must be %s, got %s", jsonKind(te.Type.Kind().String()), te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return invalid("", "malformed JSON at byte %d: %v", se.Offset, se)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return invalid("", "malformed JSON: unexpected end of input")
	}
	return invalid("", "malformed JSON: %v", err)
}

func jsonKind(k string) string {
	switch k {
	case "ptr", "string":
		return "a string"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "a " + k
}

func (w *wireEvent) validate(recordTime time.Time) (Event, error) {
	var e Event
	var err error
	if e.ID, err = requiredString("id", w.ID, MaxIDLen); err != nil {
		return Event{}, err
	}
	if e.UserID, err = requiredString("user_id", w.UserID, MaxUserIDLen); err != nil {
		return Event{}, err
	}
	if err := ValidateUserID(e.UserID); err != nil {
		return Event{}, err
	}
	if e.Type, err = requiredString("type", w.Type, MaxTypeLen); err != nil {
		return Event{}, err
	}
	e.Priority = PriorityNormal
	if w.Priority != nil {
		switch p := Priority(*w.Priority); p {
		case PriorityHigh, PriorityNormal, PriorityLow:
			e.Priority = p
		default:
			return Event{}, invalid("priority", "must be one of high, normal, low, got %q", *w.Priority)
		}
	}
	if e.Title, err = optionalString("title", w.Title, MaxTitleLen); err != nil {
		return Event{}, err
	}
	if e.Body, err = optionalString("body", w.Body, MaxBodyLen); err != nil {
		return Event{}, err
	}
	if e.CollapseKey, err = optionalString("collapse_key", w.CollapseKey, MaxCollapseKeyLen); err != nil {
		return Event{}, err
	}
	if d := bytes.TrimSpace(w.Data); len(d) > 0 && !bytes.Equal(d, []byte("null")) {
		if d[0] != '{' {
			return Event{}, invalid("data", "must be a JSON object")
		}
		if len(d) > MaxDataBytes {
			return Event{}, invalid("data", "is %d bytes, more than the %d allowed", len(d), MaxDataBytes)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, d); err != nil {
			return Event{}, invalid("data", "malformed JSON object: %v", err)
		}
		e.Data = json.RawMessage(buf.Bytes())
	}
	if w.CreatedAt != nil {
		t, perr := time.Parse(time.RFC3339Nano, *w.CreatedAt)
		if perr != nil {
			return Event{}, invalid("created_at", "must be an RFC 3339 timestamp, got %q", *w.CreatedAt)
		}
		e.CreatedAt = t.UTC()
	} else {
		e.CreatedAt = recordTime.UTC()
	}
	if w.TTL != nil {
		n, perr := w.TTL.Int64()
		if perr != nil || n < 0 {
			return Event{}, invalid("ttl", "must be a non-negative whole number of seconds, got %s", w.TTL.String())
		}
		e.TTL = n
	}
	return e, nil
}

func requiredString(field string, v *string, max int) (string, error) {
	if v == nil {
		return "", invalid(field, "is required")
	}
	if *v == "" {
		return "", invalid(field, "must not be empty")
	}
	return optionalString(field, v, max)
}

func optionalString(field string, v *string, max int) (string, error) {
	if v == nil {
		return "", nil
	}
	if !utf8.ValidString(*v) {
		return "", invalid(field, "must be valid UTF-8")
	}
	if n := utf8.RuneCountInString(*v); n > max {
		return "", invalid(field, "is %d characters, more than the %d allowed", n, max)
	}
	return *v, nil
}

// ValidateUserID checks the user id alphabet and length of the contract:
// 1–128 characters of [A-Za-z0-9._:@-].
func ValidateUserID(id string) error {
	if id == "" {
		return invalid("user_id", "must not be empty")
	}
	if len(id) > MaxUserIDLen {
		return invalid("user_id", "is %d characters, more than the %d allowed", len(id), MaxUserIDLen)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("._:@-", c) >= 0:
		default:
			return invalid("user_id", "may only contain A-Z a-z 0-9 . _ : @ -, found %q at %d", c, i)
		}
	}
	return nil
}
