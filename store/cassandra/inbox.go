package cassandra

import (
	"context"
	"math"
	"slices"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	herald "github.com/heraldhq/herald"
)

// loadNotifications reads the notifications at seqs (ascending, all at or
// below m.last), with their read flags; missing (expired) ones are left out.
func (s *Store) loadNotifications(ctx context.Context, userID string, seqs []int64, m meta) ([]herald.Notification, error) {
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
	var above []int64
	for _, n := range out {
		if int64(n.Seq) > m.readUpto {
			above = append(above, int64(n.Seq))
		}
	}
	marked := map[int64]bool{}
	if m.readAbove > 0 && len(above) > 0 {
		var err error
		if marked, err = s.readAmong(ctx, userID, above); err != nil {
			return nil, err
		}
	}
	for i := range out {
		seq := int64(out[i].Seq)
		out[i].Read = seq <= m.readUpto || marked[seq]
	}
	return out, nil
}

// readAmong returns which of seqs have a read marker.
func (s *Store) readAmong(ctx context.Context, userID string, seqs []int64) (map[int64]bool, error) {
	out := make(map[int64]bool)
	for part := range slices.Chunk(seqs, inClause) {
		iter := s.read(s.q.readIn, userID, part).IterContext(ctx)
		var seq int64
		for iter.Scan(&seq) {
			out[seq] = true
		}
		if err := iter.Close(); err != nil {
			return nil, s.fail("read read markers", err)
		}
	}
	return out, nil
}

// readMarkers returns the read markers with from < seq <= to.
func (s *Store) readMarkers(ctx context.Context, userID string, from, to int64) (map[int64]bool, error) {
	out := make(map[int64]bool)
	if from >= to {
		return out, nil
	}
	iter := s.read(s.q.readBetween, userID, from, to).PageSize(1000).IterContext(ctx)
	var seq int64
	for iter.Scan(&seq) {
		out[seq] = true
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("list read markers", err)
	}
	return out, nil
}

// rowScan receives one notification row.
type rowScan struct {
	seq                                     int64
	id, eventID, typ, priority, title, body string
	data                                    []byte
	createdAt                               time.Time
	m                                       meta // only with listAfter*
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

// List implements store.Inbox. It reads the page of notifications with
// the user's statics, then, only if the user has read markers above
// read_upto (MarkRead of single seqs since the last MarkAllRead), the
// markers of the page's range. Rows past last_seq (left by a fenced
// writer, see doc.go) are not listed.
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
		r rowScan
		m meta
	)
	for iter.Scan(append(r.dest(), r.m.dest()...)...) {
		m = r.m
		if r.seq <= m.last {
			out = append(out, r.notification(userID, true))
		}
		r = rowScan{}
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("list", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	last := int64(out[len(out)-1].Seq)
	marked := map[int64]bool{}
	if m.readAbove > 0 && last > m.readUpto {
		var err error
		if marked, err = s.readMarkers(ctx, userID, max(int64(after), m.readUpto), last); err != nil {
			return nil, err
		}
	}
	for i := range out {
		seq := int64(out[i].Seq)
		out[i].Read = seq <= m.readUpto || marked[seq]
	}
	return out, nil
}

// listUnread lists unread notifications with seq > after: it reads the
// statics, the read markers above read_upto (there are read_above of
// them), and walks the notifications from max(after, read_upto), skipping
// the marked ones, until limit.
func (s *Store) listUnread(ctx context.Context, userID string, after int64, limit int) ([]herald.Notification, error) {
	out := []herald.Notification{}
	m, err := s.readMeta(ctx, userID, false)
	if err != nil || !m.exists {
		return out, err
	}
	from := max(after, m.readUpto)
	if from >= m.last {
		return out, nil
	}
	marked := map[int64]bool{}
	if m.readAbove > 0 {
		if marked, err = s.readMarkers(ctx, userID, from, m.last); err != nil {
			return nil, err
		}
	}
	q := s.read(s.q.listAfter, userID, from).PageSize(1000)
	if limit > 0 && len(marked) == 0 {
		q = s.read(s.q.listAfterLimit, userID, from, limit)
	}
	iter := q.IterContext(ctx)
	var r rowScan
	var statics meta
	for iter.Scan(append(r.dest(), statics.dest()...)...) {
		if r.seq > m.last || (limit > 0 && len(out) >= limit) {
			break
		}
		if !marked[r.seq] {
			out = append(out, r.notification(userID, false))
		}
		r = rowScan{}
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("list unread", err)
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
	return m.unread(), err
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

// MarkRead implements store.Inbox: it writes a read marker for each of
// seqs in (read_upto, last_seq] that has none and raises read_above by
// their number, in one conditional batch. When none of seqs is unread it
// only reads.
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
	err := s.cas(ctx, "mark_read", userID, func(ctx context.Context, m meta, op gocql.UUID) (casPlan, error) {
		cur := m.unread()
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
		marked := map[int64]bool{}
		if m.readAbove > 0 {
			var err error
			if marked, err = s.readAmong(ctx, userID, cand); err != nil {
				return casPlan{}, err
			}
		}
		b := s.newBatch()
		added := int64(0)
		for _, seq := range cand {
			if !marked[seq] {
				b.Query(s.q.insertRead, userID, seq, s.cfg.ttl)
				added++
			}
		}
		if added == 0 {
			return noop, nil
		}
		m.readAbove += added
		b.Query(s.q.commit, m.rev+1, m.readUpto, m.readAbove, op, userID, m.revCond())
		after := m.unread()
		return casPlan{batch: b, done: func() { unread = after }}, nil
	})
	if err != nil {
		return 0, err
	}
	return unread, nil
}

// MarkAllRead implements store.Inbox in O(1): one conditional update moves
// the read watermark to the last seq and zeroes read_above. Read markers
// below the watermark are moot; they expire with their notifications. It
// only reads when nothing is unread. The count it returns is 0 unless
// notifications were appended after the read of last_seq.
func (s *Store) MarkAllRead(ctx context.Context, userID string) (int64, error) {
	if err := checkUserID(userID); err != nil {
		return 0, err
	}
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	err := s.cas(ctx, "mark_all_read", userID, func(ctx context.Context, m meta, op gocql.UUID) (casPlan, error) {
		if !m.exists || m.unread() == 0 {
			return casPlan{done: func() {}}, nil
		}
		b := s.newBatch()
		b.Query(s.q.commit, m.rev+1, m.last, int64(0), op, userID, m.revCond())
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
