package cassandra

import (
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	"github.com/heraldhq/herald/internal/retry"
)

// casBackoff spaces the attempts of a compare-and-set commit that lost to a
// concurrent writer of the same user.
var casBackoff = retry.Backoff{Min: time.Millisecond, Max: 50 * time.Millisecond}

// inClause bounds the values of one IN (...) query.
const inClause = 100

// meta is a user's per-partition state (the static columns). last is the
// writers' (plain writes stamped by the epoch, see doc.go, "Fencing"); rev,
// readAbove, readUpto and op are the readers' (MarkRead and MarkAllRead,
// lightweight transactions).
type meta struct {
	exists                         bool
	rev, last, readAbove, readUpto int64
	op                             gocql.UUID
}

// dest is where a query selecting rev, last_seq, read_above, read_upto, op
// (in that order) scans them; null columns read as 0.
func (m *meta) dest() []any {
	return []any{&m.rev, &m.last, &m.readAbove, &m.readUpto, &m.op}
}

// unread is the number of unread notifications: every seq in
// (read_upto, last_seq] without a read marker.
func (m meta) unread() int64 {
	return max(m.last-m.readUpto-m.readAbove, 0)
}

// revCond is the value of the commit's IF rev = ? (null for a new user).
func (m meta) revCond() any {
	if !m.exists || m.rev == 0 { // null: no MarkRead yet (commits set rev >= 1)
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
	err := q.ScanContext(ctx, append([]any{&kind}, m.dest()...)...)
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

// cas runs a compare-and-set loop on the readers' state of the user's
// partition (rev, read_upto, read_above): read the state,
// plan, commit with IF rev = <read rev>, and start over when a concurrent
// change won. A commit whose outcome is unknown (timeout, broken
// connection) is settled by a serial read: the commit applied iff the
// partition's op is the attempt's op.
func (s *Store) cas(ctx context.Context, opName, userID string, plan planFunc) error {
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
		m, err := s.readMeta(ctx, userID, pendingDone != nil)
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
