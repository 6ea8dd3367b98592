// Package memory is an in-memory store.Store for tests and benchmarks. It
// keeps everything in maps behind one mutex; nothing survives the process.
//
// It refuses every input one of the real stores (embedded, cassandra)
// refuses, with the same error types, so that a test passing against it
// does not rely on something production rejects: user ids of 1 to
// MaxUserIDBytes bytes, event ids of 1 to MaxEventIDBytes bytes in
// Writer.Append (non-empty in Claim), scopes that store.ValidateScope
// accepts, preferences and devices that pass their Validate
// (stored normalised). The conformance suite (store/storetest) holds all
// three to it.
//
// Fencing uses in-process epochs (store.Fences): every writer of a memory
// store lives in the process that created it, so an epoch counter per
// scope is all a fence needs. Fence takes a new epoch of the scope under
// the store's mutex, and Writer.Append checks its epoch under that same
// mutex before it touches anything: an append of a fenced writer changes
// nothing, and one already running when Fence is called has finished
// before Fence returns, so the new writer sees its notifications.
//
// Push progress expires Options.PushProgressTTL after it is marked: every
// MarkPushSent first drops the expired entries (a min-heap by expiry, no
// background goroutine) and PushSent skips them.
//
// Subscriptions are kept both ways, user → topic → SubscribedAt and topic
// → user ids sorted bytewise, so that Members pages by binary search and
// MemberCount is exact (the length of the topic's list).
//
// Feeds are a slice per topic (positions dense from 1) with an event id →
// position map, and cursors a map per user; feed items never expire.
package memory

import (
	"container/heap"
	"context"
	"fmt"
	"slices"
	"strings"
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
	devices map[string][]device // user → devices
	owner   map[string]string   // token → user

	now     func() time.Time
	pushTTL time.Duration
	pushed  map[pushKey]time.Time      // → expiry
	jobs    map[jobKey]map[string]bool // → tokens marked
	expiry  expiryHeap
	fences  store.Fences // epochs of Fence; taken and checked under mu

	policies  map[string][]byte       // user → policy state
	policyDue map[string]*scopePolicy // scope → due index and cursor

	subsByUser  map[string]map[string]time.Time // user → topic → subscribed at
	subsByTopic map[string]*topicMembers        // topic → members

	feeds       map[string]*feed            // topic → feed
	feedCursors map[string]map[string]int64 // user → topic → pos
}

// Options configures NewWith. Zero values mean the documented default.
type Options struct {
	// Now returns the current time; nil means time.Now. Tests set it to
	// expire push progress without waiting.
	Now func() time.Time
	// PushProgressTTL is how long a MarkPushSent entry is kept; zero means
	// store.DefaultPushProgressTTL.
	PushProgressTTL time.Duration
}

var _ store.Store = (*Store)(nil)

// New returns an empty store with the default Options.
func New() *Store { return NewWith(Options{}) }

// NewWith returns an empty store configured by o.
func NewWith(o Options) *Store {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.PushProgressTTL <= 0 {
		o.PushProgressTTL = store.DefaultPushProgressTTL
	}
	return &Store{
		users:   map[string]*userInbox{},
		prefs:   map[string]herald.Preferences{},
		devices: map[string][]device{},
		owner:   map[string]string{},
		now:     o.Now,
		pushTTL: o.PushProgressTTL,
		pushed:  map[pushKey]time.Time{},
		jobs:    map[jobKey]map[string]bool{},

		policies:  map[string][]byte{},
		policyDue: map[string]*scopePolicy{},

		subsByUser:  map[string]map[string]time.Time{},
		subsByTopic: map[string]*topicMembers{},

		feeds:       map[string]*feed{},
		feedCursors: map[string]map[string]int64{},
	}
}

// Limits of the real stores, the strictest of each.
const (
	// MaxUserIDBytes is the embedded store's limit (Cassandra's is 1024).
	MaxUserIDBytes = 255
	// MaxEventIDBytes is the limit of both real stores' Writer.Append.
	MaxEventIDBytes = 1024
)

func checkUserID(userID string) error {
	if userID == "" {
		return &herald.ValidationError{Field: "user_id", Reason: "must not be empty"}
	}
	if len(userID) > MaxUserIDBytes {
		return &herald.ValidationError{Field: "user_id", Reason: fmt.Sprintf("is %d bytes, more than the %d allowed", len(userID), MaxUserIDBytes)}
	}
	return nil
}

func checkNotification(n *herald.Notification) error {
	if err := checkUserID(n.UserID); err != nil {
		return err
	}
	if n.EventID == "" {
		return &herald.ValidationError{Field: "event_id", Reason: "must not be empty"}
	}
	if len(n.EventID) > MaxEventIDBytes {
		return &herald.ValidationError{Field: "event_id", Reason: fmt.Sprintf("is longer than %d bytes", MaxEventIDBytes)}
	}
	return nil
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

// List implements store.Inbox.
func (s *Store) List(ctx context.Context, userID string, after uint64, limit int, unreadOnly bool) ([]herald.Notification, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
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
	if err := checkUserID(userID); err != nil {
		return 0, err
	}
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
	if err := checkUserID(userID); err != nil {
		return 0, err
	}
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
	if err := checkUserID(userID); err != nil {
		return 0, err
	}
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
	if err := checkUserID(userID); err != nil {
		return 0, err
	}
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
	if err := checkUserID(userID); err != nil {
		return false, err
	}
	if eventID == "" {
		return false, &herald.ValidationError{Field: "event_id", Reason: "must not be empty"}
	}
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
	if err := checkUserID(userID); err != nil {
		return herald.Preferences{}, err
	}
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
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	s.prefs[userID] = p
	return nil
}

// device is a stored device with the time of its last registration.
type device struct {
	herald.Device
	registered time.Time
}

// PutDevice implements store.Devices. A zero CreatedAt is set to now; an
// invalid d returns its *herald.ValidationError.
func (s *Store) PutDevice(ctx context.Context, d herald.Device) error {
	if err := checkUserID(d.UserID); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if d.CreatedAt.IsZero() {
		d.CreatedAt = s.now().UTC()
	}
	at := d.CreatedAt
	d.LastSeen = at
	if prev, ok := s.owner[d.Token]; ok {
		if prev == d.UserID {
			old := s.devices[prev][s.deviceIndex(prev, d.Token)]
			d.CreatedAt = old.CreatedAt
			if old.LastSeen.After(d.LastSeen) {
				d.LastSeen = old.LastSeen
			}
		}
		s.removeDevice(prev, d.Token)
	}
	s.owner[d.Token] = d.UserID
	s.devices[d.UserID] = append(s.devices[d.UserID], device{Device: d, registered: at})
	return nil
}

func (s *Store) deviceIndex(userID, token string) int {
	return slices.IndexFunc(s.devices[userID], func(d device) bool { return d.Token == token })
}

func (s *Store) removeDevice(userID, token string) bool {
	i := s.deviceIndex(userID, token)
	if i < 0 {
		return false
	}
	s.devices[userID] = slices.Delete(s.devices[userID], i, i+1)
	delete(s.owner, token)
	return true
}

// Devices implements store.Devices: oldest CreatedAt first, ties by token,
// as the real stores order them.
func (s *Store) Devices(ctx context.Context, userID string) ([]herald.Device, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	out := make([]herald.Device, 0, len(s.devices[userID]))
	for _, d := range s.devices[userID] {
		out = append(out, d.Device)
	}
	slices.SortStableFunc(out, func(a, b herald.Device) int {
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
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	if !s.removeDevice(userID, token) {
		return store.ErrNotFound
	}
	return nil
}

// TouchDevice implements store.Devices.
func (s *Store) TouchDevice(ctx context.Context, userID, token string, seen time.Time) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	i := s.deviceIndex(userID, token)
	if i < 0 {
		return nil
	}
	d := &s.devices[userID][i]
	if d.LastSeen.Before(seen.Add(-store.TouchInterval)) {
		d.LastSeen = seen.UTC()
	}
	return nil
}

// DeleteDeviceIfStale implements store.Devices.
func (s *Store) DeleteDeviceIfStale(ctx context.Context, userID, token string, before time.Time) (bool, error) {
	if err := checkUserID(userID); err != nil {
		return false, err
	}
	if err := s.lock(ctx); err != nil {
		return false, err
	}
	defer s.mu.Unlock()
	i := s.deviceIndex(userID, token)
	if i < 0 || !s.devices[userID][i].registered.Before(before) {
		return false, nil
	}
	return s.removeDevice(userID, token), nil
}

// pushKey addresses one (user, job, token) entry of push progress.
type pushKey struct{ user, job, token string }

// pushExpiry is an entry of the expiry heap.
type pushExpiry struct {
	at  time.Time
	key pushKey
}

// expiryHeap is a min-heap of expiries (container/heap).
type expiryHeap []pushExpiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(pushExpiry)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// prune drops the push progress expired at now. Every MarkPushSent calls it
// (no background goroutine), so the entries held are at most those marked
// within the TTL plus those expired since the last mark.
func (s *Store) prune(now time.Time) {
	for len(s.expiry) > 0 && !s.expiry[0].at.After(now) {
		e := heap.Pop(&s.expiry).(pushExpiry)
		if at, ok := s.pushed[e.key]; ok && at.Equal(e.at) {
			delete(s.pushed, e.key)
			if j := s.jobs[jobKey{e.key.user, e.key.job}]; j != nil {
				delete(j, e.key.token)
				if len(j) == 0 {
					delete(s.jobs, jobKey{e.key.user, e.key.job})
				}
			}
		}
	}
}

type jobKey struct{ user, job string }

// MarkPushSent implements store.PushProgress. An entry expires
// Options.PushProgressTTL after it was first marked.
func (s *Store) MarkPushSent(ctx context.Context, userID, jobID, token string) error {
	if err := checkUserID(userID); err != nil {
		return err
	}
	if err := store.ValidatePushKey(jobID, token); err != nil {
		return err
	}
	if err := s.lock(ctx); err != nil {
		return err
	}
	defer s.mu.Unlock()
	now := s.now()
	s.prune(now)
	k := pushKey{userID, jobID, token}
	if _, ok := s.pushed[k]; ok {
		return nil
	}
	at := now.Add(s.pushTTL)
	s.pushed[k] = at
	jk := jobKey{userID, jobID}
	if s.jobs[jk] == nil {
		s.jobs[jk] = map[string]bool{}
	}
	s.jobs[jk][token] = true
	heap.Push(&s.expiry, pushExpiry{at: at, key: k})
	return nil
}

// PushSent implements store.PushProgress.
func (s *Store) PushSent(ctx context.Context, userID, jobID string) (map[string]bool, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	if err := store.ValidatePushKey(jobID, "-"); err != nil {
		return nil, err
	}
	if err := s.lock(ctx); err != nil {
		return nil, err
	}
	defer s.mu.Unlock()
	now := s.now()
	out := map[string]bool{}
	for tok := range s.jobs[jobKey{userID, jobID}] {
		if s.pushed[pushKey{userID, jobID, tok}].After(now) {
			out[tok] = true
		}
	}
	return out, nil
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
