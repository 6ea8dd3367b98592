package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"

	"github.com/heraldhq/herald/store"
	"github.com/twmb/franz-go/pkg/kgo"
)

// writers are the store Writers of the source partitions an enricher
// owns, by scope ("topic/partition"). A partition's Writer is fenced on
// the first batch that needs it after the partition was assigned, and
// forgotten when the partition is revoked or lost, so a partition that
// comes back is fenced again: from then on the previous owner's late
// writes cannot change the inboxes (see store.Inbox).
//
// A Writer that reports store.ErrFenced is kept: the batch fails and is
// retried, and keeps failing until the group tells this member that the
// partition is gone (a zombie whose session expired learns it on its next
// heartbeat). Fencing again on ErrFenced would take the partition back
// from its rightful owner.
//
// Ownership is tracked here too, because a batch polled before a revoke
// may still be running after it: get refuses a scope this member is not
// assigned, and a fence runs under the lock that forget takes, so a
// revoke waits for a fence in flight and then drops its Writer. Without
// both, a batch that outlived its partition's revoke could fence the
// partition after forget had run and keep that Writer; when the partition
// came back to this member, the stale Writer would be fenced by the owner
// in between and, kept on ErrFenced, fail every batch for good. Fences of
// different scopes are serialised by the lock: one lightweight
// transaction each, only on the first batch after an assignment.
type writers struct {
	inbox store.Inbox

	mu      sync.Mutex
	byScope map[string]store.Writer
	owned   map[string]struct{} // scopes assigned to this member
}

// errNotOwned: a batch needed the Writer of a partition that is no longer
// assigned to this member (revoked while the batch ran); the batch fails
// and its transaction is aborted by the rebalance anyway.
var errNotOwned = errors.New("partition not assigned to this member (revoked while the batch ran)")

func newWriters(inbox store.Inbox) *writers {
	return &writers{inbox: inbox, byScope: map[string]store.Writer{}, owned: map[string]struct{}{}}
}

// get returns the Writer of scope, fencing it if this member has none;
// errNotOwned if the scope is not assigned to this member.
func (w *writers) get(ctx context.Context, scope string) (store.Writer, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if wr, ok := w.byScope[scope]; ok {
		return wr, nil
	}
	if _, ok := w.owned[scope]; !ok {
		return nil, fmt.Errorf("fence %s: %w", scope, errNotOwned)
	}
	wr, err := w.inbox.Fence(ctx, scope)
	if err != nil {
		return nil, fmt.Errorf("fence %s: %w", scope, err)
	}
	w.byScope[scope] = wr
	return wr, nil
}

// scopes returns the scopes assigned to this member, sorted.
func (w *writers) scopes() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]string, 0, len(w.owned))
	for sc := range w.owned {
		out = append(out, sc)
	}
	slices.Sort(out)
	return out
}

// assign records the partitions the group gave this member; a kgo
// OnPartitionsAssigned callback.
func (w *writers) assign(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			w.owned[topic+"/"+strconv.Itoa(int(p))] = struct{}{}
		}
	}
}

// forget drops the Writers and the ownership of partitions this member no
// longer owns, after any fence in flight; a kgo OnPartitionsRevoked /
// OnPartitionsLost callback.
func (w *writers) forget(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			scope := topic + "/" + strconv.Itoa(int(p))
			delete(w.byScope, scope)
			delete(w.owned, scope)
		}
	}
}
