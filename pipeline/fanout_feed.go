package pipeline

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/store"
	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/errgroup"
)

// The large-audience path (docs/ARCHITECTURE.md, "Large audiences"). An
// audience event whose topic has at least Threshold members when its first
// record is expanded is not fanned out on write:
//
//   - toFeed puts it in the topic's feed (store.Feeds, idempotent by event
//     id, so a record expanded again after an abort finds the same
//     position), and asks for the catch-up of the topic's connected members
//     (Config.Online; O(connected)). With Config.Devices, the continuation
//     (Feed set) pages through the members, reads only, and asks for the
//     catch-up of those with a device (pushPage).
//   - A catch-up (a herald.fanout record of its own, CatchUpRecord) takes
//     into one member's inbox the items of the feed after their cursor:
//     one event per item, keyed by the member's user id, in feed order, as
//     an ordinary event of that user (preferences, policy, a seq, dedup by
//     (user, event id), live delivery, push). Catch-ups also come from the
//     API when a member reads their inbox and from the gateways when a
//     member connects (CatchUpRequester, catchup.go).
//
// Exactly once: the events of a catch-up are produced in the batch's
// transaction; the member's cursor advances only after it committed
// (committed). A crash in between leaves the cursor behind, so the next
// catch-up produces those items again, and the enricher drops them as
// duplicates of (user, event id). Two catch-ups of the same member may
// run at once (a live one and one from a read, on different partitions):
// each produces the items after a cursor that only covers committed items,
// in feed order, so the first copy of each item reaches herald.events in
// feed order, and the later copies are dropped.
//
// Only items created at or after the member's subscribed_at are taken; a
// member whose subscription has gone takes nothing.

// catchUpPage bounds the items one catch-up takes for one member; more
// are taken by a continuation (a single-user catch-up with After set).
const catchUpPage = 100

// toFeed puts a large audience's event in its feed and asks for the
// catch-up of the connected members.
func (f *Fanout) toFeed(ctx context.Context, fr FanoutRecord) ([]*kgo.Record, page, error) {
	ev := fr.Event
	pos, _, err := f.cfg.Store.PutFeedItem(ctx, ev)
	if err != nil {
		return nil, page{}, fmt.Errorf("put %s in the feed of %s: %w", ev.ID, ev.Audience, err)
	}
	live := f.broadcastLive(ctx, &ev)
	var online []string
	if f.cfg.Online != nil {
		if online, err = f.cfg.Online.OnlineMembers(ctx, ev.Audience); err != nil {
			// Connected members then take it when they next read or
			// connect; holding the feed for the registry would hold every
			// broadcast behind it.
			f.log.Warn("cannot list the connected members of a large audience; they take its broadcast on their next read or connection",
				"topic", ev.Audience, "event", ev.ID, "err", err)
			online = nil
		}
	}
	slices.Sort(online)
	online = slices.Compact(online)
	out, err := f.catchUpRecords(ev.Audience, online, TriggerLive)
	if err != nil {
		return nil, page{}, err
	}
	done := f.cfg.Devices == nil
	if !done {
		rec, err := f.codec.Fanout(&FanoutRecord{Event: ev, Feed: pos})
		if err != nil {
			return nil, page{}, err
		}
		out = append(out, rec)
	}
	pg := page{recipients: len(online), done: done, feed: true, created: ev.CreatedAt}
	if live && len(online) > 0 && f.cfg.LiveHold > 0 {
		pg.hold = time.Now().Add(f.cfg.LiveHold)
	}
	return out, pg, nil
}

// pushPage reads one page of a large audience's members and asks for the
// catch-up of those with a device.
func (f *Fanout) pushPage(ctx context.Context, fr FanoutRecord) ([]*kgo.Record, page, error) {
	ev := fr.Event
	ms, err := f.cfg.Store.Members(ctx, ev.Audience, fr.After, f.cfg.PageSize)
	if err != nil {
		return nil, page{}, fmt.Errorf("members of %s after %q: %w", ev.Audience, fr.After, err)
	}
	has := make([]bool, len(ms))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.cfg.Concurrency)
	for i, m := range ms {
		if m.SubscribedAt.After(ev.CreatedAt) {
			continue
		}
		g.Go(func() error {
			ds, err := f.cfg.Devices.Devices(gctx, m.UserID)
			if err != nil {
				return fmt.Errorf("devices of %s: %w", m.UserID, err)
			}
			has[i] = len(ds) > 0
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, page{}, err
	}
	var users []string
	for i, m := range ms {
		if has[i] {
			users = append(users, m.UserID)
		}
	}
	out, err := f.catchUpRecords(ev.Audience, users, TriggerPush)
	if err != nil {
		return nil, page{}, err
	}
	done := len(ms) < f.cfg.PageSize
	if !done {
		next := fr
		next.After = ms[len(ms)-1].UserID
		next.Sent = fr.Sent + int64(len(users))
		rec, err := f.codec.Fanout(&next)
		if err != nil {
			return nil, page{}, err
		}
		out = append(out, rec)
	}
	return out, page{recipients: len(users), done: done, created: ev.CreatedAt}, nil
}

// catchUpRecords are the catch-up records of users on topic, at most
// MaxCatchUpUsers each.
func (f *Fanout) catchUpRecords(topic string, users []string, trigger string) ([]*kgo.Record, error) {
	var out []*kgo.Record
	for chunk := range slices.Chunk(users, MaxCatchUpUsers) {
		rec, err := f.codec.Fanout(&FanoutRecord{CatchUp: &CatchUpRecord{Topic: topic, Users: chunk, Trigger: trigger}})
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// catchUpJob is the catch-up of one member on one feed.
type catchUpJob struct {
	user, topic string
	after       int64 // known caught up to (CatchUpRecord.After)
	trigger     string

	// Results, set by run.
	from    int64       // the cursor the items were read after
	last    int64       // the position of the last item read; 0: none
	created []time.Time // created_at of the items produced
}

// catchUpBatch is the catch-ups of one transaction.
type catchUpBatch struct {
	jobs []*catchUpJob
	out  []*kgo.Record
}

// feedPage caches the feed pages a batch read: the members of a topic
// caught up together mostly stand at the same cursor.
type feedPage struct {
	mu    sync.Mutex
	pages map[feedAt][]store.FeedItem
}

type feedAt struct {
	topic string
	after int64
}

// catchUp runs the catch-ups of one batch: one job per (member, topic),
// the members in parallel (Config.Concurrency), each member's topics in
// turn.
func (f *Fanout) catchUp(ctx context.Context, recs []*CatchUpRecord) (*catchUpBatch, error) {
	byUser := map[string][]*catchUpJob{}
	index := map[[2]string]*catchUpJob{}
	for _, c := range recs {
		for _, u := range c.Users {
			k := [2]string{u, c.Topic}
			if j := index[k]; j != nil {
				j.after = max(j.after, c.After)
				continue
			}
			j := &catchUpJob{user: u, topic: c.Topic, after: c.After, trigger: c.Trigger}
			index[k] = j
			byUser[u] = append(byUser[u], j)
		}
	}
	users := slices.Sorted(maps.Keys(byUser))
	outs := make([][]*kgo.Record, len(users))
	cache := &feedPage{pages: map[feedAt][]store.FeedItem{}}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.cfg.Concurrency)
	for i, u := range users {
		g.Go(func() error {
			var err error
			outs[i], err = f.catchUpUser(gctx, u, byUser[u], cache)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	b := &catchUpBatch{}
	for i, u := range users {
		b.jobs = append(b.jobs, byUser[u]...)
		b.out = append(b.out, outs[i]...)
	}
	return b, nil
}

// catchUpUser runs one member's jobs and returns their records: the
// member's events in feed order, then any continuation.
func (f *Fanout) catchUpUser(ctx context.Context, user string, jobs []*catchUpJob, cache *feedPage) ([]*kgo.Record, error) {
	subs, err := f.cfg.Store.Topics(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("topics of %s: %w", user, err)
	}
	cursors, err := f.cfg.Store.FeedCursors(ctx, user)
	if err != nil {
		return nil, fmt.Errorf("feed cursors of %s: %w", user, err)
	}
	limit := min(catchUpPage, f.cfg.PageSize)
	var out []*kgo.Record
	for _, j := range jobs {
		i, ok := slices.BinarySearchFunc(subs, j.topic, func(s store.Subscription, t string) int {
			return strings.Compare(s.Topic, t)
		})
		if !ok {
			continue // not (or no longer) a member
		}
		since := subs[i].SubscribedAt
		j.from = max(cursors[j.topic], j.after)
		items, err := cache.read(ctx, f.cfg.Store, j.topic, j.from, limit)
		if err != nil {
			return nil, err
		}
		if len(items) == 0 {
			continue
		}
		var evs []*kgo.Record
		for _, it := range items {
			if since.After(it.Event.CreatedAt) {
				continue // broadcast before the member subscribed
			}
			one := it.Event
			one.UserID, one.UserIDs, one.Audience = user, nil, ""
			rec, err := f.codec.Event(&one, time.Time{})
			if err != nil {
				return nil, err
			}
			evs = append(evs, rec)
			j.created = append(j.created, it.Event.CreatedAt)
		}
		if len(evs) > 0 {
			if err := f.limiter.WaitN(ctx, len(evs)); err != nil {
				return nil, err
			}
		}
		out = append(out, evs...)
		j.last = items[len(items)-1].Pos
		if len(items) == limit {
			rec, err := f.codec.Fanout(&FanoutRecord{CatchUp: &CatchUpRecord{
				Topic: j.topic, Users: []string{user}, After: j.last, Trigger: j.trigger,
			}})
			if err != nil {
				return nil, err
			}
			out = append(out, rec)
		}
	}
	return out, nil
}

// read returns the items of topic after pos, from the batch's cache when
// another member read them.
func (c *feedPage) read(ctx context.Context, st store.Feeds, topic string, after int64, limit int) ([]store.FeedItem, error) {
	k := feedAt{topic, after}
	c.mu.Lock()
	items, ok := c.pages[k]
	c.mu.Unlock()
	if ok {
		return items, nil
	}
	items, err := st.FeedItems(ctx, topic, after, limit)
	if err != nil {
		return nil, fmt.Errorf("feed of %s after %d: %w", topic, after, err)
	}
	c.mu.Lock()
	c.pages[k] = items
	c.mu.Unlock()
	return items, nil
}

// committed advances the cursors of a committed batch's catch-ups and
// counts them. A cursor that cannot be advanced only costs a second
// production of its items, dropped by the inbox as duplicates.
func (f *Fanout) committed(ctx context.Context, b *catchUpBatch, now time.Time) {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(f.cfg.Concurrency)
	for _, j := range b.jobs {
		f.m.catchUps.WithLabelValues(j.trigger).Inc()
		f.m.materialized.Add(float64(len(j.created)))
		lag := f.m.deliveryLag.WithLabelValues(j.trigger)
		for _, c := range j.created {
			lag.Observe(now.Sub(c).Seconds())
		}
		if j.last <= j.from {
			continue
		}
		g.Go(func() error {
			if err := f.cfg.Store.SetFeedCursor(gctx, j.user, j.topic, j.last); err != nil {
				f.m.cursorFailures.Inc()
				f.log.Warn("cannot advance a feed cursor; its broadcasts will be produced again and dropped as duplicates",
					"user", j.user, "topic", j.topic, "pos", j.last, "err", err)
			}
			return nil
		})
	}
	_ = g.Wait()
}
