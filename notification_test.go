package herald

import (
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
)

func TestNewIDOutOfRangeTimeUsesNow(t *testing.T) {
	before := time.Now().Add(-time.Second)
	for _, at := range []time.Time{{}, time.Unix(-1, 0), time.Date(20000, 1, 1, 0, 0, 0, 0, time.UTC)} {
		id, err := ulid.Parse(NewID(at))
		if err != nil {
			t.Fatalf("NewID(%v): %v", at, err)
		}
		if got := ulid.Time(id.Time()); got.Before(before) {
			t.Errorf("NewID(%v) has time %v, want about now", at, got)
		}
	}
	want := time.UnixMilli(1_700_000_000_000)
	id := ulid.MustParse(NewID(want))
	if got := ulid.Time(id.Time()); !got.Equal(want) {
		t.Errorf("NewID(%v) has time %v", want, got)
	}
}
