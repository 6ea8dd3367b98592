package pipeline

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/topics"
	"github.com/twmb/franz-go/pkg/kgo"
)

// TestDecodeFanoutRecord: what the fan-out stage accepts, and the field
// named for what it refuses.
func TestDecodeFanoutRecord(t *testing.T) {
	t.Parallel()
	aud := `{"id":"e1","audience":"news","type":"t"}`
	ids := `{"id":"e2","user_ids":["a","b"],"type":"t"}`
	cases := []struct {
		name, value, field string // field "" = accepted
	}{
		{"first page of an audience", `{"event":` + aud + `}`, ""},
		{"continuation of an audience", `{"event":` + aud + `,"after":"m-1","sent":3}`, ""},
		{"push page of a large audience", `{"event":` + aud + `,"feed":4,"after":"m-1"}`, ""},
		{"user_ids page", `{"event":` + ids + `,"next":1}`, ""},
		{"catch-up of several users", `{"catch_up":{"topic":"news","users":["a","b"],"trigger":"live"}}`, ""},
		{"catch-up continuation", `{"catch_up":{"topic":"news","users":["a"],"after":100,"trigger":"read"}}`, ""},
		{"no event", `{}`, "event"},
		{"single-recipient event", `{"event":{"id":"e3","user_id":"a","type":"t"}}`, "event"},
		{"feed for user_ids", `{"event":` + ids + `,"feed":2}`, "feed"},
		{"negative feed", `{"event":` + aud + `,"feed":-1}`, "feed"},
		{"catch-up with an event", `{"event":` + aud + `,"catch_up":{"topic":"news","users":["a"],"trigger":"live"}}`, "catch_up"},
		{"catch-up without users", `{"catch_up":{"topic":"news","users":[],"trigger":"live"}}`, "catch_up.users"},
		{"catch-up with a bad user", `{"catch_up":{"topic":"news","users":[""],"trigger":"live"}}`, "catch_up.users"},
		{"catch-up with a bad topic", `{"catch_up":{"topic":"","users":["a"],"trigger":"live"}}`, "catch_up.topic"},
		{"catch-up after for several", `{"catch_up":{"topic":"news","users":["a","b"],"after":3,"trigger":"live"}}`, "catch_up.after"},
		{"catch-up unknown trigger", `{"catch_up":{"topic":"news","users":["a"],"trigger":"later"}}`, "catch_up.trigger"},
		{"catch-up unknown field", `{"catch_up":{"topic":"news","users":["a"],"trigger":"live","x":1}}`, ""},
	}
	for _, c := range cases {
		_, err := DecodeFanoutRecord(&kgo.Record{Value: []byte(c.value)})
		var ve *herald.ValidationError
		switch {
		case c.name == "catch-up unknown field":
			if !errors.As(err, &ve) {
				t.Errorf("%s: %v, want a ValidationError", c.name, err)
			}
		case c.field == "" && err != nil:
			t.Errorf("%s: refused: %v", c.name, err)
		case c.field != "" && (!errors.As(err, &ve) || ve.Field != c.field):
			t.Errorf("%s: %v, want a ValidationError naming %q", c.name, err, c.field)
		}
	}
	many := `{"catch_up":{"topic":"news","users":[` + strings.Repeat(`"u",`, MaxCatchUpUsers) + `"u"],"trigger":"live"}}`
	if _, err := DecodeFanoutRecord(&kgo.Record{Value: []byte(many)}); err == nil {
		t.Errorf("a catch-up of %d users accepted", MaxCatchUpUsers+1)
	}
}

// TestFanoutRecordKeys: an audience's records and a catch-up of several
// members go by topic, a single member's catch-up by user, user_ids by
// event id.
func TestFanoutRecordKeys(t *testing.T) {
	t.Parallel()
	c := NewCodec(topics.WithPrefix(""))
	for _, k := range []struct {
		f    FanoutRecord
		want string
	}{
		{FanoutRecord{Event: herald.Event{ID: "e", Audience: "news"}}, "news"},
		{FanoutRecord{Event: herald.Event{ID: "e", UserIDs: []string{"a"}}}, "e"},
		{FanoutRecord{CatchUp: &CatchUpRecord{Topic: "news", Users: []string{"a", "b"}, Trigger: TriggerLive}}, "news"},
		{FanoutRecord{CatchUp: &CatchUpRecord{Topic: "news", Users: []string{"a"}, Trigger: TriggerRead}}, "a"},
	} {
		r, err := c.Fanout(&k.f)
		if err != nil || string(r.Key) != k.want {
			t.Errorf("%+v: key %q, %v; want %q", k.f, r.Key, err, k.want)
		}
	}
}

// FuzzDecodeFanoutRecord: the decoder never panics, refuses only with a
// ValidationError, and what it accepts encodes back to a record it decodes
// to the same value.
func FuzzDecodeFanoutRecord(f *testing.F) {
	f.Add([]byte(`{"event":{"id":"e1","audience":"news","type":"t"},"after":"m","sent":2}`))
	f.Add([]byte(`{"event":{"id":"e1","audience":"news","type":"t"},"feed":3}`))
	f.Add([]byte(`{"event":{"id":"e2","user_ids":["a","b"],"type":"t"},"next":1}`))
	f.Add([]byte(`{"catch_up":{"topic":"news","users":["a"],"after":7,"trigger":"read"}}`))
	f.Add([]byte(`{"catch_up":{"topic":"news","users":["a","b"],"trigger":"push"}}`))
	f.Add([]byte(`{"catch_up":null}`))
	f.Add([]byte(`null`))
	codec := NewCodec(topics.WithPrefix(""))
	f.Fuzz(func(t *testing.T, value []byte) {
		fr, err := DecodeFanoutRecord(&kgo.Record{Value: value})
		if err != nil {
			var ve *herald.ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error %v is not a ValidationError", err)
			}
			return
		}
		if (fr.CatchUp == nil) == (fr.Event.ID == "") {
			t.Fatalf("accepted %+v: neither or both of an event and a catch-up", fr)
		}
		again, err := codec.Fanout(&fr)
		if err != nil {
			t.Fatal(err)
		}
		back, err := DecodeFanoutRecord(again)
		if err != nil {
			t.Fatalf("round trip of %s: %v", again.Value, err)
		}
		if fr.CatchUp != nil && !reflect.DeepEqual(back.CatchUp, fr.CatchUp) {
			t.Fatalf("round trip of %+v: %+v", fr.CatchUp, back.CatchUp)
		}
		if fr.CatchUp == nil && (back.Event.ID != fr.Event.ID || back.Next != fr.Next || back.After != fr.After || back.Sent != fr.Sent || back.Feed != fr.Feed) {
			t.Fatalf("round trip of %+v: %+v", fr, back)
		}
	})
}
