package pipeline

import (
	"context"
	"fmt"
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
type writers struct {
	inbox store.Inbox

	mu      sync.Mutex
	byScope map[string]store.Writer
}

func newWriters(inbox store.Inbox) *writers {
	return &writers{inbox: inbox, byScope: map[string]store.Writer{}}
}

// get returns the Writer of scope, fencing it if this member has none.
// Batches run one at a time, so two fences of one scope never race here.
func (w *writers) get(ctx context.Context, scope string) (store.Writer, error) {
	w.mu.Lock()
	wr, ok := w.byScope[scope]
	w.mu.Unlock()
	if ok {
		return wr, nil
	}
	wr, err := w.inbox.Fence(ctx, scope)
	if err != nil {
		return nil, fmt.Errorf("fence %s: %w", scope, err)
	}
	w.mu.Lock()
	w.byScope[scope] = wr
	w.mu.Unlock()
	return wr, nil
}

// forget drops the Writers of partitions this member no longer owns; a
// kgo OnPartitionsRevoked / OnPartitionsLost callback.
func (w *writers) forget(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for topic, ps := range parts {
		for _, p := range ps {
			delete(w.byScope, topic+"/"+strconv.Itoa(int(p)))
		}
	}
}
