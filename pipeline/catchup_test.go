package pipeline

import (
	"context"
	"sync"
	"testing"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store/memory"
	"github.com/twmb/franz-go/pkg/kgo"
)

// produceLog is a Producer that acknowledges every record at once.
type produceLog struct {
	mu   sync.Mutex
	recs []*kgo.Record
}

func (p *produceLog) Produce(_ context.Context, r *kgo.Record, promise func(*kgo.Record, error)) {
	p.mu.Lock()
	p.recs = append(p.recs, r)
	p.mu.Unlock()
	promise(r, nil)
}

func (p *produceLog) take(t *testing.T) []CatchUpRecord {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []CatchUpRecord
	for _, r := range p.recs {
		fr, err := DecodeFanoutRecord(r)
		if err != nil || fr.CatchUp == nil {
			t.Fatalf("record %s: %v", r.Value, err)
		}
		if string(r.Key) != fr.CatchUp.Users[0] {
			t.Errorf("key %q, want the user id", r.Key)
		}
		out = append(out, *fr.CatchUp)
	}
	p.recs = nil
	return out
}

// TestCatchUpRequester: a request asks for the feeds ahead of the user's
// cursors only, nothing when all are taken, and at most once per
// MinInterval.
func TestCatchUpRequester(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st := memory.New()
	now := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	for _, tp := range []string{"a", "b", "c"} {
		if _, err := st.Subscribe(ctx, "ada", tp, now.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	for _, tp := range []string{"a", "b"} {
		if _, _, err := st.PutFeedItem(ctx, feedTestEvent("e-"+tp, tp, now)); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.SetFeedCursor(ctx, "ada", "b", 1); err != nil { // b taken; c empty
		t.Fatal(err)
	}
	p := &produceLog{}
	clock := now
	r, err := NewCatchUpRequester(CatchUpConfig{Producer: p, Store: st, Trigger: TriggerConnect, Logger: quietLog, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Request(ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	got := p.take(t)
	if len(got) != 1 || got[0].Topic != "a" || got[0].Trigger != TriggerConnect || got[0].After != 0 {
		t.Fatalf("requests %+v, want one for a", got)
	}
	if err := r.Request(ctx, "ada"); err != nil { // within MinInterval
		t.Fatal(err)
	}
	if got := p.take(t); len(got) != 0 {
		t.Fatalf("asked again within MinInterval: %+v", got)
	}
	if err := st.SetFeedCursor(ctx, "ada", "a", 1); err != nil {
		t.Fatal(err)
	}
	clock = clock.Add(2 * time.Second)
	if err := r.Request(ctx, "ada"); err != nil {
		t.Fatal(err)
	}
	if got := p.take(t); len(got) != 0 {
		t.Fatalf("caught up, yet asked %+v", got)
	}
	if err := r.Request(ctx, "nobody"); err != nil {
		t.Fatal(err)
	}
	if got := p.take(t); len(got) != 0 {
		t.Fatalf("a user without topics asked %+v", got)
	}
}

// TestGenerationsBounded: the remembered entries stay within the bound.
func TestGenerationsBounded(t *testing.T) {
	t.Parallel()
	g := newGenerations[int](10)
	for i := range 1000 {
		g.put(string(rune('a'+i%26))+string(rune(i)), i)
		if n := len(g.cur) + len(g.old); n > 10 {
			t.Fatalf("%d entries, bound 10", n)
		}
	}
	g.put("last", 1)
	if v, ok := g.get("last"); !ok || v != 1 {
		t.Fatal("the newest entry is gone")
	}
}
func feedTestEvent(id, topic string, created time.Time) herald.Event {
	return herald.Event{ID: id, Audience: topic, Type: "post", CreatedAt: created}
}
