package retry

import (
	"context"
	"testing"
	"time"
)

func TestBackoffGrowsJitteredAndCaps(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 800 * time.Millisecond}
	for i, ceil := range []time.Duration{100, 200, 400, 800, 800, 800} {
		ceil *= time.Millisecond
		d := b.Next()
		if d < ceil/2 || d > ceil {
			t.Fatalf("step %d: %v outside [%v, %v]", i, d, ceil/2, ceil)
		}
	}
	b.Reset()
	if d := b.Next(); d > 100*time.Millisecond {
		t.Fatalf("after Reset: %v", d)
	}
}

func TestSleepStopsOnCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Sleep(ctx, time.Hour) {
		t.Fatal("Sleep reported the full delay on a cancelled context")
	}
	if !Sleep(context.Background(), time.Millisecond) {
		t.Fatal("Sleep cut short without cancellation")
	}
}

func TestAttemptIsNextWithoutState(t *testing.T) {
	b := Backoff{Min: 100 * time.Millisecond, Max: 800 * time.Millisecond}
	for n, ceil := range []time.Duration{100, 100, 200, 400, 800, 800, 800} {
		ceil *= time.Millisecond
		for range 20 {
			if d := b.Attempt(n); d < ceil/2 || d > ceil {
				t.Fatalf("Attempt(%d) = %v outside [%v, %v]", n, d, ceil/2, ceil)
			}
		}
	}
	if d := b.Next(); d > 100*time.Millisecond {
		t.Fatalf("Attempt changed the state: Next = %v", d)
	}
	if d := (Backoff{}).Attempt(3); d != 0 {
		t.Fatalf("zero Backoff: %v", d)
	}
}
