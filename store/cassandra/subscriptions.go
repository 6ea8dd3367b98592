package cassandra

import (
	"context"
	"errors"
	"fmt"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// The subscription tables (migration 0008, doc.go "Subscriptions"):
// subscriptions_by_user (user → topics, the truth, changed only by
// lightweight transactions), subscriptions_by_topic (topic → members, the
// fan-out's index, plain writes) and subscription_counts (topic → members,
// a counter). Times are unix microseconds.

const (
	// maxMembersLimit bounds Members' limit (store.Subscriptions).
	maxMembersLimit = 10_000
	// maxUnknownLWT bounds the attempts of a subscription transaction
	// whose outcome stayed unknown (timeouts) before the call gives up.
	maxUnknownLWT = 3
)

// checkSubscription validates a (user, topic) pair like every store does.
func checkSubscription(userID, topic string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	return herald.ValidateTopic(topic)
}

// Subscribe implements store.Subscriptions: a count of the user's topics
// (one read; at the cap, a point read tells a repeat from a new topic),
// INSERT ... IF NOT EXISTS on subscriptions_by_user (the transaction
// decides "created" and keeps the first subscribed_at), then, only when
// it applied, the counter +1, then the topic index row with the stored
// subscribed_at (also for a repeat: that repairs an earlier call that
// failed after its transaction). The writes after the transaction are
// not abandoned when ctx ends (each is bounded by Config.Timeout), so a
// client that hangs up does not leave the index or the count behind.
//
// The cap is checked before the transaction, not in it: concurrent
// Subscribes of one user to different topics may together pass it by the
// number of calls in flight.
func (s *Store) Subscribe(ctx context.Context, userID, topic string, at time.Time) (bool, error) {
	if err := checkSubscription(userID, topic); err != nil {
		return false, err
	}
	if err := s.begin(ctx); err != nil {
		return false, err
	}
	if at.IsZero() {
		at = time.Now()
	}
	us := at.UnixMicro()
	var n int64
	if err := s.read(s.q.subCount, userID).ScanContext(ctx, &n); err != nil {
		return false, s.fail("count subscriptions", err)
	}
	if n >= store.MaxTopicsPerUser {
		stored, ok, err := s.subscription(ctx, userID, topic, false)
		if err != nil {
			return false, err
		}
		if !ok {
			return false, &herald.ValidationError{Field: "topic",
				Reason: fmt.Sprintf("the user already has %d topics, the most allowed", store.MaxTopicsPerUser)}
		}
		return false, s.after(ctx, func(ctx context.Context) error { return s.putMember(ctx, userID, topic, stored) })
	}
	created, stored, err := s.subscribeLWT(ctx, userID, topic, us)
	if err != nil {
		return false, err
	}
	return created, s.after(ctx, func(ctx context.Context) error {
		if created {
			s.addCount(ctx, topic, 1)
		}
		return s.putMember(ctx, userID, topic, stored)
	})
}

// subscribeLWT runs the INSERT ... IF NOT EXISTS and returns whether it
// applied and the stored subscribed_at_us. The statement is not marked
// idempotent (the driver does not retry it: a retry of an insert that
// went through would read as "already subscribed"); an unknown outcome
// is settled by a serial read, which completes any round in flight: the
// row holds this call's us iff it applied (or a concurrent Subscribe of
// the same membership with the very same time did).
func (s *Store) subscribeLWT(ctx context.Context, userID, topic string, us int64) (created bool, stored int64, err error) {
	for unknown := 0; ; unknown++ {
		prev := map[string]any{}
		applied, err := s.lwtFn(ctx, s.session.Query(s.q.subInsert, userID, topic, us), prev)
		if err == nil {
			if applied {
				return true, us, nil
			}
			stored, _ := prev["subscribed_at_us"].(int64)
			return false, stored, nil
		}
		if ctx.Err() != nil || !maybeApplied(err) || unknown+1 >= maxUnknownLWT {
			return false, 0, s.fail("subscribe", err)
		}
		s.m.casUnknown.WithLabelValues("subscribe").Inc()
		s.log.Warn("subscribe outcome unknown, settling it with a serial read", "user", userID, "topic", topic, "err", err)
		got, ok, rerr := s.subscription(ctx, userID, topic, true)
		if rerr != nil {
			return false, 0, rerr
		}
		if ok {
			return got == us, got, nil
		}
		// Not applied (the serial read finished any round in flight): again.
	}
}

// Unsubscribe implements store.Subscriptions: DELETE ... IF EXISTS on
// subscriptions_by_user, then, only when it applied, the counter -1, then
// the deletion of the topic index row (also when it did not apply: that
// repairs an earlier call that failed after its transaction). An unknown
// outcome is settled by a serial read: a row still there did not go and
// the transaction is tried again; a row gone is taken as this call's
// removal (the read cannot tell it from a membership that did not exist
// or that a concurrent Unsubscribe removed: then the call reports
// removed and the count drifts by one).
func (s *Store) Unsubscribe(ctx context.Context, userID, topic string) (bool, error) {
	if err := checkSubscription(userID, topic); err != nil {
		return false, err
	}
	if err := s.begin(ctx); err != nil {
		return false, err
	}
	var removed bool
	for unknown := 0; ; unknown++ {
		applied, err := s.lwtFn(ctx, s.session.Query(s.q.subDelete, userID, topic), map[string]any{})
		if err == nil {
			removed = applied
			break
		}
		if ctx.Err() != nil || !maybeApplied(err) || unknown+1 >= maxUnknownLWT {
			return false, s.fail("unsubscribe", err)
		}
		s.m.casUnknown.WithLabelValues("unsubscribe").Inc()
		s.log.Warn("unsubscribe outcome unknown, settling it with a serial read", "user", userID, "topic", topic, "err", err)
		_, ok, rerr := s.subscription(ctx, userID, topic, true)
		if rerr != nil {
			return false, rerr
		}
		if !ok {
			removed = true
			break
		}
	}
	return removed, s.after(ctx, func(ctx context.Context) error {
		if removed {
			s.addCount(ctx, topic, -1)
		}
		if err := s.session.Query(s.q.memberDelete, topic, userID).Idempotent(true).ExecContext(ctx); err != nil {
			return s.fail("delete subscription index", err)
		}
		return nil
	})
}

// mapScanCAS runs a conditional statement (Store.lwtFn).
func mapScanCAS(ctx context.Context, q *gocql.Query, prev map[string]any) (bool, error) {
	return q.MapScanCASContext(ctx, prev)
}

// subscription reads one membership's subscribed_at_us; serial reads at
// the serial consistency, which first completes any lightweight
// transaction left in flight on the user's partition.
func (s *Store) subscription(ctx context.Context, userID, topic string, serial bool) (int64, bool, error) {
	q := s.read(s.q.subGet, userID, topic)
	if serial {
		q = q.Consistency(s.cfg.serial)
	}
	var us int64
	err := q.ScanContext(ctx, &us)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return 0, false, nil
	case err != nil:
		return 0, false, s.fail("read subscription", err)
	}
	return us, true, nil
}

// after runs the writes that follow a subscription transaction on a
// context that ctx's cancellation does not end, bounded by
// Config.Timeout per request (and twice that in all): the transaction
// has happened, and leaving its index row or count undone because the
// caller went away would only make a later call repair it (or the count
// drift).
func (s *Store) after(ctx context.Context, f func(ctx context.Context) error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*s.cfg.Timeout)
	defer cancel()
	return f(ctx)
}

// putMember writes the topic index row: a plain insert of the same cells
// for every call of one membership, so it is safe to retry.
func (s *Store) putMember(ctx context.Context, userID, topic string, us int64) error {
	if err := s.read(s.q.memberPut, topic, userID, us).ExecContext(ctx); err != nil {
		return s.fail("write subscription index", err)
	}
	return nil
}

// addCount adds delta to the topic's member count. A counter update is
// not idempotent (a retry of one that went through counts twice), so it
// is tried once and never retried, by the driver or here; a failure is
// logged and counted (herald_cassandra_member_count_failures_total), not
// returned: the membership itself is stored, and the count drifts by
// one (doc.go, "Subscriptions").
func (s *Store) addCount(ctx context.Context, topic string, delta int64) {
	if err := s.session.Query(s.q.countAdd, delta, topic).ExecContext(ctx); err != nil {
		s.m.countFailures.Inc()
		s.log.Warn("member count update failed; the topic's count may drift by one", "topic", topic, "delta", delta, "err", err)
	}
}

// Topics implements store.Subscriptions: one read of the user's partition
// of subscriptions_by_user (at most store.MaxTopicsPerUser rows), in
// clustering order, which is ascending bytewise by topic.
func (s *Store) Topics(ctx context.Context, userID string) ([]store.Subscription, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	out := []store.Subscription{}
	iter := s.read(s.q.subTopics, userID).PageSize(store.MaxTopicsPerUser).IterContext(ctx)
	var (
		topic string
		us    int64
	)
	for iter.Scan(&topic, &us) {
		out = append(out, store.Subscription{UserID: userID, Topic: topic, SubscribedAt: time.UnixMicro(us).UTC()})
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("read subscriptions", err)
	}
	return out, nil
}

// Members implements store.Subscriptions: one slice of the topic's
// partition of subscriptions_by_topic, WHERE user_id > after LIMIT limit,
// in clustering order (ascending bytewise by user id), read in driver
// pages of at most 5,000 rows.
func (s *Store) Members(ctx context.Context, topic, after string, limit int) ([]store.Subscription, error) {
	if err := herald.ValidateTopic(topic); err != nil {
		return nil, err
	}
	if limit < 1 || limit > maxMembersLimit {
		return nil, &herald.ValidationError{Field: "limit", Reason: fmt.Sprintf("must be 1 to %d", maxMembersLimit)}
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	out := []store.Subscription{}
	iter := s.read(s.q.membersAfter, topic, after, limit).PageSize(min(limit, 5000)).IterContext(ctx)
	var (
		userID string
		us     int64
	)
	for iter.Scan(&userID, &us) {
		out = append(out, store.Subscription{UserID: userID, Topic: topic, SubscribedAt: time.UnixMicro(us).UTC()})
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("read members", err)
	}
	return out, nil
}

// MemberCount implements store.Subscriptions: one point read of the
// topic's counter. Exact unless a counter update failed (doc.go,
// "Subscriptions"); a count driven below zero by such failures reads 0.
func (s *Store) MemberCount(ctx context.Context, topic string) (int64, error) {
	if err := herald.ValidateTopic(topic); err != nil {
		return 0, err
	}
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	var n int64
	err := s.read(s.q.countGet, topic).ScanContext(ctx, &n)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return 0, nil
	case err != nil:
		return 0, s.fail("read member count", err)
	}
	return max(n, 0), nil
}
