package cassandra

import (
	"bytes"
	"context"
	"fmt"
	"hash/maphash"
	"math"
	"slices"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
	"golang.org/x/sync/errgroup"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// An Append in rounds (doc.go, "Append: order of writes and crash safety"
// and "Several users per request"): each round plans the next part of
// every user that has one (reading first where the writer's cache cannot
// vouch for the ids), packs the parts that write something into batches
// of up to Config.GroupUsers users of one coordinator and
// Config.GroupBytes, writes the batches in parallel, and only then moves
// each written user's state and results on. A user's parts are in
// successive rounds, so they are written in order; users are independent.

// part is one user's part of an Append: up to MaxBatch of its
// notifications, planned against the user's state.
type part struct {
	user     string
	idx      []int // into ns, in input order
	eventIDs []string
	st       *userState // nil without the cache
	m        meta       // the state the part was planned on
	next     int64      // last_seq after the part
	out      []store.AppendResult
	stmts    []stmt // nothing to write when empty (every event stored)
	size     int    // estimated bytes of the mutation (GroupBytes)
	owner    int    // the coordinator's index in the ring (0 without one)
}

type stmt struct {
	cql  string
	args []any
}

// appendChecked is Append past its fencing check.
func (w *writer) appendChecked(ctx context.Context, ns []herald.Notification, results []store.AppendResult) ([]store.AppendResult, error) {
	var order []string
	byUser := make(map[string][]int)
	for i := range ns {
		u := ns[i].UserID
		if _, ok := byUser[u]; !ok {
			order = append(order, u)
		}
		byUser[u] = append(byUser[u], i)
	}
	defer w.lockUsers(order)()
	s := w.s
	states := make(map[string]*userState, len(order))
	if s.cache != nil {
		for _, u := range order {
			if st := s.cache.take(w, u); st != nil {
				states[u] = st
			}
		}
	}
	r := s.ring.get(time.Now())
	failed := map[string]bool{}
	pending := order
	var err error
	for len(pending) > 0 && err == nil {
		var parts []*part
		if parts, err = w.planRound(ctx, pending, byUser, ns, states); err != nil {
			break
		}
		var written []*part
		written, err = w.writeRound(ctx, parts, r, failed)
		for _, p := range written {
			w.applied(p, results)
		}
		var more []string
		for _, p := range parts {
			if rest := byUser[p.user][len(p.idx):]; len(rest) > 0 {
				byUser[p.user] = rest
				more = append(more, p.user)
			}
		}
		pending = more
	}
	if s.cache != nil {
		// A state is put back unless the user's part failed: a failed or
		// lost batch may still land (doc.go, "The writer's cache").
		for u, st := range states {
			if !failed[u] {
				s.cache.put(u, st)
			}
		}
	}
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return results, nil
}

// lockUsers takes the per-user locks of users, in stripe order (so that
// two Appends of one writer cannot each hold a stripe the other waits
// for), and returns their release.
func (w *writer) lockUsers(users []string) func() {
	var stripes []int
	for _, u := range users {
		stripes = append(stripes, int(maphash.String(w.seed, u)%uint64(len(w.users))))
	}
	slices.Sort(stripes)
	stripes = slices.Compact(stripes)
	for _, i := range stripes {
		w.users[i].Lock()
	}
	return func() {
		for _, i := range slices.Backward(stripes) {
			w.users[i].Unlock()
		}
	}
}

// planRound plans the next part of each of users, at most
// AppendConcurrency at a time (the reads of users not vouched for by the
// cache run in parallel), in goroutines owned by the call.
func (w *writer) planRound(ctx context.Context, users []string, byUser map[string][]int, ns []herald.Notification, states map[string]*userState) ([]*part, error) {
	parts := make([]*part, len(users))
	sts := make([]*userState, len(users))
	for i, u := range users {
		sts[i] = states[u]
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(w.s.cfg.AppendConcurrency)
	for i, u := range users {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			st := sts[i]
			if st == nil && w.s.cache != nil {
				var err error
				if st, err = w.loadUser(gctx, u); err != nil {
					return err
				}
				sts[i] = st
			}
			idx := byUser[u]
			p, err := w.planPart(gctx, u, idx[:min(len(idx), w.s.cfg.MaxBatch)], ns, st)
			parts[i] = p
			return err
		})
	}
	err := g.Wait()
	if w.s.cache != nil {
		for i, u := range users {
			if sts[i] != nil {
				states[u] = sts[i]
			}
		}
	}
	if err != nil {
		return nil, err
	}
	return parts, ctx.Err()
}

// planPart plans up to MaxBatch notifications of one user: the seqs of the
// new events after the user's last_seq, the stored copies of the others,
// and the statements that write the new ones. The state is read first
// (the user's statics and the part's event ids) unless the writer's state
// st (nil without the cache) knows that every one of the ids is new.
func (w *writer) planPart(ctx context.Context, userID string, idx []int, ns []herald.Notification, st *userState) (*part, error) {
	s := w.s
	p := &part{user: userID, idx: idx, st: st, out: make([]store.AppendResult, len(idx))}
	seen := make(map[string]bool, len(idx))
	for _, i := range idx {
		if e := ns[i].EventID; !seen[e] {
			seen[e] = true
			p.eventIDs = append(p.eventIDs, e)
		}
	}
	var stored map[string]herald.Notification
	if st != nil && !s.cache.known(st, p.eventIDs) {
		p.m = meta{exists: st.exists, last: st.last}
		s.m.writerCache.WithLabelValues("skipped").Inc()
	} else {
		if st != nil {
			s.m.writerCache.WithLabelValues("read").Inc()
		}
		var targets map[string]int64
		var err error
		if p.m, targets, err = s.readMetaAndEvents(ctx, userID, p.eventIDs); err != nil {
			return nil, err
		}
		if stored, err = s.storedEvents(ctx, userID, targets, p.m); err != nil {
			return nil, err
		}
	}
	created := make(map[string]int) // event id → index in out
	next := p.m.last
	p.size = len(userID) + 64
	for k, i := range idx {
		in := &ns[i]
		if n, ok := stored[in.EventID]; ok {
			p.out[k] = store.AppendResult{Notification: n}
			continue
		}
		if j, ok := created[in.EventID]; ok {
			dup := p.out[j].Notification
			dup.Data = bytes.Clone(dup.Data)
			p.out[k] = store.AppendResult{Notification: dup}
			continue
		}
		if next == math.MaxInt64 {
			return nil, fmt.Errorf("%w: user %q has exhausted the seq space", ErrCorrupt, userID)
		}
		next++
		n := *in
		n.Seq, n.Prev, n.Read = uint64(next), uint64(next-1), false
		n.Data = bytes.Clone(in.Data)
		if n.ID == "" {
			n.ID = herald.NewID(n.CreatedAt)
		}
		created[in.EventID] = k
		p.out[k] = store.AppendResult{Notification: n, Created: true}
		p.stmts = append(p.stmts,
			stmt{s.q.insertNotification, []any{userID, next, n.ID, n.EventID, n.Type, string(n.Priority),
				n.Title, n.Body, blob(n.Data), timestamp(n.CreatedAt), s.cfg.ttl}},
			stmt{s.q.insertEvent, []any{userID, n.EventID, next, s.cfg.ttl}})
		p.size += mutationSize(&n)
	}
	if next > p.m.last {
		if !p.m.exists {
			p.stmts = append(p.stmts, stmt{s.q.anchor, []any{userID}})
		}
		p.stmts = append(p.stmts, stmt{s.q.setLastSeq, []any{next, userID}})
	}
	p.next = next
	return p, nil
}

// mutationSize over-estimates what a notification and its index entry add
// to a batch's size as Cassandra measures it against
// batch_size_warn_threshold: the values, and about 320 bytes of keys,
// clustering and per-cell timestamp, TTL and deletion time (Cassandra
// 5.0 reported 434 bytes for a notification of 120 bytes of values, and
// 1,924 for one of 1,610; this estimate says 526 and 2,016).
func mutationSize(n *herald.Notification) int {
	return len(n.ID) + 2*len(n.EventID) + len(n.Type) + len(n.Priority) + len(n.Title) + len(n.Body) + len(n.Data) + 384
}

// writeRound writes the parts that have statements, packed into batches
// (pack), at most AppendConcurrency batches at a time, each stamped with
// the epoch's next timestamp. It returns the parts written (every part of
// a batch that succeeded, and the parts with nothing to write) and the
// first error; the users of a batch that failed are added to failed.
func (w *writer) writeRound(ctx context.Context, parts []*part, r *ring, failed map[string]bool) ([]*part, error) {
	var written, toWrite []*part
	for _, p := range parts {
		if len(p.stmts) == 0 {
			written = append(written, p)
			continue
		}
		if r != nil {
			p.owner = r.owner(murmur3Token([]byte(p.user)))
		} else {
			p.owner = -1 // no ring: each user alone
		}
		toWrite = append(toWrite, p)
	}
	batches := pack(toWrite, w.s.cfg.GroupUsers, w.s.cfg.GroupBytes)
	ok := make([]bool, len(batches))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(w.s.cfg.AppendConcurrency)
	for i, batch := range batches {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			if err := w.writeBatch(gctx, batch); err != nil {
				return err
			}
			ok[i] = true
			return nil
		})
	}
	err := g.Wait()
	for i, batch := range batches {
		if ok[i] {
			written = append(written, batch...)
			continue
		}
		for _, p := range batch {
			failed[p.user] = true
		}
	}
	return written, err
}

// pack groups parts by owner (-1: each part alone) into batches of at most
// maxUsers parts and maxBytes (a part larger than maxBytes goes alone: a
// single-partition batch is not held to Cassandra's batch size limits),
// keeping the parts' order within a batch.
func pack(parts []*part, maxUsers, maxBytes int) [][]*part {
	var batches [][]*part
	open := map[int]int{} // owner → index of its batch being filled
	size := map[int]int{}
	for _, p := range parts {
		if p.owner >= 0 {
			if i, ok := open[p.owner]; ok && len(batches[i]) < maxUsers && size[p.owner]+p.size <= maxBytes {
				batches[i] = append(batches[i], p)
				size[p.owner] += p.size
				continue
			}
			open[p.owner], size[p.owner] = len(batches), p.size
		}
		batches = append(batches, []*part{p})
	}
	return batches
}

// writeBatch executes one batch of parts, stamped with the epoch's next
// timestamp: a later timestamp than any earlier part of its users, since
// a user's parts are in successive rounds.
func (w *writer) writeBatch(ctx context.Context, batch []*part) error {
	s := w.s
	b := s.session.Batch(gocql.UnloggedBatch)
	for _, p := range batch {
		for _, st := range p.stmts {
			b.Query(st.cql, st.args...)
		}
	}
	ts, err := w.nextTS()
	if err != nil {
		return err
	}
	b.WithTimestamp(ts)
	// Safe to retry: a retry rewrites the same cells with the same
	// timestamp.
	for i := range b.Entries {
		b.Entries[i].Idempotent = true
	}
	s.m.batchUsers.Observe(float64(len(batch)))
	if err := s.execFn(ctx, b); err != nil {
		return s.fail("append", err)
	}
	return nil
}

// applied moves a written part's user state on and fills its results.
func (w *writer) applied(p *part, results []store.AppendResult) {
	if st := p.st; st != nil {
		// What the partition holds now, as far as this writer can tell: its
		// own batch on top of the state it read or knew (doc.go, "The
		// writer's cache").
		st.last, st.exists = p.next, p.m.exists || p.next > p.m.last
		w.s.cache.add(st, p.eventIDs)
	}
	for k, i := range p.idx {
		results[i] = p.out[k]
	}
}
