package cassandra

import (
	"context"
	"errors"
	"slices"
	"strings"
	"time"

	gocql "github.com/apache/cassandra-gocql-driver/v2"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// ownerRow is a device_owner row: the truth about one token (see doc.go,
// "Device registry"). Null columns read as zero values: user "" (no owner:
// never registered, or released), gen 0 (a row written before migration
// 0005), zero times.
type ownerRow struct {
	exists                          bool
	user, platform, appID           string
	gen                             int64
	createdAt, registered, lastSeen time.Time
}

func (r *ownerRow) dest() []any {
	return []any{&r.user, &r.gen, &r.platform, &r.appID, &r.createdAt, &r.registered, &r.lastSeen}
}

// seen is the row's LastSeen, never before its CreatedAt.
func (r *ownerRow) seen(created time.Time) time.Time {
	if r.lastSeen.Before(created) {
		return created
	}
	return r.lastSeen
}

// nullString binds "" as null (no user id is empty).
func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// nullGen binds gen 0 as null (generations start at 1).
func nullGen(g int64) any {
	if g == 0 {
		return nil
	}
	return g
}

// nextGen is the generation after g: above g, and at least the current
// time in microseconds, so that index writes stamped with it (USING
// TIMESTAMP) also win over rows written with client timestamps by builds
// before migration 0005.
func nextGen(g int64) int64 { return max(g+1, time.Now().UnixMicro()) }

// owner reads the token's row; serial reads at the serial consistency,
// which completes any lightweight transaction in flight on it.
func (s *Store) owner(ctx context.Context, token string, serial bool) (ownerRow, error) {
	var r ownerRow
	q := s.read(s.q.ownerGet, token)
	if serial {
		q = q.Consistency(s.cfg.serial)
	}
	err := q.ScanContext(ctx, r.dest()...)
	if errors.Is(err, gocql.ErrNotFound) {
		return ownerRow{}, nil
	}
	if err != nil {
		return ownerRow{}, s.fail("read device owner", err)
	}
	r.exists = true
	return r, nil
}

// ownerCAS runs a lightweight transaction on device_owner. It is marked
// idempotent: a retry of one that applied does not apply again (its
// condition names the generation it replaces), and callers recognise their
// own write in the state they re-read.
func (s *Store) ownerCAS(ctx context.Context, stmt string, args ...any) (bool, error) {
	applied, err := s.session.Query(stmt, args...).Idempotent(true).MapScanCASContext(ctx, map[string]any{})
	if err != nil {
		return false, s.fail("device owner transaction", err)
	}
	return applied, nil
}

// add appends an idempotent statement (plain writes: a retry rewrites the
// same values with the same timestamp).
func add(b *gocql.Batch, stmt string, args ...any) {
	b.Entries = append(b.Entries, gocql.BatchEntry{Stmt: stmt, Args: args, Idempotent: true})
}

// PutDevice implements store.Devices. A zero CreatedAt is set to now; an
// invalid d returns its *herald.ValidationError. The token's device_owner
// row is changed by a compare-and-set on (user_id, gen), then the index
// rows (the new owner's, and the removal from the previous owner's) are
// written, stamped with the new gen, in one logged batch.
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
	at := d.CreatedAt
	if at.IsZero() {
		at = time.Now()
	}
	at = at.UTC().Truncate(time.Millisecond) // Cassandra's precision
	cur, err := s.owner(ctx, d.Token, false)
	if err != nil {
		return err
	}
	for range s.cfg.MaxCASAttempts {
		created, seen := at, at
		if cur.user == d.UserID {
			c := cur.createdAt
			if c.IsZero() { // a row from before 0005: CreatedAt is in the index
				if c, err = s.indexCreatedAt(ctx, d.UserID, d.Token); err != nil {
					return err
				}
			}
			if !c.IsZero() {
				created = c
			}
			if ls := cur.seen(created); ls.After(seen) {
				seen = ls
			}
		}
		gen := nextGen(cur.gen)
		var applied bool
		if !cur.exists {
			applied, err = s.ownerCAS(ctx, s.q.ownerInsert, d.Token, d.UserID, gen, d.Platform, d.AppID, created, at, seen)
		} else {
			applied, err = s.ownerCAS(ctx, s.q.ownerSet, d.UserID, gen, d.Platform, d.AppID, created, at, seen,
				d.Token, nullString(cur.user), nullGen(cur.gen))
		}
		if err != nil {
			return err
		}
		if !applied {
			next, err := s.owner(ctx, d.Token, true)
			if err != nil {
				return err
			}
			if next.user != d.UserID || next.gen != gen { // someone else's change: retry on it
				s.m.casConflicts.WithLabelValues("put_device").Inc()
				cur = next
				continue
			}
			// Our own write, applied by a retry of the driver.
		}
		b := s.session.Batch(gocql.LoggedBatch)
		add(b, s.q.putDevice, d.UserID, d.Token, d.Platform, d.AppID, created, gen)
		if cur.user != "" && cur.user != d.UserID {
			add(b, s.q.deleteDevice, gen, cur.user, d.Token)
		}
		if err := b.ExecContext(ctx); err != nil {
			return s.fail("write device index", err)
		}
		return nil
	}
	return ErrContention
}

// indexCreatedAt reads CreatedAt from the user's index row (zero if none).
func (s *Store) indexCreatedAt(ctx context.Context, userID, token string) (time.Time, error) {
	var c time.Time
	err := s.read(s.q.deviceOne, userID, token).ScanContext(ctx, &c)
	if errors.Is(err, gocql.ErrNotFound) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, s.fail("read device", err)
	}
	return c, nil
}

// maxIn bounds the keys of one IN query.
const maxIn = 100

// Devices implements store.Devices: oldest CreatedAt first, ties by token.
// It reads the user's index, then the owner rows of those tokens, and
// lists a token only if its owner row names the user: an index row left
// behind by a move, a deletion or a crash between the two writes is never
// shown.
func (s *Store) Devices(ctx context.Context, userID string) ([]herald.Device, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	var index []herald.Device
	iter := s.read(s.q.devices, userID).IterContext(ctx)
	var d herald.Device
	for iter.Scan(&d.Token, &d.Platform, &d.AppID, &d.CreatedAt) {
		d.UserID = userID
		index = append(index, d)
		d = herald.Device{}
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("list devices", err)
	}
	owners := make(map[string]ownerRow, len(index))
	for part := range slices.Chunk(index, maxIn) {
		tokens := make([]string, len(part))
		for i, d := range part {
			tokens[i] = d.Token
		}
		iter := s.read(s.q.ownerIn, tokens).IterContext(ctx)
		var (
			tok string
			r   ownerRow
		)
		for iter.Scan(append([]any{&tok}, r.dest()...)...) {
			owners[tok] = r
			r = ownerRow{}
		}
		if err := iter.Close(); err != nil {
			return nil, s.fail("read device owners", err)
		}
	}
	out := make([]herald.Device, 0, len(index))
	for _, d := range index {
		r, ok := owners[d.Token]
		if !ok || r.user != userID {
			continue
		}
		if r.platform != "" { // else a row from before 0005: the index has the data
			d.Platform, d.AppID, d.CreatedAt = r.platform, r.appID, r.createdAt
		}
		d.LastSeen = r.seen(d.CreatedAt)
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b herald.Device) int {
		if c := a.CreatedAt.Compare(b.CreatedAt); c != 0 {
			return c
		}
		return strings.Compare(a.Token, b.Token)
	})
	return out, nil
}

// release removes the user's token if ok accepts its owner row: a
// compare-and-set that clears user_id (keeping the row and a new gen),
// then the index row's deletion stamped with that gen. It reports false if
// the user does not own the token or ok refused.
func (s *Store) release(ctx context.Context, userID, token string, ok func(ownerRow) bool) (bool, error) {
	if err := checkUserID(userID); err != nil {
		return false, err
	}
	if err := s.begin(ctx); err != nil {
		return false, err
	}
	if token == "" {
		return false, nil
	}
	cur, err := s.owner(ctx, token, false)
	if err != nil {
		return false, err
	}
	for range s.cfg.MaxCASAttempts {
		if cur.user != userID || !ok(cur) {
			return false, nil
		}
		gen := nextGen(cur.gen)
		applied, err := s.ownerCAS(ctx, s.q.ownerRelease, gen, token, userID, nullGen(cur.gen))
		if err != nil {
			return false, err
		}
		if !applied {
			next, err := s.owner(ctx, token, true)
			if err != nil {
				return false, err
			}
			if next.user != "" || next.gen != gen {
				s.m.casConflicts.WithLabelValues("release_device").Inc()
				cur = next
				continue
			}
		}
		if err := s.read(s.q.deleteDevice, gen, userID, token).ExecContext(ctx); err != nil {
			return false, s.fail("delete device index", err)
		}
		return true, nil
	}
	return false, ErrContention
}

// DeleteDevice implements store.Devices.
func (s *Store) DeleteDevice(ctx context.Context, userID, token string) error {
	deleted, err := s.release(ctx, userID, token, func(ownerRow) bool { return true })
	if err == nil && !deleted {
		return store.ErrNotFound
	}
	return err
}

// DeleteDeviceIfStale implements store.Devices. The registration time it
// judges is the one in the owner row the compare-and-set is conditioned
// on, so a registration that lands in between makes the transaction fail
// and is judged on the next attempt. A row from before migration 0005 has
// no registration time: it predates this build's pusher, hence any
// feedback, and is stale.
func (s *Store) DeleteDeviceIfStale(ctx context.Context, userID, token string, before time.Time) (bool, error) {
	return s.release(ctx, userID, token, func(r ownerRow) bool { return r.registered.Before(before) })
}

// TouchDevice implements store.Devices: a plain read, then, at most once
// per store.TouchInterval per device, a lightweight transaction on the
// owner row conditioned on its (user_id, gen), so it never recreates a
// deleted or moved device. A lost race is not retried: the sighting is
// advisory.
func (s *Store) TouchDevice(ctx context.Context, userID, token string, seen time.Time) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	if token == "" {
		return nil
	}
	cur, err := s.owner(ctx, token, false)
	if err != nil {
		return err
	}
	if cur.user != userID || !cur.seen(cur.createdAt).Before(seen.Add(-store.TouchInterval)) {
		return nil
	}
	_, err = s.ownerCAS(ctx, s.q.ownerTouch, seen.UTC().Truncate(time.Millisecond), token, userID, nullGen(cur.gen))
	return err
}

// pushTTL is the TTL of push progress in seconds: the retention, or
// store.DefaultPushProgressTTL when the retention is forever.
func (s *Store) pushTTL() int {
	if s.cfg.ttl > 0 {
		return s.cfg.ttl
	}
	return int(store.DefaultPushProgressTTL / time.Second)
}

// MarkPushSent implements store.PushProgress: one plain INSERT USING TTL
// (the retention), idempotent and retried by the driver.
func (s *Store) MarkPushSent(ctx context.Context, userID, jobID, token string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if err := store.ValidatePushKey(jobID, token); err != nil {
		return err
	}
	if err := s.begin(ctx); err != nil {
		return err
	}
	if err := s.read(s.q.markPushSent, userID, jobID, token, time.Now(), s.pushTTL()).ExecContext(ctx); err != nil {
		return s.fail("mark push sent", err)
	}
	return nil
}

// PushSent implements store.PushProgress: one read of the (user, job)
// partition.
func (s *Store) PushSent(ctx context.Context, userID, jobID string) (map[string]bool, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := store.ValidatePushKey(jobID, "-"); err != nil {
		return nil, err
	}
	if err := s.begin(ctx); err != nil {
		return nil, err
	}
	out := map[string]bool{}
	iter := s.read(s.q.pushSent, userID, jobID).IterContext(ctx)
	var tok string
	for iter.Scan(&tok) {
		out[tok] = true
	}
	if err := iter.Close(); err != nil {
		return nil, s.fail("read push progress", err)
	}
	return out, nil
}
