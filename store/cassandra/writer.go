package cassandra

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/heraldhq/herald/store"
)

// epochSpan is how many write timestamps one epoch of a scope may use:
// the next epoch's base is at least base+epochSpan, so every timestamp of
// epoch e is below every timestamp of epoch e+1 (see doc.go, "Fencing").
// 2^32 batches per partition assignment; a writer that used them all
// reports ErrFenced and the enricher takes a new epoch.
const epochSpan = 1 << 32

// Fence implements store.Inbox: one lightweight transaction on the scope's
// row of writer_epochs raises its epoch and sets the epoch's timestamp
// base, above every timestamp the previous epoch may use and at least the
// current time in microseconds.
func (s *Store) Fence(ctx context.Context, scope string) (store.Writer, error) {
	if err := store.ValidateScope(scope); err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			if attempt >= s.cfg.MaxCASAttempts {
				return nil, fmt.Errorf("%w: fence of scope %q lost %d times in a row", ErrContention, scope, attempt)
			}
			if !retry.Sleep(ctx, casBackoff.Attempt(attempt)) {
				return nil, ctx.Err()
			}
		}
		var (
			epoch, base int64
			op          gocql.UUID
			exists      = true
		)
		err := s.read(s.q.epochGet, scope).Consistency(s.cfg.serial).ScanContext(ctx, &epoch, &base, &op)
		switch {
		case errors.Is(err, gocql.ErrNotFound):
			exists = false
		case err != nil:
			return nil, s.fail("read writer epoch", err)
		}
		myOp, err := gocql.RandomUUID()
		if err != nil {
			return nil, fmt.Errorf("cassandra: %w", err)
		}
		next := max(time.Now().UnixMicro(), base+epochSpan)
		if !exists {
			next = time.Now().UnixMicro()
		}
		var q *gocql.Query
		if exists {
			q = s.session.Query(s.q.epochSet, epoch+1, next, myOp, time.Now(), scope, epoch)
		} else {
			q = s.session.Query(s.q.epochInsert, scope, int64(1), next, myOp, time.Now())
		}
		applied, err := q.MapScanCASContext(ctx, map[string]any{})
		if err != nil {
			if ctx.Err() != nil || !maybeApplied(err) {
				return nil, s.fail("fence", err)
			}
			// The outcome is unknown: a serial read settles it (the round
			// completed iff the row carries this attempt's op).
			var gotEpoch, gotBase int64
			var gotOp gocql.UUID
			if rerr := s.read(s.q.epochGet, scope).Consistency(s.cfg.serial).ScanContext(ctx, &gotEpoch, &gotBase, &gotOp); rerr == nil && gotOp == myOp {
				return s.newWriter(scope, gotEpoch, gotBase), nil
			}
			s.m.casUnknown.WithLabelValues("fence").Inc()
			continue
		}
		if !applied {
			s.m.casConflicts.WithLabelValues("fence").Inc()
			continue
		}
		s.m.fences.Inc()
		s.log.Info("fenced a writer scope", "scope", scope, "epoch", epoch+1)
		return s.newWriter(scope, epoch+1, next), nil
	}
}

// execBatch runs a plain batch (Store.execFn).
func execBatch(ctx context.Context, b *gocql.Batch) error { return b.ExecContext(ctx) }

func (s *Store) newWriter(scope string, epoch, base int64) *writer {
	return &writer{s: s, scope: scope, epoch: epoch, base: base, seed: maphash.MakeSeed()}
}

// writer is a store.Writer of one epoch of a scope.
type writer struct {
	s     *Store
	scope string
	epoch int64
	base  int64
	used  atomic.Int64 // timestamps taken: the next one is base+used
	seed  maphash.Seed
	users [64]sync.Mutex // striped by user: one user's parts (and policy puts) are serialised
	// cursorMu serialises SetPolicyCursor's read and write.
	cursorMu sync.Mutex
}

var _ store.Writer = (*writer)(nil)

// Scope implements store.Writer.
func (w *writer) Scope() string { return w.scope }

// nextTS returns a write timestamp of the epoch, above every earlier one.
func (w *writer) nextTS() (int64, error) {
	n := w.used.Add(1)
	if n >= epochSpan {
		return 0, fmt.Errorf("%w: scope %q epoch %d used its %d timestamps", store.ErrFenced, w.scope, w.epoch, int64(epochSpan))
	}
	return w.base + n, nil
}

// check returns store.ErrFenced when the scope's epoch moved on: one
// point read per Append. It catches a writer that was fenced before the
// call started; an append already past it when the fence happens is made
// harmless by the timestamps instead (see doc.go).
func (w *writer) check(ctx context.Context) error {
	var epoch, base int64
	var op gocql.UUID
	err := w.s.read(w.s.q.epochGet, w.scope).ScanContext(ctx, &epoch, &base, &op)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return fmt.Errorf("%w: scope %q has no epoch", ErrCorrupt, w.scope)
	case err != nil:
		return w.s.fail("read writer epoch", err)
	case epoch != w.epoch:
		w.s.m.fencedAppends.Inc()
		return fmt.Errorf("%w: scope %q is at epoch %d, this writer has %d", store.ErrFenced, w.scope, epoch, w.epoch)
	}
	return nil
}

// Append implements store.Writer, in rounds (append.go): each round
// plans the next Config.MaxBatch notifications of every user (reading the
// user's state first unless the writer's cache vouches for it; at most
// Config.AppendConcurrency users at a time) and writes them, the parts of
// up to Config.GroupUsers users of one coordinator per plain batch. On error some users (or leading
// parts of a user's notifications) may be stored: replaying the same
// batch returns their stored copies and stores the rest. An input without
// ID gets a fresh ULID.
func (w *writer) Append(ctx context.Context, ns []herald.Notification) ([]store.AppendResult, error) {
	s := w.s
	for i := range ns {
		if err := checkUserID(ns[i].UserID); err != nil {
			return nil, fmt.Errorf("cassandra: notification %d: %w", i, err)
		}
		if ns[i].EventID == "" {
			return nil, fmt.Errorf("cassandra: notification %d: %w", i, &herald.ValidationError{Field: "event_id", Reason: "must not be empty"})
		}
		if len(ns[i].EventID) > maxKeyBytes {
			return nil, fmt.Errorf("cassandra: notification %d: %w", i, &herald.ValidationError{Field: "event_id", Reason: fmt.Sprintf("is longer than %d bytes", maxKeyBytes)})
		}
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	if err := w.check(ctx); err != nil {
		return nil, err
	}
	results := make([]store.AppendResult, len(ns))
	if len(ns) == 0 {
		return results, nil
	}
	return w.appendChecked(ctx, ns, results)
}

// readMetaAndEvents reads the user's statics and the event-index entries
// of eventIDs with one query when they fit one IN clause: the anchor row
// (0, 0, "") and the index rows (3, 0, event id) are both selected by
// kind IN (0, 3) AND seq = 0 AND event_key IN ("", ids...). It returns the
// index as event id → seq, without the entries that point past last_seq
// (left by a fenced writer, see doc.go).
func (s *Store) readMetaAndEvents(ctx context.Context, userID string, eventIDs []string) (meta, map[string]int64, error) {
	first := eventIDs[:min(len(eventIDs), inClause)]
	keys := append([]string{""}, first...)
	iter := s.read(s.q.metaAndEvents, userID, keys).IterContext(ctx)
	var (
		m       meta
		targets = make(map[string]int64)
		kind    int8
		key     string
		target  int64
	)
	for iter.Scan(append([]any{&kind, &key, &target}, m.dest()...)...) {
		switch kind {
		case kindAnchor:
			m.exists = true
		case kindEvent:
			targets[key] = target
		}
	}
	if err := iter.Close(); err != nil {
		return meta{}, nil, s.fail("read inbox state", err)
	}
	if !m.exists {
		return meta{}, nil, nil // no partition, no index
	}
	for part := range slices.Chunk(eventIDs[len(first):], inClause) {
		iter := s.read(s.q.eventsIn, userID, part).IterContext(ctx)
		for iter.Scan(&key, &target) {
			targets[key] = target
		}
		if err := iter.Close(); err != nil {
			return meta{}, nil, s.fail("look up event ids", err)
		}
	}
	for id, seq := range targets {
		if seq > m.last || seq <= 0 {
			delete(targets, id)
		}
	}
	return m, targets, nil
}

// storedEvents reads the notifications the index entries point to, by
// event id. An entry whose notification expired in the meantime counts as
// absent, and so does one whose seq holds another event: an entry a fenced
// writer left, whose seq the current writer has filled since.
func (s *Store) storedEvents(ctx context.Context, userID string, targets map[string]int64, m meta) (map[string]herald.Notification, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	seqs := make([]int64, 0, len(targets))
	for _, seq := range targets {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	seqs = slices.Compact(seqs)
	ns, err := s.loadNotifications(ctx, userID, seqs, m)
	if err != nil {
		return nil, err
	}
	bySeq := make(map[int64]herald.Notification, len(ns))
	for _, n := range ns {
		bySeq[int64(n.Seq)] = n
	}
	out := make(map[string]herald.Notification, len(targets))
	for id, seq := range targets {
		if n, ok := bySeq[seq]; ok && n.EventID == id {
			out[id] = n
		}
	}
	return out, nil
}
