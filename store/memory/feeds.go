package memory

import (
	"bytes"
	"context"
	"slices"
	"sort"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// feed is one topic's feed: items ascending by Pos (dense from 1: the
// memory store never skips a position) and event id → pos.
type feed struct {
	items []store.FeedItem
	byEvt map[string]int64
}

// PutFeedItem implements store.Feeds.
func (s *Store) PutFeedItem(ctx context.Context, ev herald.Event) (int64, bool, error) {
	ev, _, err := store.PrepareFeedEvent(ev)
	if err != nil {
		return 0, false, err
	}
	if err := s.lock(ctx); err != nil {
		return 0, false, err
	}
	defer s.mu.Unlock()
	f := s.feeds[ev.Audience]
	if f == nil {
		f = &feed{byEvt: map[string]int64{}}
		s.feeds[ev.Audience] = f
	}
	if pos, ok := f.byEvt[ev.ID]; ok {
		return pos, false, nil
	}
	pos := int64(len(f.items)) + 1
	f.items = append(f.items, store.FeedItem{Topic: ev.Audience, Pos: pos, Event: ev})
	f.byEvt[ev.ID] = pos
	return pos, true, nil
}

// FeedItems implements store.Feeds.
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
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := []store.FeedItem{}
	f := s.feeds[topic]
	if f == nil {
		return out, nil
	}
	i := sort.Search(len(f.items), func(i int) bool { return f.items[i].Pos > after })
	for ; i < len(f.items) && len(out) < limit; i++ {
		it := f.items[i]
		it.Event.Data = bytes.Clone(it.Event.Data)
		it.Event.UserIDs = slices.Clone(it.Event.UserIDs)
		out = append(out, it)
	}
	return out, nil
}

// FeedHead implements store.Feeds.
func (s *Store) FeedHead(ctx context.Context, topic string) (int64, error) {
	if err := herald.ValidateTopic(topic); err != nil {
		return 0, err
	}
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	if f := s.feeds[topic]; f != nil {
		return int64(len(f.items)), nil
	}
	return 0, nil
}

// FeedCursors implements store.Feeds.
func (s *Store) FeedCursors(ctx context.Context, userID string) (map[string]int64, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make(map[string]int64, len(s.feedCursors[userID]))
	for t, p := range s.feedCursors[userID] {
		out[t] = p
	}
	return out, nil
}

// SetFeedCursor implements store.Feeds.
func (s *Store) SetFeedCursor(ctx context.Context, userID, topic string, pos int64) error {
	if err := checkSubscription(userID, topic); err != nil {
		return err
	}
	if err := store.ValidateFeedPos("pos", pos); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	mine := s.feedCursors[userID]
	if mine == nil {
		mine = map[string]int64{}
		s.feedCursors[userID] = mine
	}
	if cur, ok := mine[topic]; !ok || pos > cur {
		mine[topic] = pos
	}
	return nil
}
