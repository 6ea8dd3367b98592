package cassandra

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"golang.org/x/sync/errgroup"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/heraldhq/herald/store"
)

// casBackoff spaces the attempts of a compare-and-set commit that lost to a
// concurrent writer of the same user.
var casBackoff = retry.Backoff{Min: time.Millisecond, Max: 50 * time.Millisecond}

// inClause bounds the values of one IN (...) query.
const inClause = 100

// meta is a user's per-partition state (the static columns).
type meta struct {
	exists                      bool
	rev, last, unread, readUpto int64
	op                          gocql.UUID
}

// revCond is the value of the commit's IF rev = ? (null for a new user).
func (m meta) revCond() any {
	if !m.exists {
		return nil
	}
	return m.rev
}

// readMeta reads the user's statics with one point read of the anchor row;
// serial reads at the serial consistency, which first completes any
// lightweight transaction left in flight on the partition.
func (s *Store) readMeta(ctx context.Context, userID string, serial bool) (meta, error) {
	q := s.read(s.q.meta, userID)
	if serial {
		q = q.Consistency(s.cfg.serial)
	}
	var (
		m    meta
		kind int8
	)
	err := q.ScanContext(ctx, &kind, &m.rev, &m.last, &m.unread, &m.readUpto, &m.op)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return meta{}, nil
	case err != nil:
		return meta{}, s.fail("read inbox state", err)
	}
	m.exists = true
	return m, nil
}

// casPlan is what one attempt of a compare-and-set loop wants to commit.
type casPlan struct {
	// batch holds the statements, the commit (IF rev = read rev) among
	// them; nil when nothing needs writing.
	batch *gocql.Batch
	// done publishes the attempt's outcome; called once, when batch is
	// known to be committed (or is nil).
	done func()
}

// planFunc builds an attempt from the user's state m; op is the id the
// attempt's commit must write.
type planFunc func(ctx context.Context, m meta, op gocql.UUID) (casPlan, error)

// stateFunc reads the user's state at the start of an attempt (serial: as
// readMeta); nil means readMeta.
type stateFunc func(ctx context.Context, serial bool) (meta, error)

// cas runs a compare-and-set loop on the user's partition: read the state,
// plan, commit with IF rev = <read rev>, and start over when a concurrent
// change won. A commit whose outcome is unknown (timeout, broken
// connection) is settled by a serial read: the commit applied iff the
// partition's op is the attempt's op.
func (s *Store) cas(ctx context.Context, opName, userID string, state stateFunc, plan planFunc) error {
	if state == nil {
		state = func(ctx context.Context, serial bool) (meta, error) { return s.readMeta(ctx, userID, serial) }
	}
	var (
		pendingOp   gocql.UUID
		pendingDone func() // non-nil: the last attempt's outcome is unknown
		unknown     int
	)
	for attempt := 0; ; attempt++ {
		if pendingDone == nil && attempt > 0 {
			if attempt >= s.cfg.MaxCASAttempts {
				return fmt.Errorf("%w: %s for user %q lost %d times in a row", ErrContention, opName, userID, attempt)
			}
			if !retry.Sleep(ctx, casBackoff.Attempt(attempt)) {
				return ctx.Err()
			}
		}
		m, err := state(ctx, pendingDone != nil)
		if err != nil {
			return err
		}
		if pendingDone != nil {
			if m.exists && m.op == pendingOp {
				pendingDone()
				return nil
			}
			// The serial read completed any round in flight: it did not apply.
			pendingDone = nil
		}
		op, err := gocql.RandomUUID()
		if err != nil {
			return fmt.Errorf("cassandra: %w", err)
		}
		p, err := plan(ctx, m, op)
		if err != nil {
			return err
		}
		if p.batch == nil {
			p.done()
			return nil
		}
		applied, err := s.commitFn(ctx, p.batch)
		switch {
		case err == nil && applied:
			p.done()
			return nil
		case err == nil:
			s.m.casConflicts.WithLabelValues(opName).Inc()
		case ctx.Err() != nil || !maybeApplied(err) || unknown >= 3:
			return s.fail(opName, err)
		default:
			unknown++
			s.m.casUnknown.WithLabelValues(opName).Inc()
			s.log.Warn("commit outcome unknown, settling it with a serial read", "op", opName, "user", userID, "err", err)
			pendingOp, pendingDone = op, p.done
		}
	}
}

// commit runs a conditional batch.
func (s *Store) commit(ctx context.Context, b *gocql.Batch) (bool, error) {
	applied, iter, err := b.MapExecCASContext(ctx, map[string]any{})
	if iter != nil {
		if cerr := iter.Close(); err == nil {
			err = cerr
		}
	}
	return applied, err
}

// maybeApplied reports whether a failed commit may still have been applied;
// false for errors raised before the coordinator started the transaction.
func maybeApplied(err error) bool {
	if errors.Is(err, gocql.ErrNoConnections) || errors.Is(err, gocql.ErrSessionClosed) {
		return false
	}
	var re gocql.RequestError
	if errors.As(err, &re) {
		switch re.Code() {
		case gocql.ErrCodeSyntax, gocql.ErrCodeInvalid, gocql.ErrCodeUnauthorized, gocql.ErrCodeConfig,
			gocql.ErrCodeUnavailable, gocql.ErrCodeOverloaded, gocql.ErrCodeBootstrapping,
			gocql.ErrCodeCredentials, gocql.ErrCodeProtocol:
			return false
		}
	}
	return true
}

// newBatch starts a conditional batch. UNLOGGED: a single-partition batch
// never goes through the batchlog anyway, and the condition makes it a
// Paxos round, atomic and isolated on the partition.
func (s *Store) newBatch() *gocql.Batch {
	return s.session.Batch(gocql.UnloggedBatch)
}

// Append implements store.Inbox. Users are written in parallel (at most
// Config.AppendConcurrency at a time); each user's notifications are
// committed by one conditional batch per Config.MaxBatch of them. On error
// some users (or leading parts of a user's notifications) may be stored:
// replaying the same batch returns their stored copies and stores the rest.
// An input without ID gets a fresh ULID.
func (s *Store) Append(ctx context.Context, ns []herald.Notification) ([]store.AppendResult, error) {
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
	results := make([]store.AppendResult, len(ns))
	if len(ns) == 0 {
		return results, nil
	}
	var order []string
	byUser := make(map[string][]int)
	for i := range ns {
		u := ns[i].UserID
		if _, ok := byUser[u]; !ok {
			order = append(order, u)
		}
		byUser[u] = append(byUser[u], i)
	}
	if len(order) == 1 {
		if err := s.appendUser(ctx, order[0], byUser[order[0]], ns, results); err != nil {
			return nil, err
		}
		return results, nil
	}

	// At most AppendConcurrency users at a time, in goroutines owned by
	// this call; the first error cancels the others, no further user is
	// started, and the call returns once every goroutine has exited.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.cfg.AppendConcurrency)
	for _, u := range order {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return s.appendUser(gctx, u, byUser[u], ns, results) })
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return results, nil
}

// appendUser appends one user's notifications (idx into ns, in input order).
func (s *Store) appendUser(ctx context.Context, userID string, idx []int, ns []herald.Notification, results []store.AppendResult) error {
	for len(idx) > 0 {
		n := min(len(idx), s.cfg.MaxBatch)
		if err := s.appendPart(ctx, userID, idx[:n], ns, results); err != nil {
			return err
		}
		idx = idx[n:]
	}
	return nil
}

// appendPart commits up to MaxBatch notifications of one user atomically.
func (s *Store) appendPart(ctx context.Context, userID string, idx []int, ns []herald.Notification, results []store.AppendResult) error {
	var eventIDs []string
	seen := make(map[string]bool, len(idx))
	for _, i := range idx {
		if e := ns[i].EventID; !seen[e] {
			seen[e] = true
			eventIDs = append(eventIDs, e)
		}
	}
	// The state and the event index are read in one query, one snapshot of
	// the partition; the stored copies of duplicates are read after it.
	var targets map[int64]string
	state := func(ctx context.Context, serial bool) (meta, error) {
		m, t, err := s.readMetaAndEvents(ctx, userID, eventIDs, serial)
		targets = t
		return m, err
	}
	return s.cas(ctx, "append", userID, state, func(ctx context.Context, m meta, op gocql.UUID) (casPlan, error) {
		stored, err := s.storedEvents(ctx, userID, targets, m.readUpto)
		if err != nil {
			return casPlan{}, err
		}
		out := make([]store.AppendResult, len(idx))
		created := make(map[string]int) // event id → index in out
		next := m.last
		var b *gocql.Batch
		for k, i := range idx {
			in := &ns[i]
			if n, ok := stored[in.EventID]; ok {
				out[k] = store.AppendResult{Notification: n}
				continue
			}
			if j, ok := created[in.EventID]; ok {
				dup := out[j].Notification
				dup.Data = bytes.Clone(dup.Data)
				out[k] = store.AppendResult{Notification: dup}
				continue
			}
			if next == math.MaxInt64 {
				return casPlan{}, fmt.Errorf("%w: user %q has exhausted the seq space", ErrCorrupt, userID)
			}
			next++
			n := *in
			n.Seq, n.Prev, n.Read = uint64(next), uint64(next-1), false
			n.Data = bytes.Clone(in.Data)
			if n.ID == "" {
				n.ID = herald.NewID(n.CreatedAt)
			}
			created[in.EventID] = k
			out[k] = store.AppendResult{Notification: n, Created: true}
			if b == nil {
				b = s.newBatch()
			}
			b.Query(s.q.insertNotification, userID, next, n.ID, n.EventID, n.Type, string(n.Priority),
				n.Title, n.Body, blob(n.Data), timestamp(n.CreatedAt), s.cfg.ttl)
			b.Query(s.q.insertUnread, userID, next, s.cfg.ttl)
			b.Query(s.q.insertEvent, userID, n.EventID, next, s.cfg.ttl)
		}
		publish := func() {
			for k, i := range idx {
				results[i] = out[k]
			}
		}
		if b == nil {
			return casPlan{done: publish}, nil
		}
		added := next - m.last
		if !m.exists {
			b.Query(s.q.anchor, userID)
		}
		b.Query(s.q.commit, m.rev+1, next, max(m.unread, 0)+added, m.readUpto, op, userID, m.revCond())
		return casPlan{batch: b, done: publish}, nil
	})
}

// readMetaAndEvents reads the user's statics and the event-index entries
// of eventIDs with one query when they fit one IN clause: the anchor row
// (0, 0, "") and the index rows (3, 0, event id) are both selected by
// kind IN (0, 3) AND seq = 0 AND event_key IN ("", ids...). It returns the
// index as seq → event id.
func (s *Store) readMetaAndEvents(ctx context.Context, userID string, eventIDs []string, serial bool) (meta, map[int64]string, error) {
	first := eventIDs[:min(len(eventIDs), inClause)]
	keys := append([]string{""}, first...)
	q := s.read(s.q.metaAndEvents, userID, keys)
	if serial {
		q = q.Consistency(s.cfg.serial)
	}
	iter := q.IterContext(ctx)
	var (
		m       meta
		targets = make(map[int64]string)
		kind    int8
		key     string
		target  int64
	)
	for iter.Scan(&kind, &key, &target, &m.rev, &m.last, &m.unread, &m.readUpto, &m.op) {
		switch kind {
		case kindAnchor:
			m.exists = true
		case kindEvent:
			targets[target] = key
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
			targets[target] = key
		}
		if err := iter.Close(); err != nil {
			return meta{}, nil, s.fail("look up event ids", err)
		}
	}
	return m, targets, nil
}

// storedEvents reads the notifications the index entries point to, by
// event id. An entry whose notification expired in the meantime counts as
// absent.
func (s *Store) storedEvents(ctx context.Context, userID string, targets map[int64]string, readUpto int64) (map[string]herald.Notification, error) {
	if len(targets) == 0 {
		return nil, nil
	}
	seqs := make([]int64, 0, len(targets))
	for seq := range targets {
		seqs = append(seqs, seq)
	}
	slices.Sort(seqs)
	ns, err := s.loadNotifications(ctx, userID, seqs, readUpto)
	if err != nil {
		return nil, err
	}
	out := make(map[string]herald.Notification, len(ns))
	for _, n := range ns {
		if want := targets[int64(n.Seq)]; n.EventID != want {
			return nil, fmt.Errorf("%w: user %q: event id %q indexes seq %d, which holds event %q", ErrCorrupt, userID, want, n.Seq, n.EventID)
		}
		out[n.EventID] = n
	}
	return out, nil
}

// loadNotifications reads the notifications at seqs (ascending), with their
// read flags; missing (expired) ones are left out.
func (s *Store) loadNotifications(ctx context.Context, userID string, seqs []int64, readUpto int64) ([]herald.Notification, error) {
	var out []herald.Notification
	for part := range slices.Chunk(seqs, inClause) {
		iter := s.read(s.q.notificationsIn, userID, part).IterContext(ctx)
		var r rowScan
		for iter.Scan(r.dest()...) {
			out = append(out, r.notification(userID, true))
			r = rowScan{}
		}
		if err := iter.Close(); err != nil {
			return nil, s.fail("read notifications", err)
		}
	}
	var maybeUnread []int64
	for _, n := range out {
		if int64(n.Seq) > readUpto {
			maybeUnread = append(maybeUnread, int64(n.Seq))
		}
	}
	unread, err := s.unreadAmong(ctx, userID, maybeUnread)
	if err != nil {
		return nil, err
	}
	for i := range out {
		out[i].Read = !unread[int64(out[i].Seq)]
	}
	return out, nil
}

// unreadAmong returns which of seqs have an unread marker.
func (s *Store) unreadAmong(ctx context.Context, userID string, seqs []int64) (map[int64]bool, error) {
	out := make(map[int64]bool)
	for part := range slices.Chunk(seqs, inClause) {
		iter := s.read(s.q.unreadIn, userID, part).IterContext(ctx)
		var seq int64
		for iter.Scan(&seq) {
			out[seq] = true
		}
		if err := iter.Close(); err != nil {
			return nil, s.fail("read unread markers", err)
		}
	}
	return out, nil
}

// rowScan receives one notification row.
type rowScan struct {
	seq                                     int64
	id, eventID, typ, priority, title, body string
	data                                    []byte
	createdAt                               time.Time
	readUpto                                int64 // only with listAfter*
}

func (r *rowScan) dest() []any {
	return []any{&r.seq, &r.id, &r.eventID, &r.typ, &r.priority, &r.title, &r.body, &r.data, &r.createdAt}
}

func (r *rowScan) notification(userID string, read bool) herald.Notification {
	n := herald.Notification{
		ID: r.id, Seq: uint64(r.seq), Prev: uint64(r.seq - 1), EventID: r.eventID, Type: r.typ,
		Priority: herald.Priority(r.priority), Title: r.title, Body: r.body, CreatedAt: r.createdAt,
		Read: read, UserID: userID,
	}
	if r.data != nil {
		n.Data = r.data
	}
	return n
}

// blob binds Data, storing an absent payload as null.
func blob(b []byte) any {
	if b == nil {
		return nil
	}
	return b
}

// timestamp binds a time, storing the zero time as null.
func timestamp(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return t
}

// List implements store.Inbox. Without unreadOnly it reads the page of
// notifications, then the unread markers of the page's range (skipped when
// MarkAllRead covered the page); with unreadOnly it walks the unread
// markers from max(after, read_upto) and reads their notifications.
func (s *Store) List(ctx context.Context, userID string, after uint64, limit int, unreadOnly bool) ([]herald.Notification, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	out := []herald.Notification{}
	if after >= math.MaxInt64 { // nothing can follow
		return out, nil
	}
	if unreadOnly {
		return s.listUnread(ctx, userID, int64(after), limit)
	}
	var q *gocql.Query
	if limit > 0 {
		q = s.read(s.q.listAfterLimit, userID, int64(after), limit)
	} else {
		q = s.read(s.q.listAfter, userID, int64(after)).PageSize(1000)
	}
	iter := q.IterContext(ctx)
	var (
		r        rowScan
		readUpto int64
	)
	for iter.Scan(append(r.dest(), &r.readUpto)...) {
		readUpto = r.readUpto
		out = append(out, r.notification(userID, true))
		r = rowScan{}
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("list", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	last := int64(out[len(out)-1].Seq)
	if last <= readUpto {
		return out, nil // MarkAllRead covered the whole page
	}
	iter = s.read(s.q.unreadBetween, userID, max(int64(after), readUpto), last).PageSize(1000).IterContext(ctx)
	unread := make(map[int64]bool)
	var seq int64
	for iter.Scan(&seq) {
		unread[seq] = true
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("list unread markers", err)
	}
	for i := range out {
		out[i].Read = !unread[int64(out[i].Seq)]
	}
	return out, nil
}

// listUnread lists unread notifications with seq > after.
func (s *Store) listUnread(ctx context.Context, userID string, after int64, limit int) ([]herald.Notification, error) {
	from := after
	var seqs []int64
	for pass := 0; ; pass++ {
		var q *gocql.Query
		if limit > 0 {
			q = s.read(s.q.unreadAfterLimit, userID, from, limit)
		} else {
			q = s.read(s.q.unreadAfter, userID, from).PageSize(1000)
		}
		iter := q.IterContext(ctx)
		var (
			seq, readUpto int64
			stale         bool
		)
		seqs = seqs[:0]
		for iter.Scan(&seq, &readUpto) {
			if seq <= readUpto {
				stale = true // a marker MarkAllRead made moot
				continue
			}
			seqs = append(seqs, seq)
		}
		if err := iter.Close(); err != nil {
			return nil, s.fail("list unread markers", err)
		}
		// Moot markers may have taken the places of live ones under the
		// limit: read again from the watermark (once; it only moves up).
		if stale && limit > 0 && len(seqs) < limit && pass == 0 && readUpto > from {
			from = readUpto
			continue
		}
		break
	}
	out := []herald.Notification{}
	for part := range slices.Chunk(seqs, inClause) {
		iter := s.read(s.q.notificationsIn, userID, part).IterContext(ctx)
		var r rowScan
		for iter.Scan(r.dest()...) {
			out = append(out, r.notification(userID, false))
			r = rowScan{}
		}
		if err := iter.Close(); err != nil {
			return nil, s.fail("list unread", err)
		}
	}
	return out, nil
}

// LastSeq implements store.Inbox with one point read.
func (s *Store) LastSeq(ctx context.Context, userID string) (uint64, error) {
	m, err := s.meta(ctx, userID)
	return uint64(m.last), err
}

// UnreadCount implements store.Inbox with one point read.
func (s *Store) UnreadCount(ctx context.Context, userID string) (int64, error) {
	m, err := s.meta(ctx, userID)
	return max(m.unread, 0), err
}

func (s *Store) meta(ctx context.Context, userID string) (meta, error) {
	if err := checkUserID(userID); err != nil {
		return meta{}, err
	}
	if err := s.begin(ctx); err != nil {
		return meta{}, err
	}
	return s.readMeta(ctx, userID, false)
}

// MarkRead implements store.Inbox: it deletes the unread markers of seqs
// that have one and lowers the count, in one conditional batch. When none of
// seqs is unread it only reads.
func (s *Store) MarkRead(ctx context.Context, userID string, seqs []uint64) (int64, error) {
	if err := checkUserID(userID); err != nil {
		return 0, err
	}
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	want := make([]int64, 0, len(seqs))
	for _, seq := range seqs {
		if seq > 0 && seq <= math.MaxInt64 {
			want = append(want, int64(seq))
		}
	}
	slices.Sort(want)
	want = slices.Compact(want)
	var unread int64
	err := s.cas(ctx, "mark_read", userID, nil, func(ctx context.Context, m meta, op gocql.UUID) (casPlan, error) {
		cur := max(m.unread, 0)
		noop := casPlan{done: func() { unread = cur }}
		if cur == 0 {
			return noop, nil
		}
		var cand []int64
		for _, seq := range want {
			if seq > m.readUpto && seq <= m.last {
				cand = append(cand, seq)
			}
		}
		if len(cand) == 0 {
			return noop, nil
		}
		live, err := s.unreadAmong(ctx, userID, cand)
		if err != nil || len(live) == 0 {
			return noop, err
		}
		b := s.newBatch()
		for seq := range live {
			b.Query(s.q.deleteUnread, userID, seq)
		}
		after := max(cur-int64(len(live)), 0)
		b.Query(s.q.commit, m.rev+1, m.last, after, m.readUpto, op, userID, m.revCond())
		return casPlan{batch: b, done: func() { unread = after }}, nil
	})
	if err != nil {
		return 0, err
	}
	return unread, nil
}

// MarkAllRead implements store.Inbox in O(1): one conditional update moves
// the read watermark to the last seq and zeroes the count. Markers below
// the watermark are moot; they expire with their notifications. It only
// reads when nothing is unread. The count it returns is always 0: the
// commit is atomic with respect to appends.
func (s *Store) MarkAllRead(ctx context.Context, userID string) (int64, error) {
	if err := checkUserID(userID); err != nil {
		return 0, err
	}
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	err := s.cas(ctx, "mark_all_read", userID, nil, func(ctx context.Context, m meta, op gocql.UUID) (casPlan, error) {
		if !m.exists || m.unread <= 0 {
			return casPlan{done: func() {}}, nil
		}
		b := s.newBatch()
		b.Query(s.q.commit, m.rev+1, m.last, int64(0), m.last, op, userID, m.revCond())
		return casPlan{batch: b, done: func() {}}, nil
	})
	return 0, err
}

// Claim implements store.Inbox with one lightweight transaction
// (INSERT ... IF NOT EXISTS) on the claim's own partition. It is safe to
// retry: a retry of a claim that went through finds its own token.
func (s *Store) Claim(ctx context.Context, userID, eventID, token string) (bool, error) {
	if err := checkUserID(userID); err != nil {
		return false, err
	}
	if eventID == "" {
		return false, &herald.ValidationError{Field: "event_id", Reason: "must not be empty"}
	}
	if err := s.begin(ctx); err != nil {
		return false, err
	}
	prev := map[string]any{}
	applied, err := s.session.Query(s.q.claim, userID, eventID, token, s.cfg.ttl).
		Idempotent(true).MapScanCASContext(ctx, prev)
	if err != nil {
		return false, s.fail("claim", err)
	}
	if applied {
		return true, nil
	}
	owner, _ := prev["claimed_by"].(string)
	return owner == token, nil
}
