package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// deviceRecord is the JSON value of the devices bucket (herald.Device
// leaves UserID out of its JSON; it is in the key). Records written before
// LastSeen and RegisteredAt existed decode them as zero: LastSeen then
// reads as CreatedAt, and a zero RegisteredAt is older than any provider
// feedback (that registration predates this build's pusher).
type deviceRecord struct {
	Platform     string    `json:"platform"`
	AppID        string    `json:"app_id"`
	CreatedAt    time.Time `json:"created_at"`
	LastSeen     time.Time `json:"last_seen,omitzero"`
	RegisteredAt time.Time `json:"registered_at,omitzero"`
}

func (r *deviceRecord) device(userID, token string) herald.Device {
	d := herald.Device{UserID: userID, Platform: r.Platform, Token: token, AppID: r.AppID, CreatedAt: r.CreatedAt, LastSeen: r.LastSeen}
	if d.LastSeen.Before(d.CreatedAt) {
		d.LastSeen = d.CreatedAt
	}
	return d
}

func getDevice(devices *bolt.Bucket, userID, token string) (*deviceRecord, error) {
	v := devices.Get(suffixKey(userID, token))
	if v == nil {
		return nil, nil
	}
	var r deviceRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return nil, fmt.Errorf("embedded: corrupt device of user %q: %w", userID, err)
	}
	return &r, nil
}

func putDevice(devices *bolt.Bucket, userID, token string, r *deviceRecord) error {
	v, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("embedded: encode device: %w", err)
	}
	return devices.Put(suffixKey(userID, token), v)
}

// PutDevice implements store.Devices. A zero CreatedAt is set to now. An
// invalid d returns its *herald.ValidationError. One write transaction
// reads the token's owner and moves or refreshes it.
func (s *Store) PutDevice(ctx context.Context, d herald.Device) error {
	if err := checkUserID(d.UserID); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return err
	}
	at := d.CreatedAt
	if at.IsZero() {
		at = s.now()
	}
	at = at.UTC()
	return s.update(ctx, func(tx *bolt.Tx) error {
		devices, tokens := tx.Bucket(bDevices), tx.Bucket(bTokens)
		tok := []byte(d.Token)
		rec := &deviceRecord{Platform: d.Platform, AppID: d.AppID, CreatedAt: at, LastSeen: at, RegisteredAt: at}
		switch owner := tokens.Get(tok); {
		case owner == nil:
		case string(owner) == d.UserID:
			old, err := getDevice(devices, d.UserID, d.Token)
			if err != nil {
				return err
			}
			if old != nil {
				rec.CreatedAt = old.CreatedAt
				if seen := old.device(d.UserID, d.Token).LastSeen; seen.After(at) {
					rec.LastSeen = seen
				}
			}
		default:
			if err := devices.Delete(suffixKey(string(owner), d.Token)); err != nil {
				return err
			}
		}
		if err := putDevice(devices, d.UserID, d.Token, rec); err != nil {
			return err
		}
		return tokens.Put(tok, []byte(d.UserID))
	})
}

// Devices implements store.Devices: oldest CreatedAt first, ties by token.
func (s *Store) Devices(ctx context.Context, userID string) ([]herald.Device, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	out := []herald.Device{}
	prefix := userKey(userID)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bDevices).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			var r deviceRecord
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("embedded: corrupt device of user %q: %w", userID, err)
			}
			out = append(out, r.device(userID, string(k[len(prefix):])))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b herald.Device) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Token, b.Token)
	})
	return out, nil
}

// deleteDevice removes (userID, token) and its owner entry if userID owns it.
func deleteDevice(tx *bolt.Tx, userID, token string) error {
	devices, tokens := tx.Bucket(bDevices), tx.Bucket(bTokens)
	if err := devices.Delete(suffixKey(userID, token)); err != nil {
		return err
	}
	if owner := tokens.Get([]byte(token)); string(owner) == userID {
		return tokens.Delete([]byte(token))
	}
	return nil
}

// DeleteDevice implements store.Devices.
func (s *Store) DeleteDevice(ctx context.Context, userID, token string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if token == "" {
		if err := s.begin(ctx); err != nil {
			return err
		}
		return store.ErrNotFound
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bDevices).Get(suffixKey(userID, token)) == nil {
			return store.ErrNotFound
		}
		return deleteDevice(tx, userID, token)
	})
}

// TouchDevice implements store.Devices. It reads first and opens a write
// transaction only when LastSeen is to change (at most once per
// store.TouchInterval per device).
func (s *Store) TouchDevice(ctx context.Context, userID, token string, seen time.Time) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	stale := func(tx *bolt.Tx) (*deviceRecord, error) {
		if token == "" {
			return nil, nil
		}
		r, err := getDevice(tx.Bucket(bDevices), userID, token)
		if err != nil || r == nil {
			return nil, err
		}
		if !r.device(userID, token).LastSeen.Before(seen.Add(-store.TouchInterval)) {
			return nil, nil
		}
		return r, nil
	}
	var due bool
	err := s.view(ctx, func(tx *bolt.Tx) error {
		r, err := stale(tx)
		due = r != nil
		return err
	})
	if err != nil || !due {
		return err
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		r, err := stale(tx) // again: it may have changed since the read
		if err != nil || r == nil {
			return err
		}
		r.LastSeen = seen.UTC()
		return putDevice(tx.Bucket(bDevices), userID, token, r)
	})
}

// DeleteDeviceIfStale implements store.Devices. The check and the delete
// are one write transaction, so a registration is either before it (and
// judged) or after it (and kept).
func (s *Store) DeleteDeviceIfStale(ctx context.Context, userID, token string, before time.Time) (bool, error) {
	if err := checkUserID(userID); err != nil {
		return false, err
	}
	if token == "" {
		return false, s.begin(ctx)
	}
	var deleted bool
	err := s.update(ctx, func(tx *bolt.Tx) error {
		r, err := getDevice(tx.Bucket(bDevices), userID, token)
		if err != nil || r == nil || !r.RegisteredAt.Before(before) {
			return err
		}
		deleted = true
		return deleteDevice(tx, userID, token)
	})
	return deleted, err
}

// pushPrefix is the key prefix of one job's progress: userKey, the job id's
// length (2 bytes, big-endian), the job id. The token follows.
func pushPrefix(userID, jobID string) []byte {
	k := userKey(userID)
	k = binary.BigEndian.AppendUint16(k, uint16(len(jobID)))
	return append(k, jobID...)
}

// pruneBatch bounds the expired entries one MarkPushSent removes.
const pruneBatch = 64

// prunePushed deletes up to pruneBatch entries expired at now, oldest
// first, through the expiry index (pushexp: 8-byte big-endian expiry in
// Unix nanoseconds, then the pushed key). Every MarkPushSent write calls
// it, so while marks go on each one removes more expired entries than it
// adds: the file holds the entries of the last TTL plus at most the
// expired ones left when marks stopped.
func prunePushed(tx *bolt.Tx, now time.Time) error {
	exp, pushed := tx.Bucket(bPushExp), tx.Bucket(bPushed)
	limit := uint64(max(now.UnixNano(), 0))
	var keys [][]byte
	c := exp.Cursor()
	for k, _ := c.First(); k != nil && len(keys) < pruneBatch; k, _ = c.Next() {
		if len(k) < 8 || binary.BigEndian.Uint64(k) > limit {
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	for _, k := range keys {
		if err := exp.Delete(k); err != nil {
			return err
		}
		pk := k[8:]
		if v := pushed.Get(pk); v != nil && bytes.Equal(v, k[:8]) {
			if err := pushed.Delete(pk); err != nil {
				return err
			}
		}
	}
	return nil
}

// MarkPushSent implements store.PushProgress. An entry already there only
// reads (no write, no fsync); a new one expires Config.PushProgressTTL
// after it was marked, and the write also prunes expired entries.
func (s *Store) MarkPushSent(ctx context.Context, userID, jobID, token string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if err := store.ValidatePushKey(jobID, token); err != nil {
		return err
	}
	key := append(pushPrefix(userID, jobID), token...)
	var have bool
	if err := s.view(ctx, func(tx *bolt.Tx) error {
		have = tx.Bucket(bPushed).Get(key) != nil
		return nil
	}); err != nil || have {
		return err
	}
	now := s.now()
	return s.update(ctx, func(tx *bolt.Tx) error {
		if err := prunePushed(tx, now); err != nil {
			return err
		}
		pushed := tx.Bucket(bPushed)
		if pushed.Get(key) != nil {
			return nil
		}
		at := binary.BigEndian.AppendUint64(nil, uint64(max(now.Add(s.pushTTL).UnixNano(), 0)))
		if err := pushed.Put(key, at); err != nil {
			return err
		}
		return tx.Bucket(bPushExp).Put(append(slices.Clone(at), key...), []byte{})
	})
}

// PushSent implements store.PushProgress; expired entries not yet pruned
// are left out.
func (s *Store) PushSent(ctx context.Context, userID, jobID string) (map[string]bool, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := store.ValidatePushKey(jobID, "-"); err != nil {
		return nil, err
	}
	prefix := pushPrefix(userID, jobID)
	now := uint64(max(s.now().UnixNano(), 0))
	out := map[string]bool{}
	err := s.view(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bPushed).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			if len(v) == 8 && binary.BigEndian.Uint64(v) > now {
				out[string(k[len(prefix):])] = true
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
