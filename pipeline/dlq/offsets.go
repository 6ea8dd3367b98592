package dlq

import (
	"context"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
)

// span is the part of one DLQ partition a read covers.
type span struct {
	// start is the log start offset; pending is the first pending offset,
	// the later of start and the replay group's committed offset.
	start, pending int64
	// end is the last stable offset when the read started (exclusive).
	end int64
}

// spans returns the spans of every partition of t's DLQ. Transactions
// still open are not waited for: the end is the last stable offset.
func spans(ctx context.Context, adm *kadm.Client, t Topic) (map[int32]*span, error) {
	// WithAuthorizedOps makes kadm ask for metadata instead of answering
	// from the client's cache, which may predate the topic (as in
	// topics.Ensure).
	ctx = kadm.WithAuthorizedOps(ctx)
	ends, err := adm.ListCommittedOffsets(ctx, t.DLQ)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: end offsets of %s: %w", t.DLQ, err)
	}
	starts, err := adm.ListStartOffsets(ctx, t.DLQ)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: start offsets of %s: %w", t.DLQ, err)
	}
	committed, err := groupOffsets(ctx, adm, t)
	if err != nil {
		return nil, err
	}
	out := map[int32]*span{}
	for p, e := range ends[t.DLQ] {
		s := &span{end: e.Offset}
		if so, ok := starts.Lookup(t.DLQ, p); ok {
			s.start = so.Offset
		}
		s.pending = max(s.start, committed[p])
		out[p] = s
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("dlq: topic %s has no partitions (run herald topics)", t.DLQ)
	}
	return out, nil
}

// groupOffsets are the replay group's committed offsets on t's DLQ; a
// partition without one is absent.
func groupOffsets(ctx context.Context, adm *kadm.Client, t Topic) (map[int32]int64, error) {
	resps, err := adm.FetchOffsets(kadm.RequireStable(ctx), t.Group)
	if err == nil {
		err = resps.Error()
	}
	if errors.Is(err, kerr.GroupIDNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("dlq: committed offsets of group %s: %w", t.Group, err)
	}
	out := map[int32]int64{}
	for p, o := range resps[t.DLQ] {
		if o.At >= 0 {
			out[p] = o.At
		}
	}
	return out, nil
}

// Depth is the number of pending dead letters of t (see the package doc):
// per partition, the end offset minus the later of the log start and the
// replay group's committed offset. Transaction markers and aborted
// records count, so it is an upper bound. It makes a few admin requests
// and honours ctx.
func Depth(ctx context.Context, adm *kadm.Client, t Topic) (int64, error) {
	ss, err := spans(ctx, adm, t)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, s := range ss {
		n += max(0, s.end-s.pending)
	}
	return n, nil
}
