package storetest

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

func (s *suite) claim(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u1, u2 := s.user("claim1"), s.user("claim2")
	steps := []struct {
		user, event, token string
		want               bool
	}{
		{u1, "e1", "events/0/10", true},  // new
		{u1, "e1", "events/0/10", true},  // replay of the same record
		{u1, "e1", "events/3/99", false}, // another record: duplicate
		{u1, "e1", "events/0/10", true},  // the owner is unchanged by the refused claim
		{u2, "e1", "events/3/99", true},  // claims are per user
		{u2, "e1", "events/0/10", false},
		{u1, "e2", "events/3/99", true}, // per event id
	}
	for i, c := range steps {
		got, err := st.Claim(ctx, c.user, c.event, c.token)
		if err != nil {
			t.Fatalf("step %d: Claim: %v", i, err)
		}
		if got != c.want {
			t.Fatalf("step %d: Claim(%s, %s, %s) = %v, want %v", i, c.user, c.event, c.token, got, c.want)
		}
	}
	// Claims and the inbox are independent: a claimed event can still be appended.
	if r := mustAppend(t, ctx, w, []herald.Notification{notif(u1, "e1")})[0]; !r.Created {
		t.Fatal("Append of a claimed event id: Created=false")
	}
}

// normPrefs makes nil and empty muted types compare equal.
func normPrefs(p herald.Preferences) herald.Preferences {
	if len(p.MutedTypes) == 0 {
		p.MutedTypes = nil
	}
	return p
}

func equalPrefs(a, b herald.Preferences) bool {
	a, b = normPrefs(a), normPrefs(b)
	if !slices.Equal(a.MutedTypes, b.MutedTypes) || a.Channels != b.Channels {
		return false
	}
	if (a.QuietHours == nil) != (b.QuietHours == nil) {
		return false
	}
	return a.QuietHours == nil || *a.QuietHours == *b.QuietHours
}

func mustGetPrefs(t *testing.T, ctx context.Context, st store.Store, userID string) herald.Preferences {
	t.Helper()
	p, err := st.GetPreferences(ctx, userID)
	if err != nil {
		t.Fatalf("GetPreferences(%s): %v", userID, err)
	}
	return p
}

func (s *suite) preferencesDefault(t *testing.T) {
	st, ctx := s.open(t)
	p := mustGetPrefs(t, ctx, st, s.user("noprefs"))
	if !equalPrefs(p, herald.DefaultPreferences()) {
		t.Fatalf("GetPreferences(unknown) = %+v, want the defaults", p)
	}
}

func (s *suite) preferencesRoundTrip(t *testing.T) {
	st, ctx := s.open(t)
	u, other := s.user("prefs"), s.user("prefs-other")
	p := herald.Preferences{
		MutedTypes: []string{"like", "follow"},
		Channels:   herald.Channels{InApp: true, Push: false},
		QuietHours: &herald.QuietHours{Start: "22:00", End: "07:00", Timezone: "Europe/Paris"},
	}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if err := st.PutPreferences(ctx, u, p); err != nil {
		t.Fatalf("PutPreferences: %v", err)
	}
	if got := mustGetPrefs(t, ctx, st, u); !equalPrefs(got, p) {
		t.Fatalf("GetPreferences = %+v (quiet %+v), want %+v (quiet %+v)", got, got.QuietHours, p, p.QuietHours)
	}
	if got := mustGetPrefs(t, ctx, st, other); !equalPrefs(got, herald.DefaultPreferences()) {
		t.Fatalf("another user's preferences changed: %+v", got)
	}

	// Put replaces: no quiet hours, nothing muted, in-app off.
	q := herald.Preferences{MutedTypes: []string{}, Channels: herald.Channels{InApp: false, Push: true}}
	if err := st.PutPreferences(ctx, u, q); err != nil {
		t.Fatalf("PutPreferences (replace): %v", err)
	}
	got := mustGetPrefs(t, ctx, st, u)
	if !equalPrefs(got, q) {
		t.Fatalf("after replace GetPreferences = %+v (quiet %+v), want %+v", got, got.QuietHours, q)
	}
}

func mustDevices(t *testing.T, ctx context.Context, st store.Store, userID string) []herald.Device {
	t.Helper()
	ds, err := st.Devices(ctx, userID)
	if err != nil {
		t.Fatalf("Devices(%s): %v", userID, err)
	}
	return ds
}

func mustPutDevice(t *testing.T, ctx context.Context, st store.Store, d herald.Device) {
	t.Helper()
	if err := st.PutDevice(ctx, d); err != nil {
		t.Fatalf("PutDevice(%+v): %v", d, err)
	}
}

func sameDevice(t *testing.T, what string, got, want herald.Device) {
	t.Helper()
	if got.UserID != want.UserID || got.Platform != want.Platform || got.Token != want.Token || got.AppID != want.AppID {
		t.Fatalf("%s: device %+v, want %+v", what, got, want)
	}
	if !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("%s: CreatedAt %v, want %v", what, got.CreatedAt, want.CreatedAt)
	}
}

func (s *suite) devicesPutListDelete(t *testing.T) {
	st, ctx := s.open(t)
	u := s.user("dev")
	if ds := mustDevices(t, ctx, st, u); len(ds) != 0 {
		t.Fatalf("Devices(unknown) = %v", ds)
	}
	// The older device's token sorts last, so "oldest first" is not token order.
	d1 := herald.Device{UserID: u, Platform: "ios", Token: s.token("zz-older"), AppID: "com.example.app", CreatedAt: baseTime}
	d2 := herald.Device{UserID: u, Platform: "android", Token: s.token("aa-newer"), AppID: "com.example.app", CreatedAt: baseTime.Add(time.Second)}
	mustPutDevice(t, ctx, st, d1)
	mustPutDevice(t, ctx, st, d2)
	ds := mustDevices(t, ctx, st, u)
	if len(ds) != 2 {
		t.Fatalf("Devices = %d devices, want 2", len(ds))
	}
	sameDevice(t, "oldest", ds[0], d1)
	sameDevice(t, "newest", ds[1], d2)

	if err := st.DeleteDevice(ctx, u, d1.Token); err != nil {
		t.Fatalf("DeleteDevice: %v", err)
	}
	ds = mustDevices(t, ctx, st, u)
	if len(ds) != 1 {
		t.Fatalf("after delete: %d devices, want 1", len(ds))
	}
	sameDevice(t, "remaining", ds[0], d2)

	for _, c := range []struct{ user, token, what string }{
		{u, d1.Token, "already deleted"},
		{u, s.token("never"), "unknown token"},
		{s.user("nodevices"), d2.Token, "another user's token"},
	} {
		if err := st.DeleteDevice(ctx, c.user, c.token); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("DeleteDevice (%s) = %v, want ErrNotFound", c.what, err)
		}
	}
	if ds := mustDevices(t, ctx, st, u); len(ds) != 1 {
		t.Fatalf("failed deletes changed the devices: %d", len(ds))
	}
}

func (s *suite) devicesRefresh(t *testing.T) {
	st, ctx := s.open(t)
	u := s.user("refresh")
	d := herald.Device{UserID: u, Platform: "ios", Token: s.token("r"), AppID: "com.example.old", CreatedAt: baseTime}
	mustPutDevice(t, ctx, st, d)
	mustPutDevice(t, ctx, st, d)
	d.AppID = "com.example.new"
	d.CreatedAt = baseTime.Add(time.Hour)
	mustPutDevice(t, ctx, st, d)
	ds := mustDevices(t, ctx, st, u)
	if len(ds) != 1 {
		t.Fatalf("re-registering one token gave %d devices, want 1", len(ds))
	}
	if ds[0].AppID != "com.example.new" || ds[0].Token != d.Token || ds[0].UserID != u {
		t.Fatalf("refreshed device = %+v, want app id com.example.new", ds[0])
	}
}

func (s *suite) devicesTokenMoves(t *testing.T) {
	st, ctx := s.open(t)
	a, b := s.user("owner-a"), s.user("owner-b")
	tok := s.token("moving")
	keep := herald.Device{UserID: a, Platform: "android", Token: s.token("keep"), AppID: "app", CreatedAt: baseTime}
	mustPutDevice(t, ctx, st, keep)
	mustPutDevice(t, ctx, st, herald.Device{UserID: a, Platform: "ios", Token: tok, AppID: "app", CreatedAt: baseTime.Add(time.Second)})
	moved := herald.Device{UserID: b, Platform: "ios", Token: tok, AppID: "app", CreatedAt: baseTime.Add(2 * time.Second)}
	mustPutDevice(t, ctx, st, moved)

	da := mustDevices(t, ctx, st, a)
	if len(da) != 1 {
		t.Fatalf("previous owner has %d devices, want 1 (the token moved)", len(da))
	}
	sameDevice(t, "previous owner's other device", da[0], keep)
	db := mustDevices(t, ctx, st, b)
	if len(db) != 1 || db[0].Token != tok || db[0].UserID != b {
		t.Fatalf("new owner devices = %+v, want the moved token", db)
	}
	if err := st.DeleteDevice(ctx, a, tok); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DeleteDevice by the previous owner = %v, want ErrNotFound", err)
	}
	if err := st.DeleteDevice(ctx, b, tok); err != nil {
		t.Fatalf("DeleteDevice by the new owner: %v", err)
	}
	if ds := mustDevices(t, ctx, st, b); len(ds) != 0 {
		t.Fatalf("after delete the new owner has %d devices", len(ds))
	}
}

func (s *suite) ping(t *testing.T) {
	st, ctx := s.open(t)
	if err := st.Ping(ctx); err != nil {
		t.Fatalf("Ping: %v", err)
	}
}

func (s *suite) close(t *testing.T) {
	st, w, ctx := s.openWriter(t)
	u := s.user("closed")
	mustAppend(t, ctx, w, []herald.Notification{notif(u, "e")})
	if err := st.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := st.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	dev := herald.Device{UserID: u, Platform: "ios", Token: s.token("c"), CreatedAt: baseTime}
	calls := map[string]func() error{
		"Append": func() error {
			_, err := w.Append(ctx, []herald.Notification{notif(u, "after-close")})
			return err
		},
		"Fence":       func() error { _, err := st.Fence(ctx, w.Scope()); return err },
		"List":        func() error { _, err := st.List(ctx, u, 0, 0, false); return err },
		"LastSeq":     func() error { _, err := st.LastSeq(ctx, u); return err },
		"UnreadCount": func() error { _, err := st.UnreadCount(ctx, u); return err },
		"MarkRead":    func() error { _, err := st.MarkRead(ctx, u, []uint64{1}); return err },
		"MarkAllRead": func() error { _, err := st.MarkAllRead(ctx, u); return err },
		"Claim":       func() error { _, err := st.Claim(ctx, u, "e", "tok"); return err },
		"GetPreferences": func() error {
			_, err := st.GetPreferences(ctx, u)
			return err
		},
		"PutPreferences": func() error { return st.PutPreferences(ctx, u, herald.DefaultPreferences()) },
		"PutDevice":      func() error { return st.PutDevice(ctx, dev) },
		"Devices":        func() error { _, err := st.Devices(ctx, u); return err },
		"DeleteDevice":   func() error { return st.DeleteDevice(ctx, u, dev.Token) },
		"TouchDevice":    func() error { return st.TouchDevice(ctx, u, dev.Token, baseTime) },
		"DeleteDeviceIfStale": func() error {
			_, err := st.DeleteDeviceIfStale(ctx, u, dev.Token, baseTime)
			return err
		},
		"MarkPushSent": func() error { return st.MarkPushSent(ctx, u, "job", dev.Token) },
		"PushSent":     func() error { _, err := st.PushSent(ctx, u, "job"); return err },
		"Ping":         func() error { return st.Ping(ctx) },
		"PutPolicy":    func() error { return w.PutPolicy(ctx, u, []byte("s"), nil) },
		"SetPolicyCursor": func() error {
			return w.SetPolicyCursor(ctx, store.PolicyDue{At: baseTime, UserID: u, Key: "k"})
		},
		"PolicyState": func() error { _, err := st.PolicyState(ctx, u); return err },
		"PolicyDue": func() error {
			_, err := st.PolicyDue(ctx, w.Scope(), store.PolicyDue{}, baseTime, 10)
			return err
		},
		"PolicyCursor": func() error { _, err := st.PolicyCursor(ctx, w.Scope()); return err },
		"Subscribe": func() error {
			_, err := st.Subscribe(ctx, u, "closed-topic", baseTime)
			return err
		},
		"Unsubscribe": func() error { _, err := st.Unsubscribe(ctx, u, "closed-topic"); return err },
		"Topics":      func() error { _, err := st.Topics(ctx, u); return err },
		"Members":     func() error { _, err := st.Members(ctx, "closed-topic", "", 10); return err },
		"MemberCount": func() error { _, err := st.MemberCount(ctx, "closed-topic"); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, store.ErrClosed) {
			t.Errorf("%s after Close = %v, want ErrClosed", name, err)
		}
	}
}
