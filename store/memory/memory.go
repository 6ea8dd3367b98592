// Package memory is an in-memory store.Store for tests and benchmarks. It
// keeps everything in maps behind one mutex; nothing survives the process.
package memory

import (
	"context"
	"slices"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

type userInbox struct {
	items  []herald.Notification // ascending seq; seq i+1 at index i
	byEvt  map[string]uint64     // event id → seq
	unread int64
	claims map[string]string // event id → token
}

// Store is an in-memory store.Store. The zero value is not usable: call New.
type Store struct {
	mu      sync.Mutex
	closed  bool
	users   map[string]*userInbox
	prefs   map[string]herald.Preferences
	devices map[string][]herald.Device // user → devices, oldest first
	owner   map[string]string          // token → user
}

var _ store.Store = (*Store)(nil)

// New returns an empty store.
func New() *Store {
	return &Store{
		users:   map[string]*userInbox{},
		prefs:   map[string]herald.Preferences{},
		devices: map[string][]herald.Device{},
		owner:   map[string]string{},
	}
}

func (s *Store) user(id string) *userInbox {
	u := s.users[id]
	if u == nil {
		u = &userInbox{byEvt: map[string]uint64{}, claims: map[string]string{}}
		s.users[id] = u
	}
	return u
}

func (s *Store) lock(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return store.ErrClosed
	}
	return nil
}

// Append implements store.Inbox.
func (s *Store) Append(ctx context.Context, ns []herald.Notification) ([]store.AppendResult, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make([]store.AppendResult, len(ns))
	for i, n := range ns {
		u := s.user(n.UserID)
		if seq, ok := u.byEvt[n.EventID]; ok {
			out[i] = store.AppendResult{Notification: u.items[seq-1]}
			continue
		}
		n.Prev = uint64(len(u.items))
		n.Seq = n.Prev + 1
		n.Read = false
		u.items = append(u.items, n)
		u.byEvt[n.EventID] = n.Seq
		u.unread++
		out[i] = store.AppendResult{Notification: n, Created: true}
	}
	return out, nil
}

// List implements store.Inbox.
func (s *Store) List(ctx context.Context, userID string, after uint64, limit int, unreadOnly bool) ([]herald.Notification, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	u := s.users[userID]
	if u == nil || after >= uint64(len(u.items)) {
		return []herald.Notification{}, nil
	}
	out := []herald.Notification{}
	for _, n := range u.items[after:] {
		if unreadOnly && n.Read {
			continue
		}
		out = append(out, n)
		if limit > 0 && len(out) == limit {
			break
		}
	}
	return out, nil
}

// LastSeq implements store.Inbox.
func (s *Store) LastSeq(ctx context.Context, userID string) (uint64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	if u := s.users[userID]; u != nil {
		return uint64(len(u.items)), nil
	}
	return 0, nil
}

// UnreadCount implements store.Inbox.
func (s *Store) UnreadCount(ctx context.Context, userID string) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	if u := s.users[userID]; u != nil {
		return u.unread, nil
	}
	return 0, nil
}

// MarkRead implements store.Inbox.
func (s *Store) MarkRead(ctx context.Context, userID string, seqs []uint64) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	u := s.users[userID]
	if u == nil {
		return 0, nil
	}
	for _, seq := range seqs {
		if seq == 0 || seq > uint64(len(u.items)) || u.items[seq-1].Read {
			continue
		}
		u.items[seq-1].Read = true
		u.unread--
	}
	return u.unread, nil
}

// MarkAllRead implements store.Inbox.
func (s *Store) MarkAllRead(ctx context.Context, userID string) (int64, error) {
	if err := s.lock(ctx); err != nil {
		return 0, err
	}
	defer s.mu.Unlock()
	u := s.users[userID]
	if u == nil {
		return 0, nil
	}
	for i := range u.items {
		u.items[i].Read = true
	}
	u.unread = 0
	return 0, nil
}

// Claim implements store.Inbox.
func (s *Store) Claim(ctx context.Context, userID, eventID, token string) (bool, error) {
	if err := s.lock(ctx); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	u := s.user(userID)
	if prev, ok := u.claims[eventID]; ok {
		return prev == token, nil
	}
	u.claims[eventID] = token
	return true, nil
}

// GetPreferences implements store.Preferences.
func (s *Store) GetPreferences(ctx context.Context, userID string) (herald.Preferences, error) {
	if err := s.lock(ctx); err != nil {
		return herald.Preferences{}, err
	}
	defer s.mu.Unlock()
	p, ok := s.prefs[userID]
	if !ok {
		return herald.DefaultPreferences(), nil
	}
	return p.Clone(), nil
}

// PutPreferences implements store.Preferences.
func (s *Store) PutPreferences(ctx context.Context, userID string, p herald.Preferences) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.prefs[userID] = p.Clone()
	return nil
}

// PutDevice implements store.Devices.
func (s *Store) PutDevice(ctx context.Context, d herald.Device) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if d.CreatedAt.IsZero() {
		d.CreatedAt = time.Now().UTC()
	}
	if prev, ok := s.owner[d.Token]; ok {
		s.removeDevice(prev, d.Token)
	}
	s.owner[d.Token] = d.UserID
	s.devices[d.UserID] = append(s.devices[d.UserID], d)
	return nil
}

func (s *Store) removeDevice(userID, token string) bool {
	ds := s.devices[userID]
	i := slices.IndexFunc(ds, func(d herald.Device) bool { return d.Token == token })
	if i < 0 {
		return false
	}
	s.devices[userID] = slices.Delete(ds, i, i+1)
	delete(s.owner, token)
	return true
}

// Devices implements store.Devices.
func (s *Store) Devices(ctx context.Context, userID string) ([]herald.Device, error) {
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := slices.Clone(s.devices[userID])
	if out == nil {
		out = []herald.Device{}
	}
	return out, nil
}

// DeleteDevice implements store.Devices.
func (s *Store) DeleteDevice(ctx context.Context, userID, token string) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if !s.removeDevice(userID, token) {
		return store.ErrNotFound
	}
	return nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.lock(ctx); err != nil {
		return err
	}
	s.mu.Unlock()
	return nil
}

// Close implements store.Store; it is idempotent.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	return nil
}
