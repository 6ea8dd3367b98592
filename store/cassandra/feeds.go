package cassandra

import (
	"context"
	"errors"
	"fmt"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// The feed tables (migration 0009, doc.go "Feeds"): feed_items (topic →
// pos → event JSON, newest first, changed only by lightweight
// transactions), feed_events (topic → event id → pos, plain writes after
// the transaction), feed_heads (topic → highest pos put, written with
// USING TIMESTAMP pos) and feed_cursors (user → topic → pos, written with
// USING TIMESTAMP pos).

// maxFeedAttempts bounds the positions one PutFeedItem tries when other
// puts to the same topic take them first (ErrContention after that).
const maxFeedAttempts = 16

// PutFeedItem implements store.Feeds: the event id index (feed_events)
// first; if absent, the head (FeedHead), then INSERT ... IF NOT EXISTS of
// the item at head + 1, and on a conflict (another put took that
// position) again at the next position after a fresh head, up to
// maxFeedAttempts positions; then the event id index row and the head.
// The transaction is not retried by the driver; one whose outcome is
// unknown is settled by a serial read of the position (the item there is
// this call's iff it holds ev.ID). A failure after the transaction
// returns an error with the item stored: a retry then puts it again at a
// new position (the duplicate of the contract).
func (s *Store) PutFeedItem(ctx context.Context, ev herald.Event) (int64, bool, error) {
	ev, enc, err := store.PrepareFeedEvent(ev)
	if err != nil {
		return 0, false, err
	}
	if err := s.begin(ctx); err != nil {
		return 0, false, err
	}
	topic := ev.Audience
	var pos int64
	err = s.read(s.q.feedEvent, topic, ev.ID).ScanContext(ctx, &pos)
	switch {
	case err == nil:
		return pos, false, nil
	case !errors.Is(err, gocql.ErrNotFound):
		return 0, false, s.fail("read feed event index", err)
	}
	head, err := s.feedHead(ctx, topic)
	if err != nil {
		return 0, false, err
	}
	pos = head + 1
	created := false
	for attempt, unknown := 1, 0; ; {
		prev := map[string]any{}
		applied, err := s.lwtFn(ctx, s.session.Query(s.q.feedItemPut, topic, pos, enc), prev)
		if err != nil {
			if ctx.Err() != nil || !maybeApplied(err) || unknown+1 >= maxUnknownLWT {
				return 0, false, s.fail("put feed item", err)
			}
			unknown++
			s.m.casUnknown.WithLabelValues("feed_item").Inc()
			s.log.Warn("feed item put outcome unknown, settling it with a serial read", "topic", topic, "pos", pos, "err", err)
			b, ok, rerr := s.feedItemAt(ctx, topic, pos)
			if rerr != nil {
				return 0, false, rerr
			}
			if !ok {
				continue // not applied (the serial read finished any round in flight): again
			}
			applied = sameEventID(b, ev.ID)
			prev["event"] = b
		}
		if applied {
			created = true
			break
		}
		if b, _ := prev["event"].([]byte); sameEventID(b, ev.ID) {
			break // a concurrent put of the same event took this position
		}
		if attempt >= maxFeedAttempts {
			return 0, false, fmt.Errorf("%w: feed put to topic %q lost %d positions in a row", ErrContention, topic, attempt)
		}
		attempt++
		head, err := s.feedHead(ctx, topic)
		if err != nil {
			return 0, false, err
		}
		pos = max(pos, head) + 1
	}
	err = s.after(ctx, func(ctx context.Context) error {
		if err := s.read(s.q.feedEventPut, topic, ev.ID, pos).ExecContext(ctx); err != nil {
			return s.fail("write feed event index", err)
		}
		if err := s.read(s.q.feedHeadPut, topic, pos, pos).ExecContext(ctx); err != nil {
			// Only a floor for a feed whose items all expire (doc.go, "Feeds").
			s.log.Warn("feed head write failed", "topic", topic, "pos", pos, "err", err)
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	return pos, created, nil
}

// sameEventID reports whether the stored event encoding b has id.
func sameEventID(b []byte, id string) bool {
	if b == nil {
		return false
	}
	ev, err := store.DecodeFeedEvent(b)
	return err == nil && ev.ID == id
}

// feedItemAt reads the event at one position with a serial read, which
// first completes any transaction left in flight on the topic's partition.
func (s *Store) feedItemAt(ctx context.Context, topic string, pos int64) ([]byte, bool, error) {
	var b []byte
	err := s.read(s.q.feedItemGet, topic, pos).Consistency(s.cfg.serial).ScanContext(ctx, &b)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return nil, false, nil
	case err != nil:
		return nil, false, s.fail("read feed item", err)
	}
	return b, true, nil
}

// feedHead is the larger of the newest item's position and feed_heads.
func (s *Store) feedHead(ctx context.Context, topic string) (int64, error) {
	var top, head int64
	if err := s.read(s.q.feedTop, topic).ScanContext(ctx, &top); err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return 0, s.fail("read feed head", err)
	}
	if err := s.read(s.q.feedHeadGet, topic).ScanContext(ctx, &head); err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return 0, s.fail("read feed head", err)
	}
	return max(top, head), nil
}

// FeedItems implements store.Feeds: one slice of the topic's partition of
// feed_items, WHERE pos > after ORDER BY pos ASC LIMIT limit.
func (s *Store) FeedItems(ctx context.Context, topic string, after int64, limit int) ([]store.FeedItem, error) {
	if err := herald.ValidateTopic(topic); err != nil {
		return nil, err
	}
	if err := store.ValidateFeedPos("after", after); err != nil {
		return nil, err
	}
	if err := store.ValidateFeedLimit(limit); err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	out := []store.FeedItem{}
	iter := s.read(s.q.feedItems, topic, after, limit).PageSize(limit).IterContext(ctx)
	var (
		pos int64
		b   []byte
	)
	for iter.Scan(&pos, &b) {
		ev, err := store.DecodeFeedEvent(b)
		if err != nil {
			_ = iter.Close()
			return nil, fmt.Errorf("%w: feed item %d of topic %q: %w", ErrCorrupt, pos, topic, err)
		}
		out = append(out, store.FeedItem{Topic: topic, Pos: pos, Event: ev})
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("read feed items", err)
	}
	return out, nil
}

// FeedHead implements store.Feeds: two point reads (the newest item,
// feed_heads), the larger wins.
func (s *Store) FeedHead(ctx context.Context, topic string) (int64, error) {
	if err := herald.ValidateTopic(topic); err != nil {
		return 0, err
	}
	if err := s.begin(ctx); err != nil {
		return 0, err
	}
	return s.feedHead(ctx, topic)
}

// FeedCursors implements store.Feeds: one read of the user's partition.
func (s *Store) FeedCursors(ctx context.Context, userID string) (map[string]int64, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	iter := s.read(s.q.cursorsGet, userID).PageSize(store.MaxTopicsPerUser).IterContext(ctx)
	var (
		topic string
		pos   int64
	)
	for iter.Scan(&topic, &pos) {
		out[topic] = pos
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("read feed cursors", err)
	}
	return out, nil
}

// SetFeedCursor implements store.Feeds: one plain write USING TIMESTAMP
// pos, so the highest cursor wins whatever the order the writes land in
// (doc.go, "Feeds"): no read, no transaction, no race.
func (s *Store) SetFeedCursor(ctx context.Context, userID, topic string, pos int64) error {
	if err := checkSubscription(userID, topic); err != nil {
		return err
	}
	if err := store.ValidateFeedPos("pos", pos); err != nil {
		return err
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	if err := s.read(s.q.feedCursor, userID, topic, pos, pos).ExecContext(ctx); err != nil {
		return s.fail("write feed cursor", err)
	}
	return nil
}
