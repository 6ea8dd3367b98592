package storetest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// wantInvalid fails unless err is (or wraps) a *herald.ValidationError
// whose field starts with field.
func wantInvalid(t *testing.T, what string, err error, field string) {
	t.Helper()
	var ve *herald.ValidationError
	if !errors.As(err, &ve) {
		t.Errorf("%s: got %v, want a *herald.ValidationError on %s", what, err, field)
		return
	}
	if !strings.HasPrefix(ve.Field, field) {
		t.Errorf("%s: ValidationError on %q (%v), want %s", what, ve.Field, ve, field)
	}
}

// tooLongUserID is longer than every store allows (embedded 255 bytes,
// Cassandra 1024).
var tooLongUserID = strings.Repeat("u", 1025)

// Every method taking a user id refuses the empty one and one longer than
// any store allows, with a *herald.ValidationError on user_id.
func (s *suite) rejectsBadUserIDs(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	for _, u := range []string{"", tooLongUserID} {
		name := "empty user id"
		if u != "" {
			name = "1025-byte user id"
		}
		calls := map[string]func() error{
			"Append": func() error {
				_, err := w.Append(ctx, []herald.Notification{notif(u, "e-1")})
				return err
			},
			"List":        func() error { _, err := st.List(ctx, u, 0, 10, false); return err },
			"LastSeq":     func() error { _, err := st.LastSeq(ctx, u); return err },
			"UnreadCount": func() error { _, err := st.UnreadCount(ctx, u); return err },
			"MarkRead":    func() error { _, err := st.MarkRead(ctx, u, []uint64{1}); return err },
			"MarkAllRead": func() error { _, err := st.MarkAllRead(ctx, u); return err },
			"Claim":       func() error { _, err := st.Claim(ctx, u, "e-1", "t/0/1"); return err },
			"GetPreferences": func() error {
				_, err := st.GetPreferences(ctx, u)
				return err
			},
			"PutPreferences": func() error { return st.PutPreferences(ctx, u, herald.DefaultPreferences()) },
			"PutDevice": func() error {
				return st.PutDevice(ctx, herald.Device{UserID: u, Platform: "ios", Token: s.token("bad-user")})
			},
			"Devices":      func() error { _, err := st.Devices(ctx, u); return err },
			"DeleteDevice": func() error { return st.DeleteDevice(ctx, u, "tok") },
			"PutPolicy":    func() error { return w.PutPolicy(ctx, u, []byte("s"), nil) },
			"PolicyState":  func() error { _, err := st.PolicyState(ctx, u); return err },
		}
		for method, call := range calls {
			wantInvalid(t, method+" with "+name, call(), "user_id")
		}
	}
}

// Append refuses a notification without event id or with one longer than
// 1024 bytes, and stores nothing of a batch holding one.
func (s *suite) rejectsBadEventIDs(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("badevent")
	for _, bad := range []string{"", strings.Repeat("e", 1025)} {
		batch := []herald.Notification{notif(u, "fine-1"), notif(u, bad), notif(u, "fine-2")}
		_, err := w.Append(ctx, batch)
		wantInvalid(t, "Append with a bad event id", err, "event_id")
	}
	if last, err := st.LastSeq(ctx, u); err != nil || last != 0 {
		t.Fatalf("a batch refused at validation stored something: LastSeq = %d, %v", last, err)
	}
	_, err := st.Claim(ctx, u, "", "t/0/1")
	wantInvalid(t, "Claim with an empty event id", err, "event_id")
}

// PutPreferences refuses what Preferences.Validate refuses, keeping the
// previous preferences, and stores valid ones normalised.
func (s *suite) preferencesValidated(t *testing.T) {
	st, ctx := s.open(t)
	u := s.user("prefs-invalid")
	for _, c := range []struct {
		what  string
		p     herald.Preferences
		field string
	}{
		{"empty muted type", herald.Preferences{MutedTypes: []string{"like", ""}}, "muted_types"},
		{"muted type too long", herald.Preferences{MutedTypes: []string{strings.Repeat("t", herald.MaxTypeLen+1)}}, "muted_types"},
		{"bad quiet hours start", herald.Preferences{QuietHours: &herald.QuietHours{Start: "25:00", End: "07:00"}}, "quiet_hours.start"},
		{"unknown time zone", herald.Preferences{QuietHours: &herald.QuietHours{Start: "22:00", End: "07:00", Timezone: "Mars/Olympus_Mons"}}, "quiet_hours.timezone"},
	} {
		wantInvalid(t, "PutPreferences ("+c.what+")", st.PutPreferences(ctx, u, c.p), c.field)
	}
	if got := mustGetPrefs(t, ctx, st, u); !equalPrefs(got, herald.DefaultPreferences()) {
		t.Fatalf("refused preferences were stored: %+v", got)
	}

	in := herald.Preferences{
		MutedTypes: []string{"like", "follow", "like"},
		Channels:   herald.Channels{InApp: true},
		QuietHours: &herald.QuietHours{Start: "22:00", End: "07:00"},
	}
	if err := st.PutPreferences(ctx, u, in); err != nil {
		t.Fatalf("PutPreferences: %v", err)
	}
	if !slices.Equal(in.MutedTypes, []string{"like", "follow", "like"}) || in.QuietHours.Timezone != "" {
		t.Fatalf("PutPreferences changed the caller's value: %+v", in)
	}
	got := mustGetPrefs(t, ctx, st, u)
	if !slices.Equal(got.MutedTypes, []string{"follow", "like"}) || got.QuietHours == nil || got.QuietHours.Timezone != "UTC" {
		t.Fatalf("stored preferences are not normalised: %+v (quiet hours %+v)", got, got.QuietHours)
	}
}

// PutDevice refuses what Device.Validate refuses and stores nothing.
func (s *suite) devicesValidated(t *testing.T) {
	st, ctx := s.open(t)
	u := s.user("dev-invalid")
	for _, c := range []struct {
		what  string
		d     herald.Device
		field string
	}{
		{"no platform", herald.Device{UserID: u, Token: s.token("np")}, "platform"},
		{"unknown platform", herald.Device{UserID: u, Platform: "windows", Token: s.token("up")}, "platform"},
		{"no token", herald.Device{UserID: u, Platform: "ios"}, "token"},
		{"token too long", herald.Device{UserID: u, Platform: "ios", Token: strings.Repeat("t", 4097)}, "token"},
		{"app id too long", herald.Device{UserID: u, Platform: "android", Token: s.token("ai"), AppID: strings.Repeat("a", 257)}, "app_id"},
	} {
		wantInvalid(t, "PutDevice ("+c.what+")", st.PutDevice(ctx, c.d), c.field)
	}
	if ds := mustDevices(t, ctx, st, u); len(ds) != 0 {
		t.Fatalf("refused devices were stored: %v", ds)
	}
	if err := st.DeleteDevice(ctx, u, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteDevice with an empty token = %v, want ErrNotFound", err)
	}
}
