package herald

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode"
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
	// MaxDataDepth is how deeply data may nest objects and arrays; data
	// itself is level 1, so {"a":{"b":1}} is 2 levels deep. The same
	// bound applies to any other field of the event (unknown fields are
	// ignored, but scanned).
	MaxDataDepth = 32
	// MaxTTL is the largest ttl, in seconds: 365 days.
	MaxTTL = 365 * 24 * 60 * 60
	// MaxRecipients bounds user_ids.
	MaxRecipients = 1000
	// MaxTopicLen bounds a topic (an audience), in bytes.
	MaxTopicLen = 128
)

// Multi reports whether e is addressed to several users (UserIDs or
// Audience) rather than to UserID.
func (e *Event) Multi() bool { return len(e.UserIDs) > 0 || e.Audience != "" }

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
	ID     string `json:"id"`
	UserID string `json:"user_id,omitempty"`
	// UserIDs and Audience address a multi-recipient event instead of
	// UserID: exactly one of the three is set. UserIDs are 1 to
	// MaxRecipients distinct user ids (DecodeEvent drops repeats, keeping
	// the first); Audience is a topic (ValidateTopic) whose subscribers
	// receive the event. The fan-out stage expands such an event into one
	// event per recipient, with the same ID and UserID set.
	UserIDs     []string        `json:"user_ids,omitempty"`
	Audience    string          `json:"audience,omitempty"`
	Type        string          `json:"type"`
	Priority    Priority        `json:"priority,omitempty"`
	Title       string          `json:"title,omitempty"`
	Body        string          `json:"body,omitempty"`
	Data        json.RawMessage `json:"data,omitempty"`
	CollapseKey string          `json:"collapse_key,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	TTL         int64           `json:"ttl,omitempty"` // seconds, at most MaxTTL; 0 means no expiry
}

// maxExpiry is the latest instant ExpiresAt returns: the end of year 9999,
// the last one RFC 3339 (and so time.Time's JSON encoding) can write.
var maxExpiry = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)

// ExpiresAt is the instant after which no push may be sent for e; the zero
// time when the event has no TTL. DecodeEvent bounds TTL by MaxTTL; a
// larger TTL (an Event built by hand) is added in whole seconds and
// saturates at the end of year 9999 instead of wrapping into the past
// (time.Duration(ttl)*time.Second overflows beyond about 292 years).
func (e *Event) ExpiresAt() time.Time {
	if e.TTL <= 0 {
		return time.Time{}
	}
	sec := e.CreatedAt.Unix()
	if sec > maxExpiry.Unix() || e.TTL > maxExpiry.Unix()-sec {
		return maxExpiry
	}
	return time.Unix(sec+e.TTL, int64(e.CreatedAt.Nanosecond())).In(e.CreatedAt.Location())
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
	UserIDs     json.RawMessage `json:"user_ids"`
	Audience    *string         `json:"audience"`
	Type        *string         `json:"type"`
	Priority    *string         `json:"priority"`
	Title       *string         `json:"title"`
	Body        *string         `json:"body"`
	Data        json.RawMessage `json:"data"`
	CollapseKey *string         `json:"collapse_key"`
	CreatedAt   *string         `json:"created_at"`
	TTL         json.RawMessage `json:"ttl"`
}

// DecodeEvent parses and validates one event. recordTime is used as
// created_at when the event has none (the Kafka record time, or the time the
// API received it). Unknown fields are ignored. Every failure is a
// *ValidationError naming the field.
//
// An event is addressed by exactly one of user_id, user_ids (1 to
// MaxRecipients user ids; repeats are dropped, keeping the first) and
// audience (a topic, ValidateTopic). None: field "user_id"; two or three:
// the second of them in that order; a bad element of user_ids names it
// ("user_ids[3]"). MaxEventBytes bounds the whole event, user_ids
// included: 1,000 ids fit when they average under about 60 bytes.
//
// Before decoding, the bytes are scanned once, iteratively (see scanEvent):
// invalid UTF-8 anywhere (keys, values, data), nesting deeper than
// MaxDataDepth and a top-level key given twice (compared as encoding/json
// matches field names, case-insensitively: "user_id" and "USER_ID" are the
// same key) are refused, so that what the decoder sees is what a
// first-key-wins consumer of the raw bytes would see.
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
	if err := scanEvent(trimmed, len(b)-len(bytes.TrimLeftFunc(b, unicode.IsSpace))); err != nil {
		return Event{}, err
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
	if err := w.address(&e); err != nil {
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
	if e.TTL, err = decodeTTL(w.TTL); err != nil {
		return Event{}, err
	}
	return e, nil
}

// address sets e's recipients from exactly one of user_id, user_ids and
// audience (a null one counts as absent). When several are given the error
// names the second of them in that order, so that it points at a field the
// caller added, not at the one that may be right.
func (w *wireEvent) address(e *Event) error {
	ids := bytes.TrimSpace(w.UserIDs)
	hasIDs := len(ids) > 0 && !bytes.Equal(ids, []byte("null"))
	given := make([]string, 0, 3)
	if w.UserID != nil {
		given = append(given, "user_id")
	}
	if hasIDs {
		given = append(given, "user_ids")
	}
	if w.Audience != nil {
		given = append(given, "audience")
	}
	switch len(given) {
	case 0:
		return invalid("user_id", "one of user_id, user_ids or audience is required")
	case 1:
	default:
		return invalid(given[1], "only one of user_id, user_ids or audience may be given")
	}
	switch given[0] {
	case "user_id":
		var err error
		if e.UserID, err = requiredString("user_id", w.UserID, MaxUserIDLen); err != nil {
			return err
		}
		return ValidateUserID(e.UserID)
	case "audience":
		if err := ValidateTopic(*w.Audience); err != nil {
			ve, _ := AsValidationError(err)
			return invalid("audience", "%s", ve.Reason)
		}
		e.Audience = *w.Audience
		return nil
	}
	var err error
	e.UserIDs, err = decodeUserIDs(ids)
	return err
}

// decodeUserIDs checks the raw JSON value of user_ids (not null): an array
// of 1 to MaxRecipients strings, each a valid user id. Repeats are dropped,
// keeping the first, so each recipient appears once. Errors name the
// element ("user_ids[3]") when one is at fault.
func decodeUserIDs(raw []byte) ([]string, error) {
	if raw[0] != '[' {
		return nil, invalid("user_ids", "must be an array of user ids, got %s", kindOf(raw[0]))
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(raw, &elems); err != nil {
		return nil, invalid("user_ids", "malformed JSON array: %v", err)
	}
	if len(elems) == 0 || len(elems) > MaxRecipients {
		return nil, invalid("user_ids", "must have 1 to %d user ids, got %d", MaxRecipients, len(elems))
	}
	ids := make([]string, 0, len(elems))
	seen := make(map[string]struct{}, len(elems))
	for i, el := range elems {
		field := "user_ids[" + strconv.Itoa(i) + "]"
		if el[0] != '"' {
			return nil, invalid(field, "must be a string, got %s", kindOf(el[0]))
		}
		var id string
		if err := json.Unmarshal(el, &id); err != nil {
			return nil, invalid(field, "malformed JSON string: %v", err)
		}
		if err := ValidateUserID(id); err != nil {
			ve, _ := AsValidationError(err)
			return nil, invalid(field, "%s", ve.Reason)
		}
		if _, dup := seen[id]; dup {
			continue
		}
		seen[id] = struct{}{}
		ids = append(ids, id)
	}
	return ids, nil
}

// decodeTTL checks the raw JSON value of ttl: absent or null is 0, else a
// JSON number (not a string holding one) that is a whole number of seconds
// in [0, MaxTTL].
func decodeTTL(raw json.RawMessage) (int64, error) {
	v := bytes.TrimSpace(raw)
	if len(v) == 0 || bytes.Equal(v, []byte("null")) {
		return 0, nil
	}
	if v[0] != '-' && (v[0] < '0' || v[0] > '9') {
		return 0, invalid("ttl", "must be a non-negative whole number of seconds (a JSON number), got %s", kindOf(v[0]))
	}
	n, err := strconv.ParseInt(string(v), 10, 64)
	switch {
	case err != nil && errors.Is(err, strconv.ErrRange) && v[0] != '-':
		return 0, invalid("ttl", "is more than the %d seconds allowed", MaxTTL)
	case err != nil || n < 0:
		return 0, invalid("ttl", "must be a non-negative whole number of seconds, got %s", v)
	case n > MaxTTL:
		return 0, invalid("ttl", "is %d seconds, more than the %d allowed", n, MaxTTL)
	}
	return n, nil
}

// kindOf names the kind of the JSON value starting with c.
func kindOf(c byte) string {
	switch c {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		return "a number"
	}
	return "something else"
}

// scanEvent checks what encoding/json would silently accept or repair in
// the event b (a JSON object): invalid UTF-8 (encoding/json replaces it
// with U+FFFD in decoded strings but data keeps the raw bytes), nesting
// deeper than MaxDataDepth below the event object, and top-level keys
// given twice (encoding/json keeps the last, a first-key-wins consumer
// sees the first). It is a single iterative pass over the bytes, with no
// recursion and no allocation beyond the top-level keys; it trusts the
// decoder that follows to report malformed JSON, so on malformed input it
// only stops early.
//
// base is the offset of b in the input, for the offsets in reasons.
func scanEvent(b []byte, base int) error {
	var (
		depth   int
		inStr   bool
		esc     bool
		isKey   bool // the string being scanned is a top-level key
		keyNext bool // the next string at depth 1 is a key
		start   int  // where the current string began (its opening quote)
		field   string
		seen    = make(map[string]string, 16) // folded key → key as written
	)
	for i := 0; i < len(b); {
		c := b[i]
		if c >= utf8.RuneSelf {
			r, size := utf8.DecodeRune(b[i:])
			if r == utf8.RuneError && size == 1 {
				if isKey {
					return invalid("", "a key is not valid UTF-8 (byte 0x%02x at offset %d)", c, base+i)
				}
				return invalid(field, "must be valid UTF-8 (byte 0x%02x at offset %d)", c, base+i)
			}
			i += size
			continue
		}
		i++
		if inStr {
			switch {
			case esc:
				esc = false
			case c == '\\':
				esc = true
			case c == '"':
				inStr = false
				if isKey {
					isKey = false
					key := unquoteKey(b[start:i])
					folded := foldKey(key)
					if first, dup := seen[folded]; dup {
						if first == key {
							return invalid(fieldName(key), "appears more than once in the event")
						}
						return invalid(fieldName(key), "appears more than once in the event (as %q and %q)", first, key)
					}
					seen[folded] = key
					field = fieldName(key)
				}
			}
			continue
		}
		switch c {
		case '"':
			inStr, start = true, i-1
			isKey, keyNext = depth == 1 && keyNext, false
		case '{', '[':
			depth++
			if depth > MaxDataDepth+1 {
				return invalid(field, "nests objects and arrays more than the %d levels allowed", MaxDataDepth)
			}
			keyNext = depth == 1 && c == '{'
		case '}', ']':
			depth--
			if depth <= 0 {
				// The end of the event object; the decoder reports
				// anything after it.
				return nil
			}
		case ',':
			if depth == 1 {
				keyNext, field = true, ""
			}
		}
	}
	return nil
}

// unquoteKey returns the text of the JSON string q (quotes included).
func unquoteKey(q []byte) string {
	if bytes.IndexByte(q, '\\') < 0 {
		return string(q[1 : len(q)-1])
	}
	var s string
	if err := json.Unmarshal(q, &s); err != nil {
		// Malformed: the decoder reports it.
		return string(q[1 : len(q)-1])
	}
	return s
}

// foldKey maps every key that encoding/json would match to the same field
// (strings.EqualFold equivalence) to one string: each rune becomes the
// smallest rune of its simple case-folding orbit.
func foldKey(k string) string {
	var sb strings.Builder
	sb.Grow(len(k))
	for _, r := range k {
		m := r
		for f := unicode.SimpleFold(r); f != r; f = unicode.SimpleFold(f) {
			m = min(m, f)
		}
		sb.WriteRune(m)
	}
	return sb.String()
}

// eventFields are the JSON names of Event's fields.
var eventFields = []string{"id", "user_id", "user_ids", "audience", "type", "priority", "title", "body", "data", "collapse_key", "created_at", "ttl"}

// fieldName is the Event field key stands for (encoding/json matches
// names case-insensitively), or key itself for an unknown field.
func fieldName(key string) string {
	for _, f := range eventFields {
		if strings.EqualFold(f, key) {
			return f
		}
	}
	return key
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
			// Report the character (not its first byte) and its position
			// in characters.
			r, _ := utf8.DecodeRuneInString(id[i:])
			return invalid("user_id", "may only contain A-Z a-z 0-9 . _ : @ -, found %q at character %d", r, utf8.RuneCountInString(id[:i])+1)
		}
	}
	return nil
}

// ValidateTopic checks a topic (an audience, a subscription): the user
// id alphabet, 1 to MaxTopicLen characters of [A-Za-z0-9._:@-], so that a
// topic is one URL path segment as it is. Errors name "topic".
func ValidateTopic(topic string) error {
	if topic == "" {
		return invalid("topic", "must not be empty")
	}
	if len(topic) > MaxTopicLen {
		return invalid("topic", "is %d characters, more than the %d allowed", len(topic), MaxTopicLen)
	}
	if err := ValidateUserID(topic); err != nil {
		ve, _ := AsValidationError(err)
		return invalid("topic", "%s", ve.Reason)
	}
	return nil
}
