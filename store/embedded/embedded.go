package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// Sentinel errors of Open.
var (
	// ErrLocked is returned by Open when another process (or another Store
	// in this process) holds the file and did not release it within
	// Config.Timeout.
	ErrLocked = errors.New("embedded: database file is locked by another process")
	// ErrFormat is returned by Open for a file written by an incompatible
	// version of this package.
	ErrFormat = errors.New("embedded: unsupported database format")
)

// DefaultTimeout is how long Open waits for the file lock when
// Config.Timeout is zero.
const DefaultTimeout = 5 * time.Second

// formatVersion is the layout described in doc.go.
const formatVersion = 1

// Config configures Open.
type Config struct {
	// Path of the database file; required. It is created (mode 0600, its
	// directory 0700) if missing.
	Path string
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// NoSync skips the fsync at each commit. A crash (of the machine, not
	// only of the process) may then lose or corrupt recent writes: for tests
	// and benchmarks only. False means every committed call is durable.
	NoSync bool
	// Timeout bounds the wait for the file lock held by another process
	// before Open fails with ErrLocked. Zero means DefaultTimeout; negative
	// means wait forever.
	Timeout time.Duration
	// PushProgressTTL is how long a MarkPushSent entry is kept; zero means
	// store.DefaultPushProgressTTL.
	PushProgressTTL time.Duration
	// Now returns the current time (push progress expiry, zero CreatedAt
	// of a registration); nil means time.Now. Tests set it.
	Now func() time.Time
}

// Store is a store.Store in one bbolt file. It is safe for concurrent use;
// write calls are serialised (see the package doc).
//
// Every method checks ctx before it starts. A bbolt transaction cannot be
// interrupted, so once started a call runs to completion, except
// Writer.Append, which also checks ctx between notifications and then
// rolls back the whole batch. Write calls may block waiting for the single writer slot
// without watching ctx.
type Store struct {
	db      *bolt.DB
	log     *slog.Logger
	path    string
	closed  atomic.Bool
	now     func() time.Time
	pushTTL time.Duration
	fences  store.Fences // epochs of Fence; checked inside Append's transaction

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Bucket names.
var (
	bInbox   = []byte("inbox")
	bUnread  = []byte("unread")
	bUsers   = []byte("users")
	bDedup   = []byte("dedup")
	bClaims  = []byte("claims")
	bPrefs   = []byte("prefs")
	bDevices = []byte("devices")
	bTokens  = []byte("tokens")
	bPushed  = []byte("pushed")
	bPushExp = []byte("pushexp")
	bHerald  = []byte("herald")
	// Policy state (policy.go). Open creates them in a file written before
	// they existed: the layout only grew, so the format version is still 1.
	bPolicy       = []byte("policy")
	bPolicyDue    = []byte("policydue")
	bPolicyCursor = []byte("policycursor")
	// Subscriptions (subscriptions.go), added to layout 1 the same way.
	bSubsByUser  = []byte("subs_by_user")
	bSubsByTopic = []byte("subs_by_topic")
	bSubsCount   = []byte("subs_count")
	// Feeds (feeds.go), added to layout 1 the same way.
	bFeedItems   = []byte("feed_items")
	bFeedEvents  = []byte("feed_events")
	bFeedCursors = []byte("feed_cursors")

	allBuckets = [][]byte{bInbox, bUnread, bUsers, bDedup, bClaims, bPrefs, bDevices, bTokens, bPushed, bPushExp, bHerald,
		bPolicy, bPolicyDue, bPolicyCursor, bSubsByUser, bSubsByTopic, bSubsCount,
		bFeedItems, bFeedEvents, bFeedCursors}

	keyFormat = []byte("format")
	unreadVal = []byte{1} // never mutated; bbolt keeps a reference until commit
)

// Open opens (creating if needed) the database at cfg.Path. It blocks while
// another process holds the file, up to cfg.Timeout.
func Open(cfg Config) (*Store, error) {
	if cfg.Path == "" {
		return nil, errors.New("embedded: Config.Path is required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	switch {
	case cfg.PushProgressTTL == 0:
		cfg.PushProgressTTL = store.DefaultPushProgressTTL
	case cfg.PushProgressTTL < 0:
		return nil, fmt.Errorf("embedded: Config.PushProgressTTL %v is negative", cfg.PushProgressTTL)
	}
	switch {
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	case cfg.Timeout < 0:
		cfg.Timeout = 0 // bbolt: wait forever
	}
	if dir := filepath.Dir(cfg.Path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("embedded: %w", err)
		}
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{
		Timeout:      cfg.Timeout,
		NoSync:       cfg.NoSync,
		FreelistType: bolt.FreelistMapType, // faster than the array type once the file is large
	})
	if errors.Is(err, berrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %s", ErrLocked, cfg.Path)
	}
	if err != nil {
		return nil, fmt.Errorf("embedded: open %s: %w", cfg.Path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		h := tx.Bucket(bHerald)
		switch v := h.Get(keyFormat); {
		case v == nil:
			return h.Put(keyFormat, encodeSeq(formatVersion))
		case len(v) != 8 || seqOf(v) != formatVersion:
			return fmt.Errorf("%w: %s has format %x, this build reads %d", ErrFormat, cfg.Path, v, formatVersion)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		if !errors.Is(err, ErrFormat) {
			err = fmt.Errorf("embedded: initialise %s: %w", cfg.Path, err)
		}
		return nil, err
	}
	cfg.Logger.Info("embedded store opened", "path", cfg.Path, "nosync", cfg.NoSync)
	return &Store{db: db, log: cfg.Logger, path: cfg.Path, now: cfg.Now, pushTTL: cfg.PushProgressTTL}, nil
}

// Close closes the file, waiting for running calls to finish. It is
// idempotent; later calls to any method return store.ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closed.Store(true)
		s.closeErr = s.db.Close()
		s.log.Info("embedded store closed", "path", s.path, "err", s.closeErr)
	})
	return s.closeErr
}

// Ping reports store.ErrClosed after Close, nil otherwise.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(*bolt.Tx) error { return nil })
}

func (s *Store) begin(ctx context.Context) error {
	if s.closed.Load() {
		return store.ErrClosed
	}
	return ctx.Err()
}

// mapErr turns bbolt's "not open" (a call that raced Close) into ErrClosed.
func mapErr(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return store.ErrClosed
	}
	return err
}

func (s *Store) view(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	return mapErr(s.db.View(fn))
}

func (s *Store) update(ctx context.Context, fn func(*bolt.Tx) error) error {
	if err := s.begin(ctx); err != nil {
		return err
	}
	return mapErr(s.db.Update(fn))
}

// loadMeta reads the user's counters; zero for a user never written.
func loadMeta(tx *bolt.Tx, userID string) (userMeta, error) {
	v := tx.Bucket(bUsers).Get(userKey(userID))
	if v == nil {
		return userMeta{}, nil
	}
	return decodeMeta(v)
}

// List implements store.Inbox. It reads one consistent snapshot. With
// unreadOnly it walks the unread index, so its cost does not depend on how
// many read notifications precede the unread ones.
func (s *Store) List(ctx context.Context, userID string, after uint64, limit int, unreadOnly bool) ([]herald.Notification, error) {
	if err := checkUserID(userID); err != nil {
		return nil, err
	}
	out := make([]herald.Notification, 0, min(max(limit, 0), 256))
	if after == ^uint64(0) { // nothing can follow; after+1 would wrap
		if err := s.begin(ctx); err != nil {
			return nil, err
		}
		return out, nil
	}
	prefix := userKey(userID)
	start := seqKey(userID, after+1)
	full := func() bool { return limit > 0 && len(out) >= limit }
	err := s.view(ctx, func(tx *bolt.Tx) error {
		inbox, unread := tx.Bucket(bInbox), tx.Bucket(bUnread)
		if unreadOnly {
			c := unread.Cursor()
			for k, _ := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix) && !full(); k, _ = c.Next() {
				rec := inbox.Get(k)
				if rec == nil {
					return fmt.Errorf("embedded: unread index of user %q names missing seq %d", userID, seqOf(k))
				}
				n, err := decodeNotification(rec, userID, seqOf(k), false)
				if err != nil {
					return err
				}
				out = append(out, n)
			}
			return nil
		}
		// Walk the inbox and the unread index side by side: both are in
		// seq order, so the read flag costs no extra lookups.
		uc := unread.Cursor()
		uk, _ := uc.Seek(start)
		c := inbox.Cursor()
		for k, v := c.Seek(start); k != nil && bytes.HasPrefix(k, prefix) && !full(); k, v = c.Next() {
			for uk != nil && bytes.Compare(uk, k) < 0 {
				uk, _ = uc.Next()
			}
			n, err := decodeNotification(v, userID, seqOf(k), !bytes.Equal(uk, k))
			if err != nil {
				return err
			}
			out = append(out, n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// LastSeq implements store.Inbox.
func (s *Store) LastSeq(ctx context.Context, userID string) (uint64, error) {
	m, err := s.meta(ctx, userID)
	return m.last, err
}

// UnreadCount implements store.Inbox; it reads one counter.
func (s *Store) UnreadCount(ctx context.Context, userID string) (int64, error) {
	m, err := s.meta(ctx, userID)
	return m.unread, err
}

func (s *Store) meta(ctx context.Context, userID string) (userMeta, error) {
	if err := checkUserID(userID); err != nil {
		return userMeta{}, err
	}
	var m userMeta
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		m, err = loadMeta(tx, userID)
		return err
	})
	return m, err
}

// MarkRead implements store.Inbox. When none of seqs is unread it only
// reads (no write transaction, no fsync).
func (s *Store) MarkRead(ctx context.Context, userID string, seqs []uint64) (int64, error) {
	if err := checkUserID(userID); err != nil {
		return 0, err
	}
	keys := make([][]byte, 0, len(seqs))
	for _, seq := range seqs {
		keys = append(keys, seqKey(userID, seq))
	}
	var unread int64
	dirty := false
	err := s.view(ctx, func(tx *bolt.Tx) error {
		m, err := loadMeta(tx, userID)
		if err != nil {
			return err
		}
		unread = m.unread
		b := tx.Bucket(bUnread)
		for _, k := range keys {
			if b.Get(k) != nil {
				dirty = true
				break
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	if !dirty {
		return unread, nil
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		m, err := loadMeta(tx, userID)
		if err != nil {
			return err
		}
		b := tx.Bucket(bUnread)
		for _, k := range keys {
			if b.Get(k) == nil { // unknown, already read, or repeated in seqs
				continue
			}
			if err := b.Delete(k); err != nil {
				return err
			}
			m.unread--
		}
		unread = m.unread
		return tx.Bucket(bUsers).Put(userKey(userID), m.encode())
	})
	if err != nil {
		return 0, err
	}
	return unread, nil
}

// MarkAllRead implements store.Inbox. It costs time proportional to the
// user's unread notifications, and only reads when there are none.
func (s *Store) MarkAllRead(ctx context.Context, userID string) (int64, error) {
	m, err := s.meta(ctx, userID)
	if err != nil || m.unread == 0 {
		return m.unread, err
	}
	err = s.update(ctx, func(tx *bolt.Tx) error {
		m, err := loadMeta(tx, userID)
		if err != nil {
			return err
		}
		// Collect first: deleting under a live bbolt cursor can skip keys.
		prefix := userKey(userID)
		var keys [][]byte
		b := tx.Bucket(bUnread)
		c := b.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		m.unread = 0
		return tx.Bucket(bUsers).Put(prefix, m.encode())
	})
	if err != nil {
		return 0, err
	}
	return 0, nil
}

// Claim implements store.Inbox. A claim already made only reads.
func (s *Store) Claim(ctx context.Context, userID, eventID, token string) (bool, error) {
	if err := checkUserID(userID); err != nil {
		return false, err
	}
	if eventID == "" {
		return false, &herald.ValidationError{Field: "event_id", Reason: "must not be empty"}
	}
	key := suffixKey(userID, eventID)
	var owner []byte
	err := s.view(ctx, func(tx *bolt.Tx) error {
		owner = bytes.Clone(tx.Bucket(bClaims).Get(key))
		return nil
	})
	if err != nil {
		return false, err
	}
	if owner != nil {
		return string(owner) == token, nil
	}
	var ok bool
	err = s.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bClaims)
		if v := b.Get(key); v != nil { // claimed since the read
			ok = string(v) == token
			return nil
		}
		ok = true
		return b.Put(key, []byte(token))
	})
	return ok, err
}

// GetPreferences implements store.Preferences.
func (s *Store) GetPreferences(ctx context.Context, userID string) (herald.Preferences, error) {
	if err := checkUserID(userID); err != nil {
		return herald.Preferences{}, err
	}
	p := herald.DefaultPreferences()
	err := s.view(ctx, func(tx *bolt.Tx) error {
		v := tx.Bucket(bPrefs).Get(userKey(userID))
		if v == nil {
			return nil
		}
		var got herald.Preferences
		if err := json.Unmarshal(v, &got); err != nil {
			return fmt.Errorf("embedded: corrupt preferences of user %q: %w", userID, err)
		}
		if got.MutedTypes == nil {
			got.MutedTypes = []string{}
		}
		p = got
		return nil
	})
	if err != nil {
		return herald.Preferences{}, err
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
	v, err := json.Marshal(p)
	if err != nil {
		return fmt.Errorf("embedded: encode preferences: %w", err)
	}
	return s.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bPrefs).Put(userKey(userID), v)
	})
}
