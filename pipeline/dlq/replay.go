package dlq

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/heraldhq/herald/pipeline"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// ReplayOptions shape a replay.
type ReplayOptions struct {
	// DryRun reads what a replay would replay, reports it through
	// OnReplayed and Result, and changes nothing: no group, no transaction,
	// no commit.
	DryRun bool
	// MaxRecords bounds the dead letters of one transaction. Zero value:
	// 500.
	MaxRecords int
	// EndTimeout bounds ending a transaction (commit or abort), which is
	// never interrupted by ctx: a half-ended transaction would leave the
	// client unusable. Zero value: 30s.
	EndTimeout time.Duration
	// SessionTimeout is the replay group's session timeout: how long a
	// replay started after a crashed one waits for the crashed member to
	// leave the group. Zero value: 10s.
	SessionTimeout time.Duration
	// OnReplayed, if set, is called with each dead letter replayed, once
	// its transaction committed (DryRun: as it is read), from the goroutine
	// that called Replay.
	OnReplayed func(Entry)

	// beforeEnd, for tests, runs after a batch was produced (flushed),
	// right before its transaction is committed; an error aborts the
	// batch and ends Replay with it, as a crash would.
	beforeEnd func(ctx context.Context) error
}

// Result is what a replay did.
type Result struct {
	// Replayed counts the dead letters produced back to their source topic
	// (DryRun: that would be).
	Replayed int `json:"replayed"`
	// CarriedOver counts the dead letters that did not match the filter
	// and were appended again to the DLQ (0 with DryRun).
	CarriedOver int `json:"carried_over"`
	// ByReason counts Replayed by reason, most frequent first.
	ByReason []ReasonCount `json:"by_reason"`
}

// Replay sends the pending dead letters of cfg.Kind that cfg.Filter
// selects back to their source topics, up to the end offsets captured
// when it starts, in transactions of at most opt.MaxRecords (see the
// package doc for why it never loses, doubles or skips one). It returns
// when every partition was read to its captured end, with the Result of
// the committed transactions; when ctx is done it returns ctx's error
// with what was committed so far, and a later Replay resumes from there.
func Replay(ctx context.Context, cfg Config, opt ReplayOptions) (Result, error) {
	t, err := cfg.setDefaults()
	if err != nil {
		return Result{}, err
	}
	if opt.MaxRecords <= 0 {
		opt.MaxRecords = 500
	}
	if opt.EndTimeout <= 0 {
		opt.EndTimeout = 30 * time.Second
	}
	if opt.SessionTimeout <= 0 {
		opt.SessionTimeout = 10 * time.Second
	}
	cl, adm, err := newAdmin(&cfg)
	if err != nil {
		return Result{}, err
	}
	defer cl.Close()
	ss, err := spans(ctx, adm, t)
	if err != nil {
		return Result{}, err
	}
	r := &replayer{cfg: &cfg, opt: &opt, t: t, codec: pipeline.NewCodec(cfg.Topics), now: cfg.Now()}
	if opt.DryRun {
		err = readDirect(ctx, &cfg, t, adm, ss, func(s *span) int64 { return s.pending }, func(rec *kgo.Record, _ *span) {
			if e := decodeEntry(t, rec); cfg.Filter.Match(&e, r.now) {
				r.replayed(e)
			}
		})
		return r.result(), err
	}
	pr := newProgress(ss, func(s *span) int64 { return s.pending })
	if pr.done() {
		return r.result(), nil
	}
	err = r.run(ctx, pr, adm)
	return r.result(), err
}

type replayer struct {
	cfg   *Config
	opt   *ReplayOptions
	t     Topic
	codec pipeline.Codec
	now   time.Time

	sess    *kgo.GroupTransactSession
	res     Result
	reasons reasonCounter
}

func (r *replayer) replayed(e Entry) {
	r.res.Replayed++
	r.reasons.add(e.Reason)
	if r.opt.OnReplayed != nil {
		r.opt.OnReplayed(e)
	}
}

func (r *replayer) result() Result {
	res := r.res
	res.ByReason = r.reasons.sorted()
	return res
}

func (r *replayer) run(ctx context.Context, pr *progress, adm *kadm.Client) error {
	opts := pipeline.ClientOptions(r.cfg.Brokers, r.cfg.ClientOptions...)
	opts = append(opts,
		kgo.ConsumerGroup(r.t.Group),
		kgo.ConsumeTopics(r.t.DLQ),
		kgo.TransactionalID(r.t.Group),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.SessionTimeout(r.opt.SessionTimeout),
		kgo.RecordPartitioner(replayPartitioner{dlq: r.t.DLQ, keyed: kgo.UniformBytesPartitioner(64<<10, true, true, nil)}),
	)
	sess, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	defer sess.Close()
	r.sess = sess
	// Partitions already at their end are not fetched: whatever arrives
	// there is for the next replay.
	var idle []int32
	for p := range pr.ss {
		if !pr.need[p] {
			idle = append(idle, p)
		}
	}
	if len(idle) > 0 {
		sess.Client().PauseFetchPartitions(map[string][]int32{r.t.DLQ: idle})
	}
	log := r.cfg.Logger.With("component", "dlq-replay", "topic", r.t.DLQ, "group", r.t.Group)
	for !pr.done() {
		var batch []*kgo.Record
		n, err := poll(ctx, r.cfg.IdleCheck, r.opt.MaxRecords, sess, func(rec *kgo.Record) { batch = append(batch, rec) })
		if err != nil {
			return err
		}
		if n == 0 {
			if err := pr.recheck(ctx, adm, r.t); err != nil {
				return err
			}
			continue
		}
		committed, replayed, carried, err := r.batch(ctx, pr, batch)
		if err != nil {
			return err
		}
		if !committed {
			log.Info("transaction aborted by a rebalance; the batch will be read again", "records", len(batch))
			continue
		}
		r.res.CarriedOver += carried
		for _, e := range replayed {
			r.replayed(e)
		}
		var reached []int32
		for _, rec := range batch {
			if pr.saw(rec) {
				reached = append(reached, rec.Partition)
			}
		}
		if len(reached) > 0 {
			sess.Client().PauseFetchPartitions(map[string][]int32{r.t.DLQ: reached})
		}
		log.Debug("batch committed", "records", len(batch), "replayed", len(replayed), "carried_over", carried)
	}
	return nil
}

// batch replays recs in one transaction and reports whether it committed.
// An error means the transaction was aborted (or could not be ended) and
// Replay must stop.
func (r *replayer) batch(ctx context.Context, pr *progress, recs []*kgo.Record) (committed bool, replayed []Entry, carried int, err error) {
	if err := r.sess.Begin(); err != nil {
		return false, nil, 0, fmt.Errorf("dlq: begin transaction: %w", err)
	}
	var out []*kgo.Record
	for _, rec := range recs {
		if rec.Attrs.IsControl() {
			continue
		}
		if pr.inRange(rec) {
			if e := decodeEntry(r.t, rec); r.cfg.Filter.Match(&e, r.now) {
				out = append(out, r.replayRecord(rec, r.source(e.SourceTopic)))
				replayed = append(replayed, e)
				continue
			}
		}
		out = append(out, carryOver(rec))
		carried++
	}
	err = r.produce(ctx, out)
	if err == nil && r.opt.beforeEnd != nil {
		err = r.opt.beforeEnd(ctx)
	}
	endCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.opt.EndTimeout)
	defer cancel()
	if err != nil {
		if _, aerr := r.sess.End(endCtx, kgo.TryAbort); aerr != nil {
			return false, nil, 0, fmt.Errorf("dlq: abort transaction after %w: %w", err, aerr)
		}
		return false, nil, 0, err
	}
	committed, err = r.sess.End(endCtx, kgo.TryCommit)
	if err != nil {
		return false, nil, 0, fmt.Errorf("dlq: end transaction: %w", err)
	}
	return committed, replayed, carried, nil
}

// source is where a dead letter from src goes back to: src, unless it
// names a DLQ (never replay into a dead-letter topic), then the natural
// source.
func (r *replayer) source(src string) string {
	if src == r.cfg.Topics.EventsDLQ || src == r.cfg.Topics.PushDLQ {
		return r.t.Source
	}
	return src
}

// replayRecord is rec as it goes back to src: key and value as they were
// (a push job's attempt count reset), the DLQ headers replaced by
// herald-replayed-from.
func (r *replayer) replayRecord(rec *kgo.Record, src string) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(rec.Headers)+1)
	for _, x := range rec.Headers {
		switch x.Key {
		case pipeline.HeaderError, pipeline.HeaderSourceTopic, pipeline.HeaderSourcePartition,
			pipeline.HeaderSourceOffset, pipeline.HeaderAttempts, HeaderReplayedFrom:
			continue
		}
		h = append(h, x)
	}
	h = append(h, kgo.RecordHeader{Key: HeaderReplayedFrom,
		Value: []byte(rec.Topic + "/" + strconv.Itoa(int(rec.Partition)) + "/" + strconv.FormatInt(rec.Offset, 10))})
	value := rec.Value
	if r.t.Kind == Push {
		if job, err := pipeline.DecodePush(rec); err == nil && job.Attempt != 0 {
			job.Attempt = 0
			if fresh, err := r.codec.Push(&job); err == nil {
				value = fresh.Value
			}
		}
	}
	return &kgo.Record{Topic: src, Key: rec.Key, Value: value, Headers: h}
}

// carryOver is rec appended again to the end of its DLQ partition,
// unchanged.
func carryOver(rec *kgo.Record) *kgo.Record {
	return &kgo.Record{Topic: rec.Topic, Partition: rec.Partition, Key: rec.Key, Value: rec.Value,
		Headers: rec.Headers, Timestamp: rec.Timestamp}
}

// produce sends rs in the open transaction and waits until every one is
// acknowledged.
func (r *replayer) produce(ctx context.Context, rs []*kgo.Record) error {
	if len(rs) == 0 {
		return nil
	}
	var mu sync.Mutex
	var first error
	for _, rec := range rs {
		r.sess.Produce(ctx, rec, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	if err := r.sess.Client().Flush(ctx); err != nil {
		return fmt.Errorf("dlq: flush: %w", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if first != nil {
		return fmt.Errorf("dlq: produce: %w", first)
	}
	return nil
}

// replayPartitioner keeps carried-over records in their DLQ partition and
// partitions replayed ones by key, as Herald's producers do.
type replayPartitioner struct {
	dlq   string
	keyed kgo.Partitioner
}

func (p replayPartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == p.dlq {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return p.keyed.ForTopic(topic)
}
