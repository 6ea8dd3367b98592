package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// maxMembersLimit bounds the limit of Members (store.Subscriptions).
const maxMembersLimit = 10_000

func checkSubscription(userID, topic string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	return herald.ValidateTopic(topic)
}

// encodeAt is a SubscribedAt as 8 bytes: Unix microseconds, big-endian.
func encodeAt(at time.Time) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(at.UnixMicro()))
}

func decodeAt(v []byte, what string) (time.Time, error) {
	if len(v) != 8 {
		return time.Time{}, fmt.Errorf("embedded: corrupt subscription %s: %x", what, v)
	}
	return time.UnixMicro(int64(binary.BigEndian.Uint64(v))).UTC(), nil
}

// memberCount reads topic's counter in subs_count (0 if absent).
func memberCount(tx *bolt.Tx, topic string) (int64, error) {
	v := tx.Bucket(bSubsCount).Get([]byte(topic))
	if v == nil {
		return 0, nil
	}
	if len(v) != 8 {
		return 0, fmt.Errorf("embedded: corrupt member count of topic %q: %x", topic, v)
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// addMemberCount adds delta to topic's counter, deleting it at zero.
func addMemberCount(tx *bolt.Tx, topic string, delta int64) error {
	n, err := memberCount(tx, topic)
	if err != nil {
		return err
	}
	n += delta
	b := tx.Bucket(bSubsCount)
	switch {
	case n < 0:
		return fmt.Errorf("embedded: member count of topic %q would go negative", topic)
	case n == 0:
		return b.Delete([]byte(topic))
	}
	return b.Put([]byte(topic), binary.BigEndian.AppendUint64(nil, uint64(n)))
}

// countKeys counts b's keys, stopping at limit.
func countKeys(b *bolt.Bucket, limit int) int {
	n := 0
	c := b.Cursor()
	for k, _ := c.First(); k != nil && n < limit; k, _ = c.Next() {
		n++
	}
	return n
}

// Subscribe implements store.Subscriptions. The membership in both
// buckets and the topic's counter are written in one write transaction,
// and the user's cap is checked inside it: bbolt runs one writer at a
// time, so concurrent Subscribes cannot exceed store.MaxTopicsPerUser.
// Subscribing again is a read only (no write transaction, no fsync).
func (s *Store) Subscribe(ctx context.Context, userID, topic string, at time.Time) (bool, error) {
	if err := checkSubscription(userID, topic); err != nil {
		return false, err
	}
	if at.IsZero() {
		at = s.now()
	}
	uk, tk := []byte(userID), []byte(topic)
	exists := false
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if ub := tx.Bucket(bSubsByUser).Bucket(uk); ub != nil {
			exists = ub.Get(tk) != nil
		}
		return nil
	})
	if err != nil || exists {
		return false, err
	}
	created := false
	err = s.update(ctx, func(tx *bolt.Tx) error {
		ub, err := tx.Bucket(bSubsByUser).CreateBucketIfNotExists(uk)
		if err != nil {
			return err
		}
		if ub.Get(tk) != nil { // subscribed since the read above
			return nil
		}
		if countKeys(ub, store.MaxTopicsPerUser) >= store.MaxTopicsPerUser {
			return &herald.ValidationError{Field: "topic", Reason: fmt.Sprintf("the user already has the maximum of %d subscriptions", store.MaxTopicsPerUser)}
		}
		tb, err := tx.Bucket(bSubsByTopic).CreateBucketIfNotExists(tk)
		if err != nil {
			return err
		}
		v := encodeAt(at)
		if err := ub.Put(tk, v); err != nil {
			return err
		}
		if err := tb.Put(uk, v); err != nil {
			return err
		}
		created = true
		return addMemberCount(tx, topic, 1)
	})
	if err != nil {
		return false, err
	}
	return created, nil
}

// Unsubscribe implements store.Subscriptions, in one write transaction
// like Subscribe; nested buckets left empty are deleted. Unsubscribing a
// non-member is a read only.
func (s *Store) Unsubscribe(ctx context.Context, userID, topic string) (bool, error) {
	if err := checkSubscription(userID, topic); err != nil {
		return false, err
	}
	uk, tk := []byte(userID), []byte(topic)
	member := false
	err := s.view(ctx, func(tx *bolt.Tx) error {
		if ub := tx.Bucket(bSubsByUser).Bucket(uk); ub != nil {
			member = ub.Get(tk) != nil
		}
		return nil
	})
	if err != nil || !member {
		return false, err
	}
	removed := false
	err = s.update(ctx, func(tx *bolt.Tx) error {
		byUser, byTopic := tx.Bucket(bSubsByUser), tx.Bucket(bSubsByTopic)
		ub := byUser.Bucket(uk)
		if ub == nil || ub.Get(tk) == nil { // unsubscribed since the read above
			return nil
		}
		if err := ub.Delete(tk); err != nil {
			return err
		}
		if countKeys(ub, 1) == 0 {
			if err := byUser.DeleteBucket(uk); err != nil {
				return err
			}
		}
		tb := byTopic.Bucket(tk)
		if tb == nil || tb.Get(uk) == nil {
			return fmt.Errorf("embedded: subscription of %q to %q is missing from %s", userID, topic, bSubsByTopic)
		}
		if err := tb.Delete(uk); err != nil {
			return err
		}
		if countKeys(tb, 1) == 0 {
			if err := byTopic.DeleteBucket(tk); err != nil {
				return err
			}
		}
		removed = true
		return addMemberCount(tx, topic, -1)
	})
	if err != nil {
		return false, err
	}
	return removed, nil
}

// Topics implements store.Subscriptions: one walk of the user's nested
// bucket, whose byte order is topic order.
func (s *Store) Topics(ctx context.Context, userID string) ([]store.Subscription, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	out := []store.Subscription{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ub := tx.Bucket(bSubsByUser).Bucket([]byte(userID))
		if ub == nil {
			return nil
		}
		return ub.ForEach(func(k, v []byte) error {
			at, err := decodeAt(v, "of user "+userID)
			if err != nil {
				return err
			}
			out = append(out, store.Subscription{UserID: userID, Topic: string(k), SubscribedAt: at})
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Members implements store.Subscriptions: one Seek in the topic's nested
// bucket and a walk of up to limit keys, on one snapshot.
func (s *Store) Members(ctx context.Context, topic, after string, limit int) ([]store.Subscription, error) {
	if err := herald.ValidateTopic(topic); err != nil {
		return nil, err
	}
	if limit < 1 || limit > maxMembersLimit {
		return nil, &herald.ValidationError{Field: "limit", Reason: fmt.Sprintf("must be 1 to %d", maxMembersLimit)}
	}
	out := []store.Subscription{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		tb := tx.Bucket(bSubsByTopic).Bucket([]byte(topic))
		if tb == nil {
			return nil
		}
		c := tb.Cursor()
		k, v := c.Seek([]byte(after))
		if k != nil && bytes.Equal(k, []byte(after)) {
			k, v = c.Next()
		}
		for ; k != nil && len(out) < limit; k, v = c.Next() {
			at, err := decodeAt(v, "of topic "+topic)
			if err != nil {
				return err
			}
			out = append(out, store.Subscription{UserID: string(k), Topic: topic, SubscribedAt: at})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// MemberCount implements store.Subscriptions; it is exact, and reads one
// counter.
func (s *Store) MemberCount(ctx context.Context, topic string) (int64, error) {
	if err := herald.ValidateTopic(topic); err != nil {
		return 0, err
	}
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = memberCount(tx, topic)
		return err
	})
	return n, err
}
