package cassandra

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// GetPreferences implements store.Preferences.
func (s *Store) GetPreferences(ctx context.Context, userID string) (herald.Preferences, error) {
	if err := checkUserID(userID); err != nil {
		return herald.Preferences{}, err
	}
	if err := s.begin(ctx); err != nil {
		return herald.Preferences{}, err
	}
	var raw string
	err := s.read(s.q.getPrefs, userID).ScanContext(ctx, &raw)
	switch {
	case errors.Is(err, gocql.ErrNotFound):
		return herald.DefaultPreferences(), nil
	case err != nil:
		return herald.Preferences{}, s.fail("get preferences", err)
	}
	var p herald.Preferences
	if err := json.Unmarshal([]byte(raw), &p); err != nil {
		return herald.Preferences{}, fmt.Errorf("%w: preferences of user %q: %w", ErrCorrupt, userID, err)
	}
	if p.MutedTypes == nil {
		p.MutedTypes = []string{}
	}
	return p, nil
}

// PutPreferences implements store.Preferences. p is validated (and
// normalised) on a copy; an invalid p returns its *herald.ValidationError.
func (s *Store) PutPreferences(ctx context.Context, userID string, p herald.Preferences) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	p = p.Clone() // Validate normalises in place
	if err := p.Validate(); err != nil {
		return err
	}
	raw, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("cassandra: encode preferences: %w", err)
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	if err := s.read(s.q.putPrefs, userID, string(raw), time.Now()).ExecContext(ctx); err != nil {
		return s.fail("put preferences", err)
	}
	return nil
}

// owner returns the user owning a device token ("" if none).
func (s *Store) owner(ctx context.Context, token string) (string, error) {
	var u string
	err := s.read(s.q.ownerGet, token).ScanContext(ctx, &u)
	if errors.Is(err, gocql.ErrNotFound) {
		return "", nil
	}
	if err != nil {
		return "", s.fail("read device owner", err)
	}
	return u, nil
}

// loggedBatch is a multi-partition batch: the batchlog makes its
// statements all apply eventually, or none.
func (s *Store) loggedBatch() *gocql.Batch {
	return s.session.Batch(gocql.LoggedBatch)
}

// add appends an idempotent statement (plain writes: a retry rewrites the
// same values).
func add(b *gocql.Batch, stmt string, args ...any) {
	b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: stmt, Args: args, Idempotent: true})
}

// PutDevice implements store.Devices. A zero CreatedAt is set to now; an
// invalid d returns its *herald.ValidationError. Moving a token from another
// user (delete there, insert here, new owner) is one logged batch.
func (s *Store) PutDevice(ctx context.Context, d herald.Device) error {
	if err := checkUserID(d.UserID); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return err
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now()
	}
	prev, err := s.owner(ctx, d.Token)
	if err != nil {
		return err
	}
	b := s.loggedBatch()
	if prev != "" && prev != d.UserID {
		add(b, s.q.deleteDevice, prev, d.Token)
	}
	add(b, s.q.putDevice, d.UserID, d.Token, d.Platform, d.AppID, d.CreatedAt)
	add(b, s.q.ownerPut, d.Token, d.UserID)
	if err := b.ExecContext(ctx); err != nil {
		return s.fail("put device", err)
	}
	return nil
}

// Devices implements store.Devices: oldest CreatedAt first, ties by token.
func (s *Store) Devices(ctx context.Context, userID string) ([]herald.Device, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	out := []herald.Device{}
	iter := s.read(s.q.devices, userID).IterContext(ctx)
	var d herald.Device
	for iter.Scan(&d.Token, &d.Platform, &d.AppID, &d.CreatedAt) {
		d.UserID = userID
		out = append(out, d)
		d = herald.Device{}
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("list devices", err)
	}
	slices.SortFunc(out, func(a, b herald.Device) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Token, b.Token)
	})
	return out, nil
}

// DeleteDevice implements store.Devices.
func (s *Store) DeleteDevice(ctx context.Context, userID, token string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	if token == "" {
		return store.ErrNotFound
	}
	var got string
	err := s.read(s.q.deviceOne, userID, token).ScanContext(ctx, &got)
	if errors.Is(err, gocql.ErrNotFound) {
		return store.ErrNotFound
	}
	if err != nil {
		return s.fail("read device", err)
	}
	owner, err := s.owner(ctx, token)
	if err != nil {
		return err
	}
	b := s.loggedBatch()
	add(b, s.q.deleteDevice, userID, token)
	if owner == userID {
		add(b, s.q.ownerDelete, token)
	}
	if err := b.ExecContext(ctx); err != nil {
		return s.fail("delete device", err)
	}
	return nil
}
