package memory

import (
	"context"
	"fmt"
	"slices"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// writer is the store.Writer of one epoch of a scope.
type writer struct {
	s     *Store
	scope string
	epoch uint64
}

var _ store.Writer = (*writer)(nil)

// Fence implements store.Inbox. The epoch is taken under the store's
// mutex, so an Append of the previous writer is either finished before
// Fence returns or refused with store.ErrFenced.
func (s *Store) Fence(ctx context.Context, scope string) (store.Writer, error) {
	if err := store.ValidateScope(scope); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	return &writer{s: s, scope: scope, epoch: s.fences.Take(scope)}, nil
}

// Scope implements store.Writer.
func (w *writer) Scope() string { return w.scope }

// Append implements store.Writer. An invalid notification fails the whole
// call before anything is stored. An input without ID gets a fresh ULID.
// The memory store does not check that a user belongs to the writer's
// scope: the scope of a user is the caller's mapping, which no store knows.
func (w *writer) Append(ctx context.Context, ns []herald.Notification) ([]store.AppendResult, error) {
	return w.s.append(ctx, w, ns)
}

func (s *Store) append(ctx context.Context, w *writer, ns []herald.Notification) ([]store.AppendResult, error) {
	for i := range ns {
		if err := checkNotification(&ns[i]); err != nil {
			return nil, fmt.Errorf("memory: notification %d: %w", i, err)
		}
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	// Under s.mu, like Fence's Take: nothing below runs for a fenced writer.
	if err := s.fences.Check(w.scope, w.epoch); err != nil {
		return nil, err
	}
	out := make([]store.AppendResult, len(ns))
	for i, n := range ns {
		u := s.user(n.UserID)
		if seq, ok := u.byEvt[n.EventID]; ok {
			out[i] = store.AppendResult{Notification: u.items[seq-1]}
			continue
		}
		n.Prev = uint64(len(u.items))
		n.Seq = n.Prev + 1
		n.Read = false
		n.Data = slices.Clone(n.Data)
		if n.ID == "" {
			// The real stores use CreatedAt, and panic on a zero one.
			at := n.CreatedAt
			if at.IsZero() {
				at = time.Now()
			}
			n.ID = herald.NewID(at)
		}
		u.items = append(u.items, n)
		u.byEvt[n.EventID] = n.Seq
		u.unread++
		out[i] = store.AppendResult{Notification: n, Created: true}
	}
	return out, nil
}
