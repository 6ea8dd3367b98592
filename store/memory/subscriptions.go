package memory

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// MaxMembersLimit bounds the limit of Members, as in the real stores.
const MaxMembersLimit = 10_000

// topicMembers is one topic's membership: the user ids sorted bytewise (so
// that Members pages by binary search without sorting) and when each
// subscribed.
type topicMembers struct {
	ids []string
	at  map[string]time.Time
}

func checkSubscription(userID, topic string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	return herald.ValidateTopic(topic)
}

// Subscribe implements store.Subscriptions. The cap of
// store.MaxTopicsPerUser is checked under the store's mutex, so concurrent
// Subscribes of one user cannot exceed it.
func (s *Store) Subscribe(ctx context.Context, userID, topic string, at time.Time) (bool, error) {
	if err := checkSubscription(userID, topic); err != nil {
		return false, err
	}
	if err := s.lock(ctx); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	if at.IsZero() {
		at = s.now()
	}
	mine := s.subsByUser[userID]
	if _, ok := mine[topic]; ok {
		return false, nil
	}
	if len(mine) >= store.MaxTopicsPerUser {
		return false, &herald.ValidationError{Field: "topic", Reason: fmt.Sprintf("the user already has the maximum of %d subscriptions", store.MaxTopicsPerUser)}
	}
	if mine == nil {
		mine = map[string]time.Time{}
		s.subsByUser[userID] = mine
	}
	at = at.UTC().Truncate(time.Microsecond)
	mine[topic] = at
	tm := s.subsByTopic[topic]
	if tm == nil {
		tm = &topicMembers{at: map[string]time.Time{}}
		s.subsByTopic[topic] = tm
	}
	i, _ := slices.BinarySearch(tm.ids, userID)
	tm.ids = slices.Insert(tm.ids, i, userID)
	tm.at[userID] = at
	return true, nil
}

// Unsubscribe implements store.Subscriptions.
func (s *Store) Unsubscribe(ctx context.Context, userID, topic string) (bool, error) {
	if err := checkSubscription(userID, topic); err != nil {
		return false, err
	}
	if err := s.lock(ctx); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	mine := s.subsByUser[userID]
	if _, ok := mine[topic]; !ok {
		return false, nil
	}
	delete(mine, topic)
	if len(mine) == 0 {
		delete(s.subsByUser, userID)
	}
	tm := s.subsByTopic[topic]
	if i, found := slices.BinarySearch(tm.ids, userID); found {
		tm.ids = slices.Delete(tm.ids, i, i+1)
	}
	delete(tm.at, userID)
	if len(tm.ids) == 0 {
		delete(s.subsByTopic, topic)
	}
	return true, nil
}

// Topics implements store.Subscriptions.
func (s *Store) Topics(ctx context.Context, userID string) ([]store.Subscription, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	mine := s.subsByUser[userID]
	out := make([]store.Subscription, 0, len(mine))
	for topic, at := range mine {
		out = append(out, store.Subscription{UserID: userID, Topic: topic, SubscribedAt: at})
	}
	slices.SortFunc(out, func(a, b store.Subscription) int { return strings.Compare(a.Topic, b.Topic) })
	return out, nil
}

// Members implements store.Subscriptions.
func (s *Store) Members(ctx context.Context, topic, after string, limit int) ([]store.Subscription, error) {
	if err := herald.ValidateTopic(topic); err != nil {
		return nil, err
	}
	if limit < 1 || limit > MaxMembersLimit {
		return nil, &herald.ValidationError{Field: "limit", Reason: fmt.Sprintf("must be 1 to %d", MaxMembersLimit)}
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := []store.Subscription{}
	tm := s.subsByTopic[topic]
	if tm == nil {
		return out, nil
	}
	i, found := slices.BinarySearch(tm.ids, after)
	if found {
		i++
	}
	for ; i < len(tm.ids) && len(out) < limit; i++ {
		u := tm.ids[i]
		out = append(out, store.Subscription{UserID: u, Topic: topic, SubscribedAt: tm.at[u]})
	}
	return out, nil
}

// MemberCount implements store.Subscriptions; it is exact.
func (s *Store) MemberCount(ctx context.Context, topic string) (int64, error) {
	if err := herald.ValidateTopic(topic); err != nil {
		return 0, err
	}
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	if tm := s.subsByTopic[topic]; tm != nil {
		return int64(len(tm.ids)), nil
	}
	return 0, nil
}
