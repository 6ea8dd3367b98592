package pipeline

import (
	"context"
	"errors"
	"sync"
	"testing"

	"github.com/heraldhq/herald/store"
	"github.com/heraldhq/herald/store/memory"
)

// gatedInbox blocks Fence until release is closed, after saying it began.
type gatedInbox struct {
	store.Inbox
	began   chan struct{}
	release chan struct{}
	once    sync.Once
}

func (g *gatedInbox) Fence(ctx context.Context, scope string) (store.Writer, error) {
	g.once.Do(func() { close(g.began) })
	<-g.release
	return g.Inbox.Fence(ctx, scope)
}

// TestWritersOwnership: a scope not assigned is never fenced; a revoke
// waits for a fence in flight and drops its Writer, so a batch that
// outlived its partition's revoke cannot leave a Writer behind that a
// later assignment would reuse (it would be fenced by the owner in between
// and fail every batch).
func TestWritersOwnership(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	parts := map[string][]int32{"events": {3}}
	w := newWriters(memory.New())
	if _, err := w.get(ctx, "events/3"); !errors.Is(err, errNotOwned) {
		t.Fatalf("get before assignment: %v, want errNotOwned", err)
	}
	w.assign(ctx, nil, parts)
	first, err := w.get(ctx, "events/3")
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := w.get(ctx, "events/3"); again != first {
		t.Fatal("a second get fenced again")
	}
	w.forget(ctx, nil, parts)
	if _, err := w.get(ctx, "events/3"); !errors.Is(err, errNotOwned) {
		t.Fatalf("get after revoke: %v, want errNotOwned", err)
	}

	// A fence in flight when the revoke comes: the revoke waits, then the
	// Writer is gone.
	g := &gatedInbox{Inbox: memory.New(), began: make(chan struct{}), release: make(chan struct{})}
	w = newWriters(g)
	w.assign(ctx, nil, parts)
	got := make(chan error, 1)
	go func() { _, err := w.get(ctx, "events/3"); got <- err }()
	<-g.began
	forgot := make(chan struct{})
	go func() { w.forget(ctx, nil, parts); close(forgot) }()
	select {
	case <-forgot:
		t.Fatal("forget returned while a fence was in flight")
	default:
	}
	close(g.release)
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	<-forgot
	w.mu.Lock()
	_, kept := w.byScope["events/3"]
	w.mu.Unlock()
	if kept {
		t.Fatal("the Writer fenced during the revoke was kept")
	}
	w.assign(ctx, nil, parts)
	if _, err := w.get(ctx, "events/3"); err != nil {
		t.Fatalf("reassigned: %v", err)
	}
}
