package pipeline

import (
	"context"
	"fmt"
	"strconv"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/errclass"
	"github.com/heraldhq/herald/store"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

// batch is one polled batch of herald.events on its way through the
// enricher's stages, inside the batch's transaction:
//
//	decode → preferences → route → policy → claim → append → emit
//
// Each stage is one method. A stage returns an error only for what makes
// the whole batch fail (a transient or fatal error: the transaction is
// aborted and the batch replayed); a permanent error for one user marks
// that user failed instead, and emit dead-letters the user's records.
type batch struct {
	e       *Enricher
	now     time.Time
	recs    []*kgo.Record
	entries []*entry     // the valid events, in record order
	users   []*userBatch // in order of first appearance
	byID    map[string]*userBatch
	out     []*kgo.Record // what the transaction produces
	// live are the stored notifications, for the direct path once the
	// transaction committed (nil without one).
	live []herald.UserNotification
	st   batchStats
	// lapAt is when the current stage started (see lap).
	lapAt time.Time
}

// entry is one valid event of the batch.
type entry struct {
	rec   *kgo.Record
	ev    herald.Event
	user  *userBatch
	route herald.Route
	// routed: route was applied (the user's preferences loaded).
	routed bool
	// kept: survived routing, to be claimed or stored, then emitted.
	kept bool
	// claimed: a push-only event whose event id this record owns.
	claimed bool
	// n is the notification to append (in-app events); stored is the copy
	// the store returned, set once appended by this record.
	n      herald.Notification
	stored *herald.Notification

	// tick is set for a policy tick record (no event: ev is zero).
	tick *PolicyTick
	// digest: a digest notification the policy stage made (policy.go);
	// rec is the record that closed its window.
	digest bool
	// before are the digests this record closed, placed before it.
	before []*entry
	// dup: the policy stage found the event id claimed by another record.
	dup bool
	// expired: a push-only event past its TTL, dropped by routing.
	expired bool
	// policy are the policy actions taken on this record, for metrics.
	policy []policyAction
}

// userBatch is one user's share of the batch.
type userBatch struct {
	id      string
	prefs   herald.Preferences
	entries []*entry
	// failed is the permanent error that sends the user's records to the
	// DLQ; nil while the user is fine.
	failed error
}

func (e *Enricher) newBatch(recs []*kgo.Record) *batch {
	return &batch{e: e, now: e.cfg.Now(), recs: recs, byID: map[string]*userBatch{}, lapAt: time.Now()}
}

// lap records the time since the previous lap as the named stage.
func (b *batch) lap(stage string) {
	now := time.Now()
	b.e.m.stageSeconds.WithLabelValues(stage).Observe(now.Sub(b.lapAt).Seconds())
	b.lapAt = now
}

// run applies the stages in order; out is complete when it returns nil.
func (b *batch) run(ctx context.Context) error {
	if len(b.recs) > 0 {
		b.e.m.stageSeconds.WithLabelValues("queue").Observe(b.lapAt.Sub(b.recs[0].Timestamp).Seconds())
	}
	if err := b.decode(ctx); err != nil {
		return err
	}
	if err := b.preferences(ctx); err != nil {
		return err
	}
	b.lap("preferences")
	b.route()
	if err := b.policy(ctx); err != nil {
		return err
	}
	b.lap("policy")
	if err := b.claim(ctx); err != nil {
		return err
	}
	b.lap("claim")
	if err := b.append(ctx); err != nil {
		return err
	}
	b.lap("append")
	return b.emit()
}

// decode validates every record; invalid ones go to the DLQ as received,
// and valid ones found outside their user's partition are forwarded there
// (forward.go).
func (b *batch) decode(ctx context.Context) error {
	b.entries = make([]*entry, 0, len(b.recs))
	for _, r := range b.recs {
		var ev herald.Event
		tick, isTick, err := DecodeTickRecord(r)
		if !isTick && err == nil {
			ev, err = DecodeEventRecord(r)
		}
		if err != nil {
			b.st.rejected++
			b.out = append(b.out, b.e.codec.EventDLQ(r, err))
			continue
		}
		if ev.Multi() {
			// For the fan-out stage (fanout.go), in this transaction.
			fr, err := b.e.codec.Fanout(&FanoutRecord{Event: ev})
			if err != nil {
				return err
			}
			b.out = append(b.out, fr)
			b.st.fanout++
			continue
		}
		userID := ev.UserID
		if isTick {
			userID = tick.UserID
		}
		n, err := b.e.counts.get(ctx, r.Topic)
		if err != nil {
			return err
		}
		if userPartition(userID, n) != r.Partition {
			b.st.forwarded++
			b.out = append(b.out, forwardEvent(r, userID))
			continue
		}
		u, ok := b.byID[userID]
		if !ok {
			u = &userBatch{id: userID}
			b.byID[userID] = u
			b.users = append(b.users, u)
		}
		en := &entry{rec: r, ev: ev, user: u}
		if isTick {
			en.tick = &tick
		}
		u.entries = append(u.entries, en)
		b.entries = append(b.entries, en)
	}
	return nil
}

// perUser runs fn for each user not yet failed, up to StoreConcurrency at
// a time. A permanent error of fn fails that user; any other error fails
// the batch (the first one is returned, the other calls see their context
// canceled).
func (b *batch) perUser(ctx context.Context, users []*userBatch, fn func(ctx context.Context, u *userBatch) error) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(b.e.cfg.StoreConcurrency)
	for _, u := range users {
		if u.failed != nil {
			continue
		}
		g.Go(func() error {
			err := fn(ctx, u)
			if errclass.IsPermanent(err) {
				u.failed = err
				b.e.log.Warn("dead-lettering a user's events after a permanent store error", "user", u.id, "events", len(u.entries), "err", err)
				return nil
			}
			return err
		})
	}
	return g.Wait()
}

// cachedPreferences is implemented by stores that read many users'
// cached preferences in one round trip (store/prefcache: one MGET); the
// users it leaves out are read one by one.
type cachedPreferences interface {
	CachedPreferences(ctx context.Context, userIDs []string) map[string]herald.Preferences
}

// preferences loads each user's preferences: the cached ones of the whole
// batch at once when the store can, the others user by user.
func (b *batch) preferences(ctx context.Context) error {
	users := b.users
	if c, ok := b.e.cfg.Store.(cachedPreferences); ok && len(users) > 1 {
		ids := make([]string, len(users))
		for i, u := range users {
			ids[i] = u.id
		}
		got := c.CachedPreferences(ctx, ids)
		users = users[:0:0]
		for _, u := range b.users {
			if p, ok := got[u.id]; ok {
				u.prefs = p
				continue
			}
			users = append(users, u)
		}
	}
	return b.perUser(ctx, users, func(ctx context.Context, u *userBatch) error {
		p, err := b.e.cfg.Store.GetPreferences(ctx, u.id)
		if err != nil {
			return fmt.Errorf("get preferences of %s: %w", u.id, err)
		}
		u.prefs = p
		return nil
	})
}

// route applies each user's preferences; what survives is kept. A tick
// is kept for the policy stage (and dead-lettered with its user's records
// if the user fails).
func (b *batch) route() {
	for _, en := range b.entries {
		if en.user.failed != nil {
			continue
		}
		if en.tick != nil {
			en.routed, en.kept = true, true
			continue
		}
		b.routeEntry(en)
	}
}

// routeEntry applies the preferences of en's user to en. It only touches
// en: the counts of what it drops are made by emit.
func (b *batch) routeEntry(en *entry) {
	en.route = en.user.prefs.Route(&en.ev, b.now)
	en.routed = true
	switch {
	case en.route.Drop:
	case !en.route.InApp && expired(&en.ev, b.now):
		// Push-only and already past its TTL: nothing to do.
		en.expired = true
	default:
		en.kept = true
	}
}

// claim deduplicates the kept push-only events. They never reach the
// inbox, so their dedup is a claim of the event id by this record: a
// replay of the same record (after an abort or a crash) gets its claim
// back, another record with the same event id is a duplicate. In-app
// events need no claim (one round-trip less per event): see append.
func (b *batch) claim(ctx context.Context) error {
	return b.perUser(ctx, b.users, func(ctx context.Context, u *userBatch) error {
		for _, en := range u.entries {
			if !en.kept || en.tick != nil || en.route.InApp {
				continue
			}
			ok, err := b.e.cfg.Store.Claim(ctx, u.id, en.ev.ID, en.token())
			if err != nil {
				return fmt.Errorf("claim %s/%s: %w", u.id, en.ev.ID, err)
			}
			en.claimed = ok
		}
		return nil
	})
}

// append stores the kept in-app events, all users in one call. If the
// store refuses it permanently, the users are appended one by one so that
// only those whose notifications the store refuses fail.
func (b *batch) append(ctx context.Context) error {
	var pending []*entry
	for _, en := range b.entries {
		if en.kept && en.tick == nil && en.route.InApp && en.user.failed == nil {
			en.n = herald.NewNotification(&en.ev)
			en.n.ID = herald.SourceID(en.ev.CreatedAt, en.token())
			pending = append(pending, en)
		}
	}
	if len(pending) == 0 {
		return nil
	}
	err := b.appendEntries(ctx, pending)
	if !errclass.IsPermanent(err) {
		return err
	}
	b.e.log.Info("store refused a batch permanently, appending user by user", "notifications", len(pending), "err", err)
	return b.perUser(ctx, b.users, func(ctx context.Context, u *userBatch) error {
		var mine []*entry
		for _, en := range u.entries {
			if en.n.ID != "" {
				mine = append(mine, en)
			}
		}
		if len(mine) == 0 {
			return nil
		}
		return b.appendEntries(ctx, mine)
	})
}

// appendEntries appends the notifications of ens, through the Writer of
// each one's source partition (the partitions in parallel), and records
// what the store kept.
func (b *batch) appendEntries(ctx context.Context, ens []*entry) error {
	var scopes []string
	byScope := map[string][]*entry{}
	for _, en := range ens {
		sc := scopeOf(en.rec)
		if _, ok := byScope[sc]; !ok {
			scopes = append(scopes, sc)
		}
		byScope[sc] = append(byScope[sc], en)
	}
	if len(scopes) == 1 {
		return b.appendScope(ctx, scopes[0], ens)
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, sc := range scopes {
		g.Go(func() error { return b.appendScope(gctx, sc, byScope[sc]) })
	}
	return g.Wait()
}

// appendScope appends the notifications of ens, all from one source
// partition, through that partition's Writer.
func (b *batch) appendScope(ctx context.Context, scope string, ens []*entry) error {
	w, err := b.e.writers.get(ctx, scope)
	if err != nil {
		return err
	}
	ns := make([]herald.Notification, len(ens))
	for i, en := range ens {
		ns[i] = en.n
	}
	res, err := w.Append(ctx, ns)
	if err != nil {
		return fmt.Errorf("append %d notifications of %s: %w", len(ns), scope, err)
	}
	if len(res) != len(ns) {
		return fmt.Errorf("append returned %d results for %d notifications", len(res), len(ns))
	}
	for i, r := range res {
		// The stored copy carries the ID of the record that created it.
		// Created=false with our ID: a previous attempt of this very
		// record stored it and its transaction did not commit, so
		// producing it again is what makes delivery exactly once.
		// Another ID: a different record with the same event id, a
		// duplicate (stored stays nil).
		if r.Created || r.Notification.ID == ns[i].ID {
			ens[i].stored = storedCopy(r)
		}
	}
	return nil
}

func storedCopy(r store.AppendResult) *herald.Notification {
	n := r.Notification
	return &n
}

// emit builds the records of every entry, in record order: the DLQ
// records of failed users, push jobs of claimed push-only events, and the
// deliveries of stored notifications (in seq order for each user).
func (b *batch) emit() error {
	for _, en := range b.entries {
		b.st.countPolicy(en)
		switch {
		case en.digest && en.user.failed != nil:
			// Its closing record is dead-lettered (the window stays in
			// the state as the policy stage left it).
		case en.user.failed != nil && (en.kept || !en.routed):
			// Not yet handled when the user failed (what routing dropped
			// stays dropped).
			b.st.rejected++
			b.out = append(b.out, b.e.codec.EventDLQ(en.rec, en.user.failed))
		case en.tick != nil:
			// Its digests, if any, are the entries before it.
		case en.dup:
			b.st.duplicate++
		case en.route.Dropped == herald.DropMuted:
			b.st.muted++
		case en.route.Drop:
			b.st.noChannel++
		case en.expired:
			b.st.expired++
		case !en.kept:
		case !en.route.InApp:
			if !en.claimed {
				b.st.duplicate++
				continue
			}
			// A push-only notification has no inbox row, hence no seq; its
			// id derives from the source record like an inbox one's, so a
			// replayed record yields the same job id (the pusher's
			// per-device progress key) and the same collapse id.
			n := herald.NewNotification(&en.ev)
			n.ID = herald.SourceID(en.ev.CreatedAt, en.token())
			job := herald.PushJob{
				UserID:       en.ev.UserID,
				Notification: n,
				CollapseKey:  en.ev.CollapseKey,
				ExpiresAt:    en.ev.ExpiresAt(),
			}
			r, err := b.e.codec.Push(&job)
			if err != nil {
				return err
			}
			b.out = append(b.out, r)
			b.st.push++
			if en.digest {
				b.st.emitted(&en.ev)
			}
		case en.stored == nil:
			b.st.duplicate++
		default:
			d := NewDelivery(*en.stored, &en.ev, en.route)
			r, err := b.e.codec.Delivery(&d)
			if err != nil {
				return err
			}
			b.out = append(b.out, r)
			b.st.out++
			if en.digest {
				b.st.emitted(&en.ev)
			}
			if b.e.live != nil {
				b.live = append(b.live, herald.UserNotification{UserID: en.ev.UserID, Notification: *en.stored})
			}
		}
	}
	return nil
}

func expired(ev *herald.Event, now time.Time) bool {
	exp := ev.ExpiresAt()
	return !exp.IsZero() && now.After(exp)
}

// scopeOf is the store scope of a record's user: its source partition,
// whose owner is the user's one writer.
func scopeOf(r *kgo.Record) string {
	return r.Topic + "/" + strconv.Itoa(int(r.Partition))
}

// sourceToken identifies a record for Claim: replays of one record share it.
func sourceToken(r *kgo.Record) string {
	return r.Topic + "/" + strconv.Itoa(int(r.Partition)) + "/" + strconv.FormatInt(r.Offset, 10)
}
