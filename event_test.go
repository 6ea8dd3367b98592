package herald

import (
	"bytes"
	"encoding/json"
	"fmt"
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

// ids is `"u0","u1",…` for n user ids.
func ids(n int) string {
	var sb strings.Builder
	for i := range n {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `"u%d"`, i)
	}
	return sb.String()
}

func TestDecodeEventAddressing(t *testing.T) {
	const one = "only one of user_id, user_ids or audience may be given"
	cases := []struct {
		name, in, field, reason string
	}{
		{"none", `{"id":"1","type":"t"}`, "user_id", "one of user_id, user_ids or audience is required"},
		{"all null", `{"id":"1","type":"t","user_id":null,"user_ids":null,"audience":null}`, "user_id", "is required"},
		{"user_id and user_ids", `{"id":"1","type":"t","user_id":"a","user_ids":["b"]}`, "user_ids", one},
		{"user_id and audience", `{"id":"1","type":"t","audience":"news","user_id":"a"}`, "audience", one},
		{"user_ids and audience", `{"id":"1","type":"t","audience":"news","user_ids":["a"]}`, "audience", one},
		{"all three", `{"id":"1","type":"t","audience":"news","user_ids":["a"],"user_id":"a"}`, "user_ids", one},
		{"empty user_id with audience", `{"id":"1","type":"t","user_id":"","audience":"news"}`, "audience", one},
		{"user_ids empty", `{"id":"1","type":"t","user_ids":[]}`, "user_ids", "must have 1 to 1000 user ids"},
		{"user_ids 1001", `{"id":"1","type":"t","user_ids":[` + ids(1001) + `]}`, "user_ids", "must have 1 to 1000 user ids, got 1001"},
		{"user_ids 1001 with repeats", `{"id":"1","type":"t","user_ids":[` + ids(1000) + `,"u0"]}`, "user_ids", "must have 1 to 1000"},
		{"user_ids string", `{"id":"1","type":"t","user_ids":"a,b"}`, "user_ids", "must be an array of user ids, got a string"},
		{"user_ids object", `{"id":"1","type":"t","user_ids":{"a":1}}`, "user_ids", "got an object"},
		{"user_ids number", `{"id":"1","type":"t","user_ids":5}`, "user_ids", "got a number"},
		{"element number", `{"id":"1","type":"t","user_ids":["a","b","c",7]}`, "user_ids[3]", "must be a string, got a number"},
		{"element null", `{"id":"1","type":"t","user_ids":["a",null]}`, "user_ids[1]", "must be a string, got null"},
		{"element array", `{"id":"1","type":"t","user_ids":[["a"]]}`, "user_ids[0]", "got an array"},
		{"element empty", `{"id":"1","type":"t","user_ids":["a",""]}`, "user_ids[1]", "must not be empty"},
		{"element alphabet", `{"id":"1","type":"t","user_ids":["a","b","c","d e"]}`, "user_ids[3]", `found ' ' at character 2`},
		{"element long", `{"id":"1","type":"t","user_ids":["` + strings.Repeat("x", 129) + `"]}`, "user_ids[0]", "more than the 128"},
		{"element escaped", `{"id":"1","type":"t","user_ids":["\u00e9"]}`, "user_ids[0]", `found 'é'`},
		{"audience empty", `{"id":"1","type":"t","audience":""}`, "audience", "must not be empty"},
		{"audience alphabet", `{"id":"1","type":"t","audience":"a/b"}`, "audience", "may only contain"},
		{"audience long", `{"id":"1","type":"t","audience":"` + strings.Repeat("x", 129) + `"}`, "audience", "more than the 128"},
		{"audience number", `{"id":"1","type":"t","audience":7}`, "audience", "must be a string"},
		{"duplicate user_ids", `{"id":"1","type":"t","user_ids":["a"],"USER_IDS":["b"]}`, "user_ids", "appears more than once"},
		{"duplicate audience", `{"id":"1","type":"t","audience":"a","Audience":"b"}`, "audience", "appears more than once"},
		{"user_ids too deep", `{"id":"1","type":"t","user_ids":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`, "user_ids", "levels"},
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

func TestDecodeEventMultiRecipient(t *testing.T) {
	e, err := DecodeEvent([]byte(`{"id":"1","type":"t","user_ids":["b","a","b","c","a"]}`), recordTime)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(e.UserIDs, ","); got != "b,a,c" || e.UserID != "" || e.Audience != "" || !e.Multi() {
		t.Fatalf("user_ids %q user_id %q audience %q", got, e.UserID, e.Audience)
	}
	e, err = DecodeEvent([]byte(`{"id":"1","type":"t","user_ids":[`+ids(MaxRecipients)+`],"user_id":null}`), recordTime)
	if err != nil || len(e.UserIDs) != MaxRecipients {
		t.Fatalf("1000 ids: %d %v", len(e.UserIDs), err)
	}
	e, err = DecodeEvent([]byte(`{"id":"1","type":"t","audience":"team:42.eng","user_ids":null}`), recordTime)
	if err != nil || e.Audience != "team:42.eng" || e.UserIDs != nil || !e.Multi() {
		t.Fatalf("audience: %+v %v", e, err)
	}
	e, err = DecodeEvent([]byte(`{"id":"1","type":"t","user_id":"u","audience":null}`), recordTime)
	if err != nil || e.UserID != "u" || e.Multi() {
		t.Fatalf("user_id: %+v %v", e, err)
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
				expectKey = d == 1 && v == '{'
			} else {
				d--
				// A nested value just ended: a key comes next.
				expectKey = d == 1
			}
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
	f.Add([]byte(`{"id":"1","user_ids":["a","b","a"],"type":"t"}`))
	f.Add([]byte(`{"id":"1","user_ids":["a",7,null],"type":"t"}`))
	f.Add([]byte(`{"id":"1","user_ids":[],"type":"t"}`))
	f.Add([]byte(`{"id":"1","user_ids":"a","audience":"x","type":"t"}`))
	f.Add([]byte(`{"id":"1","audience":"team:1","type":"t"}`))
	f.Add([]byte(`{"id":"1","audience":"a b","user_id":null,"type":"t"}`))
	f.Add([]byte(`{"id":"1","user_ids":[["a"]],"Audience":"t","type":"t"}`))
	// An array value followed by keys: shape must see them as keys.
	f.Add([]byte(`{"id":"0","":[],"AudienCe":"t","tYpe":"t"}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := DecodeEvent(b, recordTime)
		if err != nil {
			if _, ok := AsValidationError(err); !ok {
				t.Fatalf("non-validation error %T: %v", err, err)
			}
			return
		}
		// A decoded event satisfies every rule of the contract.
		if e.ID == "" || len(e.ID) > 4*MaxIDLen || e.Type == "" {
			t.Fatalf("accepted invalid event %+v", e)
		}
		// Exactly one address, valid, user_ids distinct.
		switch {
		case e.UserID != "":
			if ValidateUserID(e.UserID) != nil || e.UserIDs != nil || e.Audience != "" {
				t.Fatalf("accepted invalid address %+v", e)
			}
		case e.Audience != "":
			if ValidateTopic(e.Audience) != nil || e.UserIDs != nil {
				t.Fatalf("accepted invalid address %+v", e)
			}
		default:
			if len(e.UserIDs) == 0 || len(e.UserIDs) > MaxRecipients {
				t.Fatalf("accepted %d user ids", len(e.UserIDs))
			}
			seen := map[string]bool{}
			for _, id := range e.UserIDs {
				if ValidateUserID(id) != nil || seen[id] {
					t.Fatalf("accepted user_ids %q", e.UserIDs)
				}
				seen[id] = true
			}
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
