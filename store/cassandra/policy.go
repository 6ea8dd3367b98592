package cassandra

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// The policy tables (migration 0007, doc.go "Policy state"): policy_state
// (user → blob), policy_due ((scope, hour) → at_us, user_id, key),
// policy_due_hours (scope → hours that may hold entries) and policy_cursor
// (scope → at_us, user_id, key). Times are unix microseconds.

const (
	// maxDueLimit bounds PolicyDue's limit (store.Policies).
	maxDueLimit = 10_000
	// maxTTL is Cassandra's largest TTL (20 years), in seconds.
	maxTTL    = 20 * 365 * 24 * 3600
	usPerHour = int64(time.Hour / time.Microsecond)
)

// dueHour is the hour bucket of a due time in unix microseconds:
// floor(us / 3600e6), also for times before 1970.
func dueHour(us int64) int64 {
	h := us / usPerHour
	if us%usPerHour < 0 {
		h--
	}
	return h
}

// dueTime is the stored form's At: microseconds, UTC (time.UnixMicro
// round-trips the zero time, so the zero cursor reads back as zero).
func dueTime(us int64) time.Time { return time.UnixMicro(us).UTC() }

// dueTTL is the TTL, in seconds, of a due entry at us written at now:
// PolicyDueRetention past its At, and at least PolicyDueRetention (an entry
// written for a past At, a backlog, still lives the retention).
func dueTTL(us int64, now time.Time) int {
	ret := int64(store.PolicyDueRetention / time.Second)
	ttl := max((us-now.UnixMicro())/int64(time.Second/time.Microsecond)+ret, ret)
	return int(min(ttl, maxTTL))
}

// checkPolicy validates PutPolicy's input like every store does.
func checkPolicy(userID string, state []byte, due []store.PolicyDue) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if len(state) > store.MaxPolicyStateBytes {
		return &herald.ValidationError{Field: "state", Reason: fmt.Sprintf("is %d bytes, more than the %d allowed", len(state), store.MaxPolicyStateBytes)}
	}
	for _, d := range due {
		if err := store.ValidatePolicyDue(d); err != nil {
			return err
		}
	}
	return nil
}

// PutPolicy implements store.Writer: the epoch check, then the due entries
// (one plain batch per hour bucket, each a single partition), then the
// state row, all stamped with one timestamp of the epoch; calls for one
// user through this Writer are serialised, so the later call's timestamp
// is the higher one. Nothing here is conditional: a fenced writer's call
// already past the check loses on every cell its successor wrote (doc.go,
// "Policy state"). On error the due entries may be written without the
// state (harmless, see store.Writer); a retry rewrites the same cells.
func (w *writer) PutPolicy(ctx context.Context, userID string, state []byte, due []store.PolicyDue) error {
	if err := checkPolicy(userID, state, due); err != nil {
		return fmt.Errorf("cassandra: put policy: %w", err)
	}
	s := w.s
	if err := s.begin(ctx); err != nil {
		return err
	}
	mu := &w.users[maphash.String(w.seed, userID)%uint64(len(w.users))]
	mu.Lock()
	defer mu.Unlock()
	if err := w.check(ctx); err != nil {
		return err
	}
	return w.putPolicyChecked(ctx, userID, state, due)
}

// putPolicyChecked is PutPolicy past its fencing check (and under the
// user's lock): what a fenced writer's call already in flight still does.
func (w *writer) putPolicyChecked(ctx context.Context, userID string, state []byte, due []store.PolicyDue) error {
	s := w.s
	ts, err := w.nextTS()
	if err != nil {
		return err
	}
	if err := w.putDue(ctx, due, ts); err != nil {
		return err
	}
	var q *gocql.Query
	if len(state) == 0 {
		q = s.read(s.q.policyDelete, ts, userID)
	} else {
		q = s.read(s.q.policyPut, userID, state, ts) // same cells, same timestamp: safe to retry
	}
	if err := q.ExecContext(ctx); err != nil {
		return s.fail("put policy state", err)
	}
	return nil
}

// putDue writes due entries: first the rows of their hours in
// policy_due_hours (one batch: one partition), each with the TTL of an
// entry due at the end of its hour (at least any entry's of the hour,
// and never shorter than an earlier write's), so that a scan that finds
// an entry also finds its hour; then the entries, one unlogged batch per
// (scope, hour) partition. Single-partition batches are atomic and exempt
// from Cassandra's batch size limits (which apply to multi-partition
// batches only). Buckets are written one after the other; a call usually
// carries at most one entry.
func (w *writer) putDue(ctx context.Context, due []store.PolicyDue, ts int64) error {
	if len(due) == 0 {
		return nil
	}
	s := w.s
	now := time.Now()
	byHour := make(map[int64]*gocql.Batch)
	var hours []int64
	for _, d := range due {
		us := d.At.UnixMicro()
		h := dueHour(us)
		b, ok := byHour[h]
		if !ok {
			b = s.session.Batch(gocql.UnloggedBatch)
			byHour[h] = b
			hours = append(hours, h)
		}
		b.Entries = append(b.Entries, gocql.BatchEntry{
			Stmt: s.q.dueInsert, Args: []any{w.scope, h, us, d.UserID, d.Key, dueTTL(us, now), ts},
			// Same cells, same timestamp: a retry is a rewrite.
			Idempotent: true,
		})
	}
	slices.Sort(hours)
	hb := s.session.Batch(gocql.UnloggedBatch)
	for _, h := range hours {
		end := (h+1)*usPerHour - 1
		hb.Entries = append(hb.Entries, gocql.BatchEntry{
			Stmt: s.q.dueHourInsert, Args: []any{w.scope, h, dueTTL(end, now), ts}, Idempotent: true,
		})
	}
	if err := hb.ExecContext(ctx); err != nil {
		return s.fail("put policy due hours", err)
	}
	for _, h := range hours {
		if err := byHour[h].ExecContext(ctx); err != nil {
			return s.fail("put policy due entries", err)
		}
	}
	return nil
}

// SetPolicyCursor implements store.Writer: the epoch check, a read of the
// stored cursor and, when cur is after it, one write stamped with the
// epoch's next timestamp. Calls through one Writer are serialised; the
// epoch makes this Writer the scope's only one, and a fenced writer's
// late write loses to its successor's (doc.go, "Policy state").
func (w *writer) SetPolicyCursor(ctx context.Context, cur store.PolicyDue) error {
	s := w.s
	if err := s.begin(ctx); err != nil {
		return err
	}
	w.cursorMu.Lock()
	defer w.cursorMu.Unlock()
	if err := w.check(ctx); err != nil {
		return err
	}
	return w.setCursorChecked(ctx, cur)
}

// setCursorChecked is SetPolicyCursor past its fencing check (and under
// cursorMu).
func (w *writer) setCursorChecked(ctx context.Context, cur store.PolicyDue) error {
	s := w.s
	stored, err := s.PolicyCursor(ctx, w.scope)
	if err != nil {
		return err
	}
	cur.At = cur.At.UTC().Truncate(time.Microsecond)
	if !stored.Less(cur) {
		return nil
	}
	ts, err := w.nextTS()
	if err != nil {
		return err
	}
	if err := s.read(s.q.cursorPut, w.scope, cur.At.UnixMicro(), cur.UserID, cur.Key, ts).ExecContext(ctx); err != nil {
		return s.fail("set policy cursor", err)
	}
	return nil
}

// PolicyState implements store.Policies: one point read.
func (s *Store) PolicyState(ctx context.Context, userID string) ([]byte, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	var state []byte
	err := s.read(s.q.policyGet, userID).ScanContext(ctx, &state)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, s.fail("read policy state", err)
	}
	if len(state) == 0 {
		return nil, nil
	}
	return state, nil
}

// PolicyCursor implements store.Policies: one point read.
func (s *Store) PolicyCursor(ctx context.Context, scope string) (store.PolicyDue, error) {
	if err := store.ValidateScope(scope); err != nil {
		return store.PolicyDue{}, err
	}
	if err := s.begin(ctx); err != nil {
		return store.PolicyDue{}, err
	}
	var (
		us          int64
		userID, key string
	)
	err := s.read(s.q.cursorGet, scope).ScanContext(ctx, &us, &userID, &key)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return store.PolicyDue{}, nil
	case err != nil:
		return store.PolicyDue{}, s.fail("read policy cursor", err)
	}
	return store.PolicyDue{At: dueTime(us), UserID: userID, Key: key}, nil
}

// PolicyDue implements store.Policies. It reads which hour buckets from
// after's to until's may hold entries (policy_due_hours, one small
// partition) and reads those in order, each with LIMIT what is still
// wanted, until limit entries are found: the cost is one request plus one
// per bucket with entries in range, however far behind the cursor or
// ahead until is. Entries expire by TTL (at least
// store.PolicyDueRetention after their write and their At).
func (s *Store) PolicyDue(ctx context.Context, scope string, after store.PolicyDue, until time.Time, limit int) ([]store.PolicyDue, error) {
	if err := store.ValidateScope(scope); err != nil {
		return nil, err
	}
	if limit < 1 || limit > maxDueLimit {
		return nil, &herald.ValidationError{Field: "limit", Reason: fmt.Sprintf("must be 1 to %d", maxDueLimit)}
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	afterUS, untilUS := after.At.UnixMicro(), until.UnixMicro()
	out := []store.PolicyDue{}
	if afterUS > untilUS {
		return out, nil
	}
	args := []any{afterUS, after.UserID, after.Key, untilUS}
	iter := s.read(s.q.dueHours, scope, dueHour(afterUS), dueHour(untilUS)).PageSize(100).IterContext(ctx)
	var h int64
	for len(out) < limit && iter.Scan(&h) {
		var err error
		if out, err = s.dueBucket(ctx, scope, h, args, limit, out); err != nil {
			_ = iter.Close()
			return nil, err
		}
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("read policy due hours", err)
	}
	return out, nil
}

// dueBucket appends to out the entries of bucket h in range (args: after's
// at_us, user_id and key, until's at_us), at most limit-len(out) of them.
func (s *Store) dueBucket(ctx context.Context, scope string, h int64, args []any, limit int, out []store.PolicyDue) ([]store.PolicyDue, error) {
	want := limit - len(out)
	bind := append(append([]any{scope, h}, args...), want)
	iter := s.read(s.q.dueAfter, bind...).PageSize(min(want, 5000)).IterContext(ctx)
	var (
		us          int64
		userID, key string
	)
	for len(out) < limit && iter.Scan(&us, &userID, &key) {
		out = append(out, store.PolicyDue{At: dueTime(us), UserID: userID, Key: key})
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("read policy due index", err)
	}
	return out, nil
}
