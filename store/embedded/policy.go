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

// maxDueLimit bounds PolicyDue's limit (store.Policies).
const maxDueLimit = 10_000

// emptyVal is the value of due entries: the key is the entry. Never
// mutated; bbolt keeps a reference until commit.
var emptyVal = []byte{}

// checkPolicy validates the input of PutPolicy.
func checkPolicy(userID string, state []byte, due []store.PolicyDue) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if len(state) > store.MaxPolicyStateBytes {
		return &herald.ValidationError{Field: "state", Reason: fmt.Sprintf("is %d bytes, more than the %d allowed", len(state), store.MaxPolicyStateBytes)}
	}
	for _, d := range due {
		if err := store.ValidatePolicyDue(d); err != nil {
			return err
		}
	}
	return nil
}

// dueKey encodes d so that byte order is store.PolicyDue.Less order:
//
//	8 bytes   At as Unix microseconds, big-endian, sign bit flipped (so
//	          times before 1970, the zero PolicyDue's included, sort first)
//	UserID    each 0x00 written 0x00 0xFF, then the terminator 0x00 0x01
//	Key       as is, to the end
//
// The escaping keeps a user id that is a prefix of another (or holds 0x00)
// sorting as Go strings do, since the store accepts any bytes in ids.
// At is truncated to microseconds, the precision the store keeps.
func dueKey(d store.PolicyDue) []byte {
	k := make([]byte, 0, 8+len(d.UserID)+2+len(d.Key))
	k = binary.BigEndian.AppendUint64(k, microKey(d.At))
	for i := 0; i < len(d.UserID); i++ {
		if c := d.UserID[i]; c == 0 {
			k = append(k, 0, 0xff)
		} else {
			k = append(k, c)
		}
	}
	k = append(k, 0, 1)
	return append(k, d.Key...)
}

// microKey is the 8-byte prefix of dueKey as a number.
func microKey(t time.Time) uint64 {
	return uint64(t.UnixMicro()) ^ 1<<63
}

// decodeDue is the inverse of dueKey; At is in UTC.
func decodeDue(k []byte) (store.PolicyDue, error) {
	if len(k) < 10 {
		return store.PolicyDue{}, fmt.Errorf("embedded: corrupt due entry %x", k)
	}
	d := store.PolicyDue{At: time.UnixMicro(int64(binary.BigEndian.Uint64(k) ^ 1<<63)).UTC()}
	user := make([]byte, 0, len(k)-10)
	for i := 8; i+1 < len(k); i++ {
		c := k[i]
		if c != 0 {
			user = append(user, c)
			continue
		}
		switch k[i+1] {
		case 0xff:
			user = append(user, 0)
			i++
		case 1:
			d.UserID, d.Key = string(user), string(k[i+2:])
			return d, nil
		default:
			return store.PolicyDue{}, fmt.Errorf("embedded: corrupt due entry %x", k)
		}
	}
	return store.PolicyDue{}, fmt.Errorf("embedded: corrupt due entry %x (no user id terminator)", k)
}

// PutPolicy implements store.Writer. The state, the due entries and the
// fence check are one write transaction, the same one-writer-at-a-time
// transaction as Append: a Writer fenced before the call changes nothing
// (store.ErrFenced), and one that passed the check commits before the new
// Writer's first transaction starts, so the new Writer reads what it put.
// The state and the due entries land together or not at all (the contract
// asks only that the entries land no later than the state). The write
// also drops up to pruneBatch entries of the scope due more than
// store.PolicyDueRetention ago (Config.Now), which only an enricher
// outage that long leaves behind: the cursor drops the others.
func (w *writer) PutPolicy(ctx context.Context, userID string, state []byte, due []store.PolicyDue) error {
	if err := checkPolicy(userID, state, due); err != nil {
		return fmt.Errorf("embedded: put policy: %w", err)
	}
	keys := make([][]byte, len(due))
	for i, d := range due {
		keys[i] = dueKey(d)
	}
	s := w.s
	old := s.now().Add(-store.PolicyDueRetention)
	return s.update(ctx, func(tx *bolt.Tx) error {
		// First, inside the write transaction: see Append.
		if err := s.fences.Check(w.scope, w.epoch); err != nil {
			return err
		}
		if len(keys) > 0 {
			b, err := tx.Bucket(bPolicyDue).CreateBucketIfNotExists([]byte(w.scope))
			if err != nil {
				return err
			}
			if err := pruneDue(b, binary.BigEndian.AppendUint64(nil, microKey(old)), false); err != nil {
				return err
			}
			for _, k := range keys {
				// Put of a key already there rewrites the same empty value:
				// the entry is kept once.
				if err := b.Put(k, emptyVal); err != nil {
					return err
				}
			}
		}
		states := tx.Bucket(bPolicy)
		if len(state) == 0 {
			return states.Delete(userKey(userID))
		}
		return states.Put(userKey(userID), state)
	})
}

// pruneDue deletes the entries of b before limit (and equal to it if
// inclusive), oldest first; at most pruneBatch unless inclusive, which
// SetPolicyCursor uses to drop what a scan handled (up to its limit).
func pruneDue(b *bolt.Bucket, limit []byte, inclusive bool) error {
	var keys [][]byte
	c := b.Cursor()
	for k, _ := c.First(); k != nil && (inclusive || len(keys) < pruneBatch); k, _ = c.Next() {
		if cmp := bytes.Compare(k, limit); cmp > 0 || (cmp == 0 && !inclusive) {
			break
		}
		keys = append(keys, bytes.Clone(k))
	}
	// Collected first: deleting under a live bbolt cursor can skip keys.
	for _, k := range keys {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// SetPolicyCursor implements store.Writer, with PutPolicy's fencing. A
// cursor not after the stored one writes nothing; a new one also drops
// the scope's entries at or before it in the same transaction.
func (w *writer) SetPolicyCursor(ctx context.Context, cur store.PolicyDue) error {
	s := w.s
	enc := dueKey(cur)
	scope := []byte(w.scope)
	return s.update(ctx, func(tx *bolt.Tx) error {
		if err := s.fences.Check(w.scope, w.epoch); err != nil {
			return err
		}
		cursors := tx.Bucket(bPolicyCursor)
		old := cursors.Get(scope)
		if old == nil {
			old = dueKey(store.PolicyDue{})
		}
		if bytes.Compare(enc, old) <= 0 {
			return nil
		}
		if err := cursors.Put(scope, enc); err != nil {
			return err
		}
		if b := tx.Bucket(bPolicyDue).Bucket(scope); b != nil {
			return pruneDue(b, enc, true)
		}
		return nil
	})
}

// PolicyState implements store.Policies.
func (s *Store) PolicyState(ctx context.Context, userID string) ([]byte, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	var out []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		out = bytes.Clone(tx.Bucket(bPolicy).Get(userKey(userID)))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PolicyDue implements store.Policies: one snapshot, a seek and a walk of
// the scope's due bucket. after and until are truncated to microseconds
// like the entries.
func (s *Store) PolicyDue(ctx context.Context, scope string, after store.PolicyDue, until time.Time, limit int) ([]store.PolicyDue, error) {
	if err := store.ValidateScope(scope); err != nil {
		return nil, err
	}
	if limit < 1 || limit > maxDueLimit {
		return nil, &herald.ValidationError{Field: "limit", Reason: fmt.Sprintf("must be 1 to %d", maxDueLimit)}
	}
	start := dueKey(after)
	end := binary.BigEndian.AppendUint64(nil, microKey(until))
	out := make([]store.PolicyDue, 0, min(limit, 256))
	err := s.view(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bPolicyDue).Bucket([]byte(scope))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, _ := c.Seek(start)
		if bytes.Equal(k, start) {
			k, _ = c.Next()
		}
		for ; k != nil && len(out) < limit && bytes.Compare(k[:min(len(k), 8)], end) <= 0; k, _ = c.Next() {
			d, err := decodeDue(k)
			if err != nil {
				return fmt.Errorf("%w (scope %q)", err, scope)
			}
			out = append(out, d)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// PolicyCursor implements store.Policies.
func (s *Store) PolicyCursor(ctx context.Context, scope string) (store.PolicyDue, error) {
	if err := store.ValidateScope(scope); err != nil {
		return store.PolicyDue{}, err
	}
	var cur store.PolicyDue
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bPolicyCursor).Get([]byte(scope))
		if v == nil {
			return nil
		}
		var err error
		cur, err = decodeDue(v)
		if err != nil {
			return fmt.Errorf("%w (cursor of scope %q)", err, scope)
		}
		return nil
	})
	if err != nil {
		return store.PolicyDue{}, err
	}
	return cur, nil
}
