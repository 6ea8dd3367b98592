package memory_test

import (
	"context"
	"testing"
	"time"

	"github.com/heraldhq/herald/store/memory"
)

func TestPushProgressExpires(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	s := memory.NewWith(memory.Options{Now: func() time.Time { return now }, PushProgressTTL: time.Hour})
	if err := s.MarkPushSent(ctx, "u", "j", "tok"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(59 * time.Minute)
	if got, _ := s.PushSent(ctx, "u", "j"); !got["tok"] {
		t.Fatalf("before expiry: %v", got)
	}
	now = now.Add(time.Minute)
	if got, _ := s.PushSent(ctx, "u", "j"); len(got) != 0 {
		t.Fatalf("after expiry: %v", got)
	}
	// A mark after expiry prunes the old entry and records a fresh one.
	if err := s.MarkPushSent(ctx, "u", "j", "tok"); err != nil {
		t.Fatal(err)
	}
	now = now.Add(30 * time.Minute)
	if got, _ := s.PushSent(ctx, "u", "j"); !got["tok"] {
		t.Fatalf("re-marked after expiry: %v", got)
	}
}
