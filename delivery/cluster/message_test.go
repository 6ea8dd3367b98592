package cluster

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
)

func sampleNotification() herald.Notification {
	return herald.Notification{
		ID: "01JD0000000000000000000000", Seq: 42, Prev: 41, EventID: "evt-7f3a", Type: "mention",
		Priority: herald.PriorityHigh, Title: "Ada mentioned you", Body: "in #general",
		Data: json.RawMessage(`{"url":"/c/general/42"}`), CreatedAt: time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		UserID: "u-123",
	}
}

func TestNotificationMessageRoundTrip(t *testing.T) {
	n := sampleNotification()
	b, err := encodeNotification("u-123", &n)
	if err != nil {
		t.Fatal(err)
	}
	// The wire form is the documented compact one.
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		t.Fatal(err)
	}
	if string(raw["k"]) != `"n"` || string(raw["u"]) != `"u-123"` || raw["n"] == nil || raw["c"] != nil || len(raw) != 3 {
		t.Fatalf("wire form: %s", b)
	}
	m, err := decodeMessage(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.Kind != kindNotification || m.UserID != "u-123" {
		t.Fatalf("decoded %+v", m)
	}
	got := m.Notification
	if got.ID != n.ID || got.Seq != 42 || got.Prev != 41 || got.EventID != n.EventID || got.Type != n.Type ||
		got.Priority != n.Priority || got.Title != n.Title || got.Body != n.Body || string(got.Data) != string(n.Data) ||
		!got.CreatedAt.Equal(n.CreatedAt) || got.UserID != "u-123" {
		t.Fatalf("round trip: got %+v, want %+v", got, n)
	}
}

func TestUnreadMessageRoundTrip(t *testing.T) {
	for _, count := range []int64{0, 1, 1 << 40} {
		b, err := encodeUnread("u-1", count)
		if err != nil {
			t.Fatal(err)
		}
		m, err := decodeMessage(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if m.Kind != kindUnread || m.UserID != "u-1" || m.Unread != count {
			t.Fatalf("%s decoded as %+v", b, m)
		}
	}
	if b, _ := encodeUnread("u-1", 0); string(b) != `{"k":"u","u":"u-1","c":0}` {
		t.Fatalf("wire form: %s", b)
	}
}

func TestMembershipMessageRoundTrip(t *testing.T) {
	for _, sub := range []bool{true, false} {
		b, err := encodeMembership("u-1", "team:42", sub)
		if err != nil {
			t.Fatal(err)
		}
		m, err := decodeMessage(b)
		if err != nil {
			t.Fatalf("%s: %v", b, err)
		}
		if m.Kind != kindMembership || m.UserID != "u-1" || m.Topic != "team:42" || m.Subscribed != sub {
			t.Fatalf("%s decoded as %+v", b, m)
		}
	}
	if b, _ := encodeMembership("u-1", "t", false); string(b) != `{"k":"m","u":"u-1","t":"t","s":false}` {
		t.Fatalf("wire form: %s", b)
	}
}

func TestDecodeMessageRefuses(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"not json", `nope`, "invalid character"},
		{"array", `[]`, "cannot unmarshal"},
		{"no user", `{"k":"u","c":1}`, "user_id"},
		{"bad user", `{"k":"u","u":"a b","c":1}`, "user_id"},
		{"unknown kind", `{"k":"x","u":"u1"}`, "unknown kind"},
		{"no kind", `{"u":"u1","c":1}`, "unknown kind"},
		{"n without n", `{"k":"n","u":"u1"}`, "without n"},
		{"n with null", `{"k":"n","u":"u1","n":null}`, "without n"},
		{"seq 0", `{"k":"n","u":"u1","n":{"seq":0}}`, "seq 0"},
		{"prev not below seq", `{"k":"n","u":"u1","n":{"seq":3,"prev":3}}`, "prev 3"},
		{"u without c", `{"k":"u","u":"u1"}`, "non-negative c"},
		{"negative c", `{"k":"u","u":"u1","c":-1}`, "non-negative c"},
		{"c not a number", `{"k":"u","u":"u1","c":"1"}`, "cannot unmarshal"},
		{"m without t", `{"k":"m","u":"u1","s":true}`, "without t and s"},
		{"m without s", `{"k":"m","u":"u1","t":"x"}`, "without t and s"},
		{"m with a bad topic", `{"k":"m","u":"u1","t":"","s":true}`, "t:"},
		{"too big", `{"k":"u","u":"u1","c":1,"x":"` + strings.Repeat("a", maxMessageBytes) + `"}`, "more than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeMessage([]byte(tc.in))
			if !errors.Is(err, errBadMessage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want errBadMessage containing %q", err, tc.want)
			}
		})
	}
}

func TestPreferencesAndBroadcastMessagesRoundTrip(t *testing.T) {
	p := herald.DefaultPreferences()
	p.MutedTypes = []string{"promo", "like"}
	p.Channels.InApp = false
	b, err := encodePreferences("u-9", &p)
	if err != nil {
		t.Fatal(err)
	}
	m, err := decodeMessage(b)
	if err != nil || m.Kind != kindPreferences || m.UserID != "u-9" || m.Preferences.Channels.InApp ||
		!slices.Equal(m.Preferences.MutedTypes, []string{"like", "promo"}) {
		t.Fatalf("%s decoded to %+v, %v", b, m, err)
	}
	bc := herald.Broadcast{EventID: "big-1", Topic: "team:7", Type: "release", Priority: herald.PriorityHigh,
		Title: "v2", Data: json.RawMessage(`{"v":2}`), CreatedAt: time.Date(2026, 12, 4, 5, 0, 0, 0, time.UTC)}
	if b, err = encodeBroadcast(&bc); err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil || len(raw) != 2 || raw["u"] != nil {
		t.Fatalf("wire form %s: no user, only k and b", b)
	}
	m, err = decodeMessage(b)
	if err != nil || m.Kind != kindBroadcast || m.UserID != "" || m.Broadcast.EventID != "big-1" ||
		m.Broadcast.Topic != "team:7" || string(m.Broadcast.Data) != `{"v":2}` || !m.Broadcast.CreatedAt.Equal(bc.CreatedAt) {
		t.Fatalf("%s decoded to %+v, %v", b, m, err)
	}
}

func TestDecodeBroadcastAndPreferencesRefused(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"b without b", `{"k":"b"}`, "without b"},
		{"b with a user", `{"k":"b","u":"u1","b":{"event_id":"e","topic":"t"}}`, "with a user"},
		{"b without event id", `{"k":"b","b":{"topic":"t"}}`, "event_id"},
		{"b with a bad topic", `{"k":"b","b":{"event_id":"e","topic":"a b"}}`, "b.topic"},
		{"p without p", `{"k":"p","u":"u1"}`, "without p"},
		{"p without user", `{"k":"p","p":{}}`, "u:"},
		{"p invalid", `{"k":"p","u":"u1","p":{"quiet_hours":{"start":"25:00","end":"07:00"}}}`, "p:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeMessage([]byte(tc.in))
			if !errors.Is(err, errBadMessage) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want errBadMessage containing %q", err, tc.want)
			}
		})
	}
}

func TestDecodeMessageIgnoresUnknownFields(t *testing.T) {
	m, err := decodeMessage([]byte(`{"k":"u","u":"u1","c":5,"g":"gw-9","future":[1,2]}`))
	if err != nil || m.Unread != 5 {
		t.Fatalf("%+v %v", m, err)
	}
}

func FuzzDecodeMessage(f *testing.F) {
	n := sampleNotification()
	b, _ := encodeNotification("u-123", &n)
	f.Add(b)
	b, _ = encodeUnread("u-1", 3)
	f.Add(b)
	f.Add([]byte(`{"k":"n","u":"u1","n":{"seq":1,"data":{"a":[1,{"b":null}]}}}`))
	f.Add([]byte(`{"k":"u","u":"","c":-1}`))
	b, _ = encodeMembership("u-1", "team:42", true)
	f.Add(b)
	f.Add([]byte(`{"k":"m","u":"u1","t":"a b","s":null}`))
	f.Add([]byte(`{"k":"n","u":"u1","n":{"seq":18446744073709551615,"prev":18446744073709551614,"created_at":"x"}}`))
	p := herald.DefaultPreferences()
	b, _ = encodePreferences("u-1", &p)
	f.Add(b)
	b, _ = encodeBroadcast(&herald.Broadcast{EventID: "e", Topic: "news", Type: "x", Data: json.RawMessage(`[1]`)})
	f.Add(b)
	f.Add([]byte(`{"k":"b","b":{"event_id":"","topic":"t"}}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := decodeMessage(in)
		if err != nil {
			if !errors.Is(err, errBadMessage) {
				t.Fatalf("error not wrapping errBadMessage: %v", err)
			}
			return
		}
		// Whatever is accepted is valid and survives re-encoding.
		if m.Kind != kindBroadcast && herald.ValidateUserID(m.UserID) != nil {
			t.Fatalf("accepted user %q", m.UserID)
		}
		var again []byte
		switch m.Kind {
		case kindNotification:
			if m.Notification.Seq == 0 || m.Notification.Prev >= m.Notification.Seq || m.Notification.UserID != m.UserID {
				t.Fatalf("accepted %+v", m.Notification)
			}
			again, err = encodeNotification(m.UserID, &m.Notification)
		case kindUnread:
			if m.Unread < 0 {
				t.Fatalf("accepted unread %d", m.Unread)
			}
			again, err = encodeUnread(m.UserID, m.Unread)
		case kindMembership:
			if herald.ValidateTopic(m.Topic) != nil {
				t.Fatalf("accepted topic %q", m.Topic)
			}
			again, err = encodeMembership(m.UserID, m.Topic, m.Subscribed)
		case kindPreferences:
			if m.Preferences.Validate() != nil {
				t.Fatalf("accepted preferences %+v", m.Preferences)
			}
			again, err = encodePreferences(m.UserID, &m.Preferences)
		case kindBroadcast:
			if m.UserID != "" || m.Broadcast.EventID == "" || herald.ValidateTopic(m.Broadcast.Topic) != nil {
				t.Fatalf("accepted broadcast %+v", m)
			}
			again, err = encodeBroadcast(&m.Broadcast)
		default:
			t.Fatalf("accepted kind %q", m.Kind)
		}
		if err != nil {
			t.Fatalf("re-encode %+v: %v", m, err)
		}
		m2, err := decodeMessage(again)
		if err != nil {
			t.Fatalf("re-decode %s: %v", again, err)
		}
		if m2.Kind != m.Kind || m2.UserID != m.UserID || m2.Unread != m.Unread || m2.Notification.Seq != m.Notification.Seq ||
			m2.Topic != m.Topic || m2.Subscribed != m.Subscribed || m2.Broadcast.EventID != m.Broadcast.EventID ||
			m2.Broadcast.Topic != m.Broadcast.Topic || !slices.Equal(m2.Preferences.MutedTypes, m.Preferences.MutedTypes) {
			t.Fatalf("round trip changed %+v into %+v", m, m2)
		}
	})
}
