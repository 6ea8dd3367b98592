package herald

import (
	"strings"
	"testing"
	"time"
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

func FuzzDecodeEvent(f *testing.F) {
	f.Add([]byte(`{"id":"evt-1","user_id":"u-1","type":"mention","priority":"low","data":{"a":1},"ttl":5}`))
	f.Add([]byte(`{"id":"1","user_id":"u","type":"t","created_at":"2026-11-22T10:00:00Z"}`))
	f.Add([]byte(`{"id":1}`))
	f.Add([]byte(`[]`))
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
		if e.TTL < 0 || len(e.Data) > MaxDataBytes || e.CreatedAt.IsZero() && !recordTime.IsZero() {
			t.Fatalf("accepted %+v", e)
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
