package cassandra

import (
	"testing"
	"time"

	"github.com/heraldhq/herald/store"
)

func TestDueHour(t *testing.T) {
	base := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	h := base.Unix() / 3600
	cases := []struct {
		at   time.Time
		want int64
	}{
		{base, h},
		{base.Add(-time.Microsecond), h - 1},
		{base.Add(time.Hour - time.Microsecond), h},
		{base.Add(time.Hour), h + 1},
		{time.Unix(0, 0), 0},
		{time.Unix(0, 0).Add(-time.Microsecond), -1},      // floor, not truncation toward zero
		{time.Unix(-3600, 0), -1},                         // exactly on a boundary before 1970
		{time.Time{}, (time.Time{}.Unix() - 3599) / 3600}, // the zero cursor: floor of a negative
	}
	for _, c := range cases {
		if got := dueHour(c.at.UnixMicro()); got != c.want {
			t.Errorf("dueHour(%v) = %d, want %d", c.at, got, c.want)
		}
	}
}

func TestDueTime(t *testing.T) {
	if got := dueTime(time.Time{}.UnixMicro()); got != (time.Time{}) || !got.IsZero() {
		t.Fatalf("dueTime(zero) = %#v, want the zero time", got)
	}
	at := time.Date(2026, 12, 2, 16, 0, 0, 123456789, time.FixedZone("x", 3600))
	got := dueTime(at.UnixMicro())
	if want := at.UTC().Truncate(time.Microsecond); got != want {
		t.Fatalf("dueTime = %v, want %v (UTC, microseconds)", got, want)
	}
}

func TestDueTTL(t *testing.T) {
	now := time.Date(2026, 12, 2, 16, 0, 0, 0, time.UTC)
	ret := int(store.PolicyDueRetention / time.Second)
	cases := []struct {
		name string
		at   time.Time
		want int
	}{
		{"due now", now, ret},
		{"due in a week", now.Add(7 * 24 * time.Hour), ret + 7*24*3600},
		{"long past (backlog)", now.Add(-90 * 24 * time.Hour), ret},
		{"far future is capped", now.Add(100 * 365 * 24 * time.Hour), maxTTL},
	}
	for _, c := range cases {
		if got := dueTTL(c.at.UnixMicro(), now); got != c.want {
			t.Errorf("%s: dueTTL = %d, want %d", c.name, got, c.want)
		}
	}
}
