package embedded

import (
	"context"
	"encoding/binary"
	"fmt"

	bolt "go.etcd.io/bbolt"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// feedPosKey is a feed position as 8 bytes big-endian: byte order is Pos
// order (positions are never negative).
func feedPosKey(pos int64) []byte { return binary.BigEndian.AppendUint64(nil, uint64(pos)) }

func decodeFeedPos(v []byte, topic string) (int64, error) {
	if len(v) != 8 {
		return 0, fmt.Errorf("embedded: corrupt feed position of topic %q: %x", topic, v)
	}
	return int64(binary.BigEndian.Uint64(v)), nil
}

// feedHead reads the last key of the topic's items bucket (0 if none).
func feedHead(b *bolt.Bucket, topic string) (int64, error) {
	if b == nil {
		return 0, nil
	}
	k, _ := b.Cursor().Last()
	if k == nil {
		return 0, nil
	}
	return decodeFeedPos(k, topic)
}

// PutFeedItem implements store.Feeds. The item, its event id index entry
// and the new head are written in one write transaction, so a put is
// atomic and positions are dense; a repeated put only reads.
func (s *Store) PutFeedItem(ctx context.Context, ev herald.Event) (int64, bool, error) {
	ev, enc, err := store.PrepareFeedEvent(ev)
	if err != nil {
		return 0, false, err
	}
	tk, ek := []byte(ev.Audience), []byte(ev.ID)
	lookup := func(tx *bolt.Tx) (int64, bool, error) {
		eb := tx.Bucket(bFeedEvents).Bucket(tk)
		if eb == nil {
			return 0, false, nil
		}
		v := eb.Get(ek)
		if v == nil {
			return 0, false, nil
		}
		pos, err := decodeFeedPos(v, ev.Audience)
		return pos, err == nil, err
	}
	var pos int64
	found := false
	err = s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		pos, found, err = lookup(tx)
		return err
	})
	if err != nil || found {
		return pos, false, err
	}
	created := false
	err = s.update(ctx, func(tx *bolt.Tx) error {
		var err error
		if pos, found, err = lookup(tx); err != nil || found { // put since the read above
			return err
		}
		ib, err := tx.Bucket(bFeedItems).CreateBucketIfNotExists(tk)
		if err != nil {
			return err
		}
		eb, err := tx.Bucket(bFeedEvents).CreateBucketIfNotExists(tk)
		if err != nil {
			return err
		}
		head, err := feedHead(ib, ev.Audience)
		if err != nil {
			return err
		}
		pos = head + 1
		k := feedPosKey(pos)
		if err := ib.Put(k, enc); err != nil {
			return err
		}
		created = true
		return eb.Put(ek, k)
	})
	if err != nil {
		return 0, false, err
	}
	return pos, created, nil
}

// FeedItems implements store.Feeds: one Seek and a walk of up to limit keys.
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
	out := []store.FeedItem{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ib := tx.Bucket(bFeedItems).Bucket([]byte(topic))
		if ib == nil {
			return nil
		}
		c := ib.Cursor()
		for k, v := c.Seek(feedPosKey(after + 1)); k != nil && len(out) < limit; k, v = c.Next() {
			pos, err := decodeFeedPos(k, topic)
			if err != nil {
				return err
			}
			ev, err := store.DecodeFeedEvent(v) // copies out of the mmap
			if err != nil {
				return fmt.Errorf("embedded: feed item %d of topic %q: %w", pos, topic, err)
			}
			out = append(out, store.FeedItem{Topic: topic, Pos: pos, Event: ev})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// FeedHead implements store.Feeds: the last key of the topic's items.
func (s *Store) FeedHead(ctx context.Context, topic string) (int64, error) {
	if err := herald.ValidateTopic(topic); err != nil {
		return 0, err
	}
	var head int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		head, err = feedHead(tx.Bucket(bFeedItems).Bucket([]byte(topic)), topic)
		return err
	})
	return head, err
}

// FeedCursors implements store.Feeds.
func (s *Store) FeedCursors(ctx context.Context, userID string) (map[string]int64, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	out := map[string]int64{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		ub := tx.Bucket(bFeedCursors).Bucket([]byte(userID))
		if ub == nil {
			return nil
		}
		return ub.ForEach(func(k, v []byte) error {
			pos, err := decodeFeedPos(v, string(k))
			if err != nil {
				return err
			}
			out[string(k)] = pos
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// SetFeedCursor implements store.Feeds: compare and write in one write
// transaction; a cursor not ahead of the stored one only reads.
func (s *Store) SetFeedCursor(ctx context.Context, userID, topic string, pos int64) error {
	if err := checkSubscription(userID, topic); err != nil {
		return err
	}
	if err := store.ValidateFeedPos("pos", pos); err != nil {
		return err
	}
	uk, tk := []byte(userID), []byte(topic)
	ahead := func(tx *bolt.Tx) (bool, error) {
		ub := tx.Bucket(bFeedCursors).Bucket(uk)
		if ub == nil {
			return true, nil
		}
		v := ub.Get(tk)
		if v == nil {
			return true, nil
		}
		cur, err := decodeFeedPos(v, topic)
		return pos > cur, err
	}
	write := false
	if err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		write, err = ahead(tx)
		return err
	}); err != nil || !write {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if ok, err := ahead(tx); err != nil || !ok {
			return err
		}
		ub, err := tx.Bucket(bFeedCursors).CreateBucketIfNotExists(uk)
		if err != nil {
			return err
		}
		return ub.Put(tk, feedPosKey(pos))
	})
}
