package herald

import (
	"errors"
	"testing"
	"time"
)

func TestPreferencesValidate(t *testing.T) {
	p := Preferences{MutedTypes: []string{"like", "follow", "like"}, QuietHours: &QuietHours{Start: "22:00", End: "07:00"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(p.MutedTypes) != 2 || p.MutedTypes[0] != "follow" || p.QuietHours.Timezone != "UTC" {
		t.Fatalf("not normalised: %+v", p)
	}
	bad := []Preferences{
		{MutedTypes: []string{""}},
		{QuietHours: &QuietHours{Start: "25:00", End: "07:00"}},
		{QuietHours: &QuietHours{Start: "22:00", End: "7"}},
		{QuietHours: &QuietHours{Start: "22:00", End: "07:00", Timezone: "Mars/Olympus"}},
	}
	for i, b := range bad {
		if err := b.Validate(); err == nil {
			t.Errorf("case %d: want error", i)
		}
	}
}

func TestRoute(t *testing.T) {
	paris := &QuietHours{Start: "22:00", End: "07:00", Timezone: "Europe/Paris"}
	night := time.Date(2026, 11, 22, 23, 30, 0, 0, time.UTC) // 00:30 in Paris
	day := time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC)
	normal := &Event{Type: "mention", Priority: PriorityNormal}
	high := &Event{Type: "mention", Priority: PriorityHigh}
	cases := []struct {
		name  string
		p     Preferences
		e     *Event
		now   time.Time
		route Route
	}{
		{"default", DefaultPreferences(), normal, day, Route{InApp: true, Push: PushAllowed}},
		{"muted", Preferences{MutedTypes: []string{"mention"}, Channels: Channels{true, true}}, normal, day, Route{Drop: true, Dropped: DropMuted, Push: PushDisabled}},
		{"push off", Preferences{Channels: Channels{InApp: true}}, normal, day, Route{InApp: true, Push: PushDisabled}},
		{"in-app off", Preferences{Channels: Channels{Push: true}}, normal, day, Route{Push: PushAllowed}},
		{"both off", Preferences{}, normal, day, Route{Drop: true, Dropped: DropNoChannel, Push: PushDisabled}},
		{"in-app off, quiet", Preferences{Channels: Channels{Push: true}, QuietHours: paris}, normal, night, Route{Drop: true, Dropped: DropNoChannel, Push: PushQuietHours}},
		{"quiet", Preferences{Channels: Channels{true, true}, QuietHours: paris}, normal, night, Route{InApp: true, Push: PushQuietHours}},
		{"quiet high", Preferences{Channels: Channels{true, true}, QuietHours: paris}, high, night, Route{InApp: true, Push: PushAllowed}},
		{"outside quiet", Preferences{Channels: Channels{true, true}, QuietHours: paris}, normal, day, Route{InApp: true, Push: PushAllowed}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := c.p.Route(c.e, c.now); got != c.route {
				t.Fatalf("got %+v want %+v", got, c.route)
			}
		})
	}
}

func TestPushDecisionRoundTrip(t *testing.T) {
	for _, d := range []PushDecision{PushAllowed, PushDisabled, PushQuietHours} {
		if got, ok := ParsePushDecision(d.String()); !ok || got != d {
			t.Errorf("ParsePushDecision(%q) = %v, %v", d.String(), got, ok)
		}
	}
	if _, ok := ParsePushDecision("unknown"); ok {
		t.Error("ParsePushDecision accepted \"unknown\"")
	}
}

func TestQuietHoursSameDayWindow(t *testing.T) {
	p := Preferences{QuietHours: &QuietHours{Start: "09:00", End: "17:00", Timezone: "UTC"}}
	if !p.InQuietHours(time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)) || p.InQuietHours(time.Date(2026, 1, 1, 17, 0, 0, 0, time.UTC)) {
		t.Fatal("window bounds wrong: start is inclusive, end exclusive")
	}
}

func TestPreferencesLocation(t *testing.T) {
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	paris, _ := time.LoadLocation("Europe/Paris")
	for _, tc := range []struct {
		p    Preferences
		want *time.Location
	}{
		{Preferences{}, time.UTC},
		{Preferences{Timezone: "Asia/Tokyo"}, tokyo},
		{Preferences{QuietHours: &QuietHours{Start: "22:00", End: "07:00", Timezone: "Europe/Paris"}}, paris},
		{Preferences{Timezone: "Asia/Tokyo", QuietHours: &QuietHours{Start: "22:00", End: "07:00", Timezone: "Europe/Paris"}}, tokyo},
		{Preferences{Timezone: "Nowhere/City"}, time.UTC},
	} {
		if got := tc.p.Location(); got.String() != tc.want.String() {
			t.Errorf("%+v: %v, want %v", tc.p, got, tc.want)
		}
	}
	p := Preferences{Timezone: "Nowhere/City"}
	var ve *ValidationError
	if err := p.Validate(); !errors.As(err, &ve) || ve.Field != "timezone" {
		t.Errorf("Validate: %v", err)
	}
}
