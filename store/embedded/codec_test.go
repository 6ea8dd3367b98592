package embedded

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
)

func TestCodecRoundTrip(t *testing.T) {
	cases := []herald.Notification{
		{}, // every field empty, zero time
		{
			ID: "01JD0000000000000000000000", Prev: math.MaxUint64 - 1, EventID: "evt-7f3a", Type: "mention",
			Priority: herald.PriorityLow, Title: "Ada ✓", Body: string(bytes.Repeat([]byte("x"), 5000)),
			Data: []byte(`{"url":"/c/general/42"}`), CreatedAt: time.Date(2026, 11, 22, 10, 0, 0, 999999999, time.UTC),
		},
		{EventID: "e", CreatedAt: time.Date(1960, 1, 1, 0, 0, 0, 1, time.FixedZone("x", 3600))},
	}
	for i, in := range cases {
		b := encodeNotification(&in)
		out, err := decodeNotification(b, "user", 7, true)
		if err != nil {
			t.Fatalf("case %d: %v", i, err)
		}
		if out.UserID != "user" || out.Seq != 7 || !out.Read {
			t.Fatalf("case %d: key fields %q %d %v", i, out.UserID, out.Seq, out.Read)
		}
		if out.ID != in.ID || out.Prev != in.Prev || out.EventID != in.EventID || out.Type != in.Type ||
			out.Priority != in.Priority || out.Title != in.Title || out.Body != in.Body ||
			!bytes.Equal(out.Data, in.Data) || !out.CreatedAt.Equal(in.CreatedAt) {
			t.Fatalf("case %d: round trip\n got %+v\nwant %+v", i, out, in)
		}
		if len(in.Data) > 0 && &out.Data[0] == &b[len(b)-len(in.Data)] {
			t.Fatalf("case %d: Data aliases the record", i)
		}
		for cut := range len(b) {
			if _, err := decodeNotification(b[:cut], "user", 7, false); !errors.Is(err, errCorrupt) {
				t.Fatalf("case %d: truncated to %d bytes decoded (%v)", i, cut, err)
			}
		}
		if _, err := decodeNotification(append(b, 0), "user", 7, false); !errors.Is(err, errCorrupt) {
			t.Fatalf("case %d: trailing byte accepted (%v)", i, err)
		}
	}
}

func FuzzDecodeNotification(f *testing.F) {
	n := herald.Notification{ID: "id", EventID: "e", Type: "t", Data: []byte(`{}`), CreatedAt: time.Unix(1, 2)}
	f.Add(encodeNotification(&n))
	f.Add([]byte{recordV1})
	f.Add([]byte{2, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeNotification(b, "u", 1, false)
		if err != nil {
			return
		}
		// Whatever decodes must encode back to the same bytes' meaning.
		again, err := decodeNotification(encodeNotification(&got), "u", 1, false)
		if err != nil || again.ID != got.ID || again.Body != got.Body || !again.CreatedAt.Equal(got.CreatedAt) {
			t.Fatalf("re-encode of %x: %+v vs %+v (%v)", b, again, got, err)
		}
	})
}
