package embedded

import (
	"bytes"
	"context"
	"fmt"

	bolt "go.etcd.io/bbolt"

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

// Fence implements store.Inbox. It writes nothing to the file: epochs live
// in memory (see the package doc), so Fence costs no transaction and no
// fsync.
func (s *Store) Fence(ctx context.Context, scope string) (store.Writer, error) {
	if err := store.ValidateScope(scope); err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	return &writer{s: s, scope: scope, epoch: s.fences.Take(scope)}, nil
}

// Scope implements store.Writer.
func (w *writer) Scope() string { return w.scope }

// Append implements store.Writer. The whole batch is one transaction: on
// error (including ctx cancelled mid-batch, and ErrFenced) nothing of it is
// stored. An input without ID gets a fresh ULID. The store does not check
// that a user belongs to the writer's scope: that mapping is the caller's.
func (w *writer) Append(ctx context.Context, ns []herald.Notification) ([]store.AppendResult, error) {
	return w.s.append(ctx, w, ns)
}

func (s *Store) append(ctx context.Context, w *writer, ns []herald.Notification) ([]store.AppendResult, error) {
	for i := range ns {
		if err := checkUserID(ns[i].UserID); err != nil {
			return nil, fmt.Errorf("embedded: notification %d: %w", i, err)
		}
		if ns[i].EventID == "" {
			return nil, fmt.Errorf("embedded: notification %d: %w", i, &herald.ValidationError{Field: "event_id", Reason: "must not be empty"})
		}
		if len(ns[i].EventID) > maxEventIDBytes {
			return nil, fmt.Errorf("embedded: notification %d: %w", i, &herald.ValidationError{Field: "event_id", Reason: fmt.Sprintf("is longer than %d bytes", maxEventIDBytes)})
		}
	}
	if len(ns) == 0 {
		if err := s.begin(ctx); err != nil {
			return nil, err
		}
		// Nothing to write, but a fenced writer still learns it is fenced.
		if err := s.fences.Check(w.scope, w.epoch); err != nil {
			return nil, err
		}
		return []store.AppendResult{}, nil
	}
	results := make([]store.AppendResult, len(ns))
	err := s.update(ctx, func(tx *bolt.Tx) error {
		// Inside the write transaction, which bbolt serialises: a Fence
		// returning before this check fences the batch, one returning after
		// it finds the batch committed (or rolled back) before the new
		// writer's first transaction can start.
		if err := s.fences.Check(w.scope, w.epoch); err != nil {
			return err
		}
		inbox, unread, dedup := tx.Bucket(bInbox), tx.Bucket(bUnread), tx.Bucket(bDedup)
		metas := make(map[string]*userMeta)
		for i := range ns {
			if i%64 == 63 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			in := &ns[i]
			dk := suffixKey(in.UserID, in.EventID)
			if v := dedup.Get(dk); v != nil {
				if len(v) != 8 {
					return fmt.Errorf("embedded: corrupt dedup entry for user %q event %q", in.UserID, in.EventID)
				}
				seq := seqOf(v)
				sk := seqKey(in.UserID, seq)
				rec := inbox.Get(sk)
				if rec == nil {
					return fmt.Errorf("embedded: dedup entry for user %q event %q points to missing seq %d", in.UserID, in.EventID, seq)
				}
				n, err := decodeNotification(rec, in.UserID, seq, unread.Get(sk) == nil)
				if err != nil {
					return err
				}
				results[i] = store.AppendResult{Notification: n}
				continue
			}
			m := metas[in.UserID]
			if m == nil {
				loaded, err := loadMeta(tx, in.UserID)
				if err != nil {
					return err
				}
				m = &loaded
				metas[in.UserID] = m
			}
			n := *in
			n.Seq, n.Prev, n.Read = m.last+1, m.last, false
			n.Data = bytes.Clone(in.Data)
			if n.ID == "" {
				n.ID = herald.NewID(n.CreatedAt)
			}
			sk := seqKey(n.UserID, n.Seq)
			if err := inbox.Put(sk, encodeNotification(&n)); err != nil {
				return err
			}
			if err := unread.Put(sk, unreadVal); err != nil {
				return err
			}
			if err := dedup.Put(dk, encodeSeq(n.Seq)); err != nil {
				return err
			}
			m.last, m.unread = n.Seq, m.unread+1
			results[i] = store.AppendResult{Notification: n, Created: true}
		}
		users := tx.Bucket(bUsers)
		for u, m := range metas {
			if err := users.Put(userKey(u), m.encode()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return results, nil
}
