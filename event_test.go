package herald

import (
	"bytes"
	"encoding/json"
	"io"
	"math"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

var recordTime = time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)

func TestDecodeEventValid(t *testing.T) {
	e, err := DecodeEvent([]byte(`{"id":"evt-7f3a","user_id":"u-123","type":"mention",
		"priority":"high","title":"Ada mentioned you","body":"in #general",
		"data":{ "url" : "/c/general/42" },"collapse_key":"thread:42",
		"created_at":"2026-11-22T11:00:00+01:00","ttl":86400,"unknown":[1,2]}`), recordTime)
	if err != nil {
		t.Fatal(err)
	}
	if e.ID != "evt-7f3a" || e.UserID != "u-123" || e.Type != "mention" || e.Priority != PriorityHigh {
		t.Fatalf("decoded %+v", e)
	}
	if string(e.Data) != `{"url":"/c/general/42"}` {
		t.Fatalf("data not compacted: %s", e.Data)
	}
	if !e.CreatedAt.Equal(recordTime) || e.CreatedAt.Location() != time.UTC {
		t.Fatalf("created_at %v", e.CreatedAt)
	}
	if want := recordTime.Add(24 * time.Hour); !e.ExpiresAt().Equal(want) {
		t.Fatalf("expires %v want %v", e.ExpiresAt(), want)
	}
}

func TestDecodeEventDefaults(t *testing.T) {
	e, err := DecodeEvent([]byte(`{"id":"1","user_id":"u","type":"t","data":null}`), recordTime)
	if err != nil {
		t.Fatal(err)
	}
	if e.Priority != PriorityNormal || !e.CreatedAt.Equal(recordTime) || e.Data != nil || !e.ExpiresAt().IsZero() {
		t.Fatalf("defaults not applied: %+v", e)
	}
}

func TestDecodeEventInvalid(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	cases := []struct {
		name, in, field, reason string
	}{
		{"empty", ``, "", "empty event"},
		{"not object", `[1]`, "", "JSON object"},
		{"malformed", `{"id":`, "", "malformed JSON"},
		{"trailing", `{"id":"1","user_id":"u","type":"t"} {}`, "", "trailing data"},
		{"missing id", `{"user_id":"u","type":"t"}`, "id", "required"},
		{"empty id", `{"id":"","user_id":"u","type":"t"}`, "id", "must not be empty"},
		{"id type", `{"id":7,"user_id":"u","type":"t"}`, "id", "must be a string"},
		{"long id", `{"id":"` + long(129) + `","user_id":"u","type":"t"}`, "id", "more than the 128"},
		{"missing user", `{"id":"1","type":"t"}`, "user_id", "required"},
		{"user alphabet", `{"id":"1","user_id":"u 1","type":"t"}`, "user_id", "may only contain"},
		{"user non-ASCII", `{"id":"1","user_id":"ééa😀b","type":"t"}`, "user_id", `found 'é' at character 1`},
		{"user emoji", `{"id":"1","user_id":"ab😀","type":"t"}`, "user_id", `found '😀' at character 3`},
		{"long user", `{"id":"1","user_id":"` + long(129) + `","type":"t"}`, "user_id", "more than the 128"},
		{"missing type", `{"id":"1","user_id":"u"}`, "type", "required"},
		{"long type", `{"id":"1","user_id":"u","type":"` + long(65) + `"}`, "type", "more than the 64"},
		{"priority", `{"id":"1","user_id":"u","type":"t","priority":"urgent"}`, "priority", "one of high, normal, low"},
		{"title", `{"id":"1","user_id":"u","type":"t","title":"` + long(257) + `"}`, "title", "more than the 256"},
		{"body", `{"id":"1","user_id":"u","type":"t","body":"` + long(4097) + `"}`, "body", "more than the 4096"},
		{"data array", `{"id":"1","user_id":"u","type":"t","data":[1]}`, "data", "JSON object"},
		{"data big", `{"id":"1","user_id":"u","type":"t","data":{"k":"` + long(4100) + `"}}`, "data", "more than the 4096"},
		{"created_at", `{"id":"1","user_id":"u","type":"t","created_at":"yesterday"}`, "created_at", "RFC 3339"},
		{"ttl negative", `{"id":"1","user_id":"u","type":"t","ttl":-1}`, "ttl", "non-negative"},
		{"ttl fraction", `{"id":"1","user_id":"u","type":"t","ttl":1.5}`, "ttl", "whole number"},
		{"ttl exponent", `{"id":"1","user_id":"u","type":"t","ttl":1e3}`, "ttl", "whole number"},
		{"ttl string", `{"id":"1","user_id":"u","type":"t","ttl":"10"}`, "ttl", "got a string"},
		{"ttl bool", `{"id":"1","user_id":"u","type":"t","ttl":true}`, "ttl", "got a boolean"},
		{"ttl object", `{"id":"1","user_id":"u","type":"t","ttl":{}}`, "ttl", "got an object"},
		{"ttl above max", `{"id":"1","user_id":"u","type":"t","ttl":31536001}`, "ttl", "more than the 31536000 allowed"},
		// 300 years: time.Duration(ttl)*time.Second wrapped into the past.
		{"ttl 300 years", `{"id":"1","user_id":"u","type":"t","ttl":9467280000}`, "ttl", "more than the 31536000 allowed"},
		{"ttl beyond int64", `{"id":"1","user_id":"u","type":"t","ttl":99999999999999999999999}`, "ttl", "more than the 31536000"},
		{"ttl very negative", `{"id":"1","user_id":"u","type":"t","ttl":-99999999999999999999999}`, "ttl", "non-negative"},
		{"data too deep", `{"id":"1","user_id":"u","type":"t","data":` + nested(MaxDataDepth+1) + `}`, "data", "more than the 32 levels"},
		// The reported attack: 1,900 levels in 3.8 KiB.
		{"data 1900 deep", `{"id":"1","user_id":"u","type":"t","data":{"a":` + strings.Repeat("[", 1899) + strings.Repeat("]", 1899) + `}}`, "data", "more than the 32 levels"},
		{"data deep arrays", `{"id":"1","user_id":"u","type":"t","data":{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}}`, "data", "levels"},
		{"unknown field too deep", `{"id":"1","user_id":"u","type":"t","extra":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "extra", "levels"},
		{"utf8 title", "{\"id\":\"1\",\"user_id\":\"u\",\"type\":\"t\",\"title\":\"a\xffb\"}", "title", "valid UTF-8 (byte 0xff at offset 45)"},
		{"utf8 data value", "{\"id\":\"1\",\"user_id\":\"u\",\"type\":\"t\",\"data\":{\"k\":\"\xc3\"}}", "data", "valid UTF-8"},
		{"utf8 data key", "{\"id\":\"1\",\"user_id\":\"u\",\"type\":\"t\",\"data\":{\"\xfe\":1}}", "data", "valid UTF-8"},
		{"utf8 top key", "{\"id\":\"1\",\"user_id\":\"u\",\"type\":\"t\",\"k\xff\":1}", "", "a key is not valid UTF-8"},
		{"utf8 unknown value", "{\"id\":\"1\",\"user_id\":\"u\",\"type\":\"t\",\"x\":[\"\xff\"]}", "x", "valid UTF-8"},
		{"utf8 surrogate", "{\"id\":\"1\",\"user_id\":\"u\",\"type\":\"t\",\"body\":\"\xed\xa0\x80\"}", "body", "valid UTF-8"},
		{"utf8 overlong", "{\"id\":\"1\",\"user_id\":\"u\",\"type\":\"t\",\"body\":\"\xc0\xaf\"}", "body", "valid UTF-8"},
		{"utf8 truncated", "{\"id\":\"1\",\"user_id\":\"u\",\"type\":\"t\",\"body\":\"\xe2\x82\"}", "body", "valid UTF-8"},
		{"duplicate user_id", `{"id":"1","user_id":"victim","type":"t","user_id":"attacker"}`, "user_id", "appears more than once"},
		{"duplicate case", `{"id":"1","user_id":"victim","type":"t","USER_ID":"attacker"}`, "user_id", `as "user_id" and "USER_ID"`},
		{"duplicate escaped", `{"id":"1","user_id":"victim","type":"t","user\u005fid":"attacker"}`, "user_id", "appears more than once"},
		{"duplicate data", `{"id":"1","user_id":"u","type":"t","data":{},"data":{"a":1}}`, "data", "appears more than once"},
		{"duplicate unknown", `{"id":"1","user_id":"u","type":"t","x":1,"x":2}`, "x", "appears more than once"},
		{"too big", `{"id":"1","user_id":"u","type":"t","body":"` + long(MaxEventBytes) + `"}`, "", "more than the 65536"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := DecodeEvent([]byte(c.in), recordTime)
			ve, ok := AsValidationError(err)
			if !ok {
				t.Fatalf("want ValidationError, got %v", err)
			}
			if ve.Field != c.field || !strings.Contains(ve.Reason, c.reason) {
				t.Fatalf("got field %q reason %q; want field %q reason containing %q", ve.Field, ve.Reason, c.field, c.reason)
			}
		})
	}
}

// nested is a data object n levels deep: {"a":{"a":...{}}}.
func nested(n int) string {
	return strings.Repeat(`{"a":`, n-1) + "{}" + strings.Repeat("}", n-1)
}

func TestDecodeEventAccepted(t *testing.T) {
	cases := []struct {
		name, in string
		check    func(t *testing.T, e Event)
	}{
		{"ttl max", `{"id":"1","user_id":"u","type":"t","ttl":31536000}`, func(t *testing.T, e Event) {
			if want := recordTime.Add(MaxTTL * time.Second); e.TTL != MaxTTL || !e.ExpiresAt().Equal(want) {
				t.Fatalf("ttl %d expires %v, want %v", e.TTL, e.ExpiresAt(), want)
			}
		}},
		{"ttl null", `{"id":"1","user_id":"u","type":"t","ttl":null}`, func(t *testing.T, e Event) {
			if e.TTL != 0 || !e.ExpiresAt().IsZero() {
				t.Fatalf("ttl %d", e.TTL)
			}
		}},
		{"ttl zero", `{"id":"1","user_id":"u","type":"t","ttl":0}`, func(t *testing.T, e Event) {
			if e.TTL != 0 {
				t.Fatalf("ttl %d", e.TTL)
			}
		}},
		{"data at max depth", `{"id":"1","user_id":"u","type":"t","data":` + nested(MaxDataDepth) + `}`, func(t *testing.T, e Event) {
			if len(e.Data) == 0 {
				t.Fatal("data lost")
			}
		}},
		{"brackets in strings", `{"id":"1","user_id":"u","type":"t","data":{"a":"` + strings.Repeat("[{", 100) + `\"{"}}`, func(t *testing.T, e Event) {
			if !strings.Contains(string(e.Data), strings.Repeat("[{", 100)) {
				t.Fatalf("data %s", e.Data)
			}
		}},
		{"valid UTF-8", `{"id":"1","user_id":"u","type":"t","title":"Ada ✓ 🎉","data":{"ключ":"значение"}}`, func(t *testing.T, e Event) {
			if e.Title != "Ada ✓ 🎉" || string(e.Data) != `{"ключ":"значение"}` {
				t.Fatalf("%q %s", e.Title, e.Data)
			}
		}},
		{"escaped quote in key", `{"id":"1","user_id":"u","type":"t","a\"b":1,"a\"c":2}`, nil},
		// Only top-level keys must be unique: data is the producer's and
		// is stored as given.
		{"duplicate inside data", `{"id":"1","user_id":"u","type":"t","data":{"a":1,"a":2}}`, func(t *testing.T, e Event) {
			if string(e.Data) != `{"a":1,"a":2}` {
				t.Fatalf("data %s", e.Data)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := DecodeEvent([]byte(c.in), recordTime)
			if err != nil {
				t.Fatal(err)
			}
			if c.check != nil {
				c.check(t, e)
			}
		})
	}
}

func TestExpiresAtSaturates(t *testing.T) {
	created := time.Date(2026, 1, 1, 0, 0, 0, 5, time.UTC)
	// 300 years and the largest TTL: both after created_at, never wrapped
	// into the past.
	for _, ttl := range []int64{9467280000, math.MaxInt64 / int64(time.Second), math.MaxInt64/int64(time.Second) + 1, math.MaxInt64} {
		e := Event{CreatedAt: created, TTL: ttl}
		if exp := e.ExpiresAt(); !exp.After(created) {
			t.Errorf("ttl %d: expires %v, not after %v", ttl, exp, created)
		}
	}
	if got := (&Event{CreatedAt: created, TTL: math.MaxInt64}).ExpiresAt(); !got.Equal(maxExpiry) {
		t.Errorf("expires %v, want the saturated %v", got, maxExpiry)
	}
	e := Event{CreatedAt: created, TTL: 9467280000}
	if got, want := e.ExpiresAt(), time.Unix(created.Unix()+9467280000, 5).UTC(); !got.Equal(want) {
		t.Errorf("expires %v, want %v", got, want)
	}
}

// shape returns the nesting depth of the JSON value b and its top-level
// keys (when an object), read with encoding/json's iterative tokenizer.
func shape(t *testing.T, b []byte) (depth int, keys []string) {
	dec := json.NewDecoder(bytes.NewReader(b))
	d := 0
	expectKey := false
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			return depth, keys
		}
		if err != nil {
			t.Fatalf("accepted event does not tokenize: %v", err)
		}
		switch v := tok.(type) {
		case json.Delim:
			if v == '{' || v == '[' {
				d++
				depth = max(depth, d)
			} else {
				d--
			}
			expectKey = d == 1 && v == '{'
			continue
		case string:
			if d == 1 && expectKey {
				keys = append(keys, v)
				expectKey = false
				continue
			}
		}
		if d == 1 {
			expectKey = true
		}
	}
}

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"id":"evt-1","user_id":"u-1","type":"mention","priority":"low","data":{"a":1},"ttl":5}`))
	f.Add([]byte(`{"id":"1","user_id":"u","type":"t","created_at":"2026-11-22T10:00:00Z"}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`{"id":"1","user_id":"u","type":"t","ttl":"10"}`))
	f.Add([]byte(`{"id":"1","user_id":"u","type":"t","ttl":31536000}`))
	f.Add([]byte(`{"id":"1","user_id":"u","type":"t","ttl":9467280000}`))
	f.Add([]byte(`{"id":"1","user_id":"u","type":"t","data":` + nested(MaxDataDepth) + `}`))
	f.Add([]byte(`{"id":"1","user_id":"u","type":"t","data":` + nested(MaxDataDepth+1) + `}`))
	f.Add([]byte(`{"id":"1","user_id":"u","type":"t","data":{"a":"[[{{\"}"}}`))
	f.Add([]byte("{\"id\":\"1\",\"user_id\":\"u\",\"type\":\"t\",\"title\":\"\xff\"}"))
	f.Add([]byte("{\"id\":\"1\",\"user_id\":\"u\",\"type\":\"t\",\"data\":{\"\xc3\":1}}"))
	f.Add([]byte(`{"id":"1","user_id":"a","type":"t","User_Id":"b"}`))
	f.Add([]byte(`{"id":"1","user_id":"a","type":"t","user\u005fid":"b"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b, recordTime)
		if err != nil {
			if _, ok := AsValidationError(err); !ok {
				t.Fatalf("non-validation error %T: %v", err, err)
			}
			return
		}
		// A decoded event satisfies every rule of the contract.
		if e.ID == "" || len(e.ID) > 4*MaxIDLen || ValidateUserID(e.UserID) != nil || e.Type == "" {
			t.Fatalf("accepted invalid event %+v", e)
		}
		switch e.Priority {
		case PriorityHigh, PriorityNormal, PriorityLow:
		default:
			t.Fatalf("priority %q", e.Priority)
		}
		if e.TTL < 0 || e.TTL > MaxTTL || len(e.Data) > MaxDataBytes || e.CreatedAt.IsZero() && !recordTime.IsZero() {
			t.Fatalf("accepted %+v", e)
		}
		if e.TTL > 0 && !e.ExpiresAt().After(e.CreatedAt) {
			t.Fatalf("ttl %d expires %v, before created_at %v", e.TTL, e.ExpiresAt(), e.CreatedAt)
		}
		// What was accepted is valid UTF-8, nests at most MaxDataDepth
		// below the event and names each top-level key once (as
		// encoding/json matches them).
		if !utf8.Valid(b) {
			t.Fatalf("accepted invalid UTF-8 %q", b)
		}
		depth, keys := shape(t, b)
		if depth > MaxDataDepth+1 {
			t.Fatalf("accepted depth %d", depth)
		}
		for i, k := range keys {
			for _, k2 := range keys[:i] {
				if strings.EqualFold(k, k2) {
					t.Fatalf("accepted duplicate keys %q and %q", k2, k)
				}
			}
		}
	})
}

func BenchmarkDecodeEvent(b *testing.B) {
	raw := []byte(`{"id":"evt-7f3a","user_id":"u-123","type":"mention","priority":"normal",
		"title":"Ada mentioned you","body":"in #general: have a look at this","data":{"url":"/c/general/42"},
		"collapse_key":"thread:42","created_at":"2026-11-22T10:00:00Z","ttl":86400}`)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeEvent(raw, recordTime); err != nil {
			b.Fatal(err)
		}
	}
}
