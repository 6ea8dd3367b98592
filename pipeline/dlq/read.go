package dlq

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/heraldhq/herald/pipeline"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// progress tracks the partitions a read still has to take to their end.
type progress struct {
	ss   map[int32]*span
	need map[int32]bool
}

// newProgress waits on every partition whose first offset to read (from)
// is below its end.
func newProgress(ss map[int32]*span, from func(*span) int64) *progress {
	pr := &progress{ss: ss, need: map[int32]bool{}}
	for p, s := range ss {
		if from(s) < s.end {
			pr.need[p] = true
		}
	}
	return pr
}

// inRange reports whether r is below its partition's captured end.
func (pr *progress) inRange(r *kgo.Record) bool {
	s, ok := pr.ss[r.Partition]
	return ok && r.Offset < s.end
}

// saw records that r (data or control) was read; it returns true when this
// took r's partition to its end.
func (pr *progress) saw(r *kgo.Record) bool {
	if pr.need[r.Partition] && r.Offset >= pr.ss[r.Partition].end-1 {
		delete(pr.need, r.Partition)
		return true
	}
	return false
}

func (pr *progress) done() bool { return len(pr.need) == 0 }

// recheck drops the partitions whose records retention removed meanwhile
// (log start at or past the captured end): no record will show their end.
func (pr *progress) recheck(ctx context.Context, adm *kadm.Client, t Topic) error {
	starts, err := adm.ListStartOffsets(kadm.WithAuthorizedOps(ctx), t.DLQ)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("dlq: start offsets of %s: %w", t.DLQ, err)
	}
	for p := range pr.need {
		if so, ok := starts.Lookup(t.DLQ, p); ok && so.Offset >= pr.ss[p].end {
			delete(pr.need, p)
		}
	}
	return nil
}

// newAdmin returns an admin client for cfg; the caller closes the kgo
// client.
func newAdmin(cfg *Config) (*kgo.Client, *kadm.Client, error) {
	cl, err := kgo.NewClient(pipeline.ClientOptions(cfg.Brokers, cfg.ClientOptions...)...)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	return cl, kadm.NewClient(cl), nil
}

// readDirect reads t's DLQ without a group, read_committed, from from(s)
// to each partition's captured end, calling visit for every data record
// in range, in offset order within a partition.
func readDirect(ctx context.Context, cfg *Config, t Topic, adm *kadm.Client, ss map[int32]*span,
	from func(*span) int64, visit func(r *kgo.Record, s *span)) error {
	pr := newProgress(ss, from)
	if pr.done() {
		return nil
	}
	offsets := map[int32]kgo.Offset{}
	for p := range pr.need {
		offsets[p] = kgo.NewOffset().At(from(ss[p]))
	}
	opts := pipeline.ClientOptions(cfg.Brokers, cfg.ClientOptions...)
	opts = append(opts,
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{t.DLQ: offsets}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	defer cl.Close()
	for !pr.done() {
		n, err := poll(ctx, cfg.IdleCheck, 1000, cl, func(r *kgo.Record) {
			if !pr.inRange(r) {
				return
			}
			if !r.Attrs.IsControl() {
				visit(r, ss[r.Partition])
			}
			if pr.saw(r) {
				cl.PauseFetchPartitions(map[string][]int32{t.DLQ: {r.Partition}})
			}
		})
		if err != nil {
			return err
		}
		if n == 0 {
			if err := pr.recheck(ctx, adm, t); err != nil {
				return err
			}
		}
	}
	return nil
}

// poll waits up to idle for at most maxRecords records and calls each for every one
// (data and control), returning how many there were. Only ctx's end and
// fetch errors Kafka will not recover from are errors.
func poll(ctx context.Context, idle time.Duration, maxRecords int, cl interface {
	PollRecords(context.Context, int) kgo.Fetches
}, each func(*kgo.Record)) (int, error) {
	pctx, cancel := context.WithTimeout(ctx, idle)
	fs := cl.PollRecords(pctx, maxRecords)
	cancel()
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var ferr error
	fs.EachError(func(topic string, p int32, err error) {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return
		}
		if ferr == nil {
			ferr = fmt.Errorf("dlq: fetch %s[%d]: %w", topic, p, err)
		}
	})
	if ferr != nil {
		return 0, ferr
	}
	n := 0
	fs.EachRecord(func(r *kgo.Record) {
		n++
		each(r)
	})
	return n, nil
}
