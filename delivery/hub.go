package delivery

import (
	"errors"
	"hash/maphash"
	"sync"
	"sync/atomic"

	"golang.org/x/time/rate"
)

// hub indexes the gateway's connections by user id, in shards that each
// have their own lock, so deliveries to different users rarely contend.
//
// shard.mu is a leaf lock: while holding it the code only reads or edits
// the shard's map and copies connection pointers, never takes conn.mu.
type hub struct {
	seed   maphash.Seed
	mask   uint64
	shards []shard
	// track: a user's first connection gets a membership entry
	// (memberships.go); set by init, read-only after.
	track bool
}

type shard struct {
	mu    sync.Mutex
	users map[string][]*conn   // a user's connections; usually one or two
	waits map[string][]*waiter // a user's long polls (waiters.go)
	// mems and byTopic are the memberships of the shard's connected users
	// (memberships.go): the entry of each user with a connection, and
	// topic → those of them whose loaded topics include it.
	mems    map[string]*membership
	byTopic map[string]map[string]struct{}
	_       [24]byte // keep neighbouring shards' locks off one cache line
}

func (h *hub) init(n int, track bool) {
	h.seed = maphash.MakeSeed()
	h.mask = uint64(n - 1)
	h.track = track
	h.shards = make([]shard, n)
	for i := range h.shards {
		h.shards[i].users = map[string][]*conn{}
		h.shards[i].waits = map[string][]*waiter{}
		h.shards[i].mems = map[string]*membership{}
		h.shards[i].byTopic = map[string]map[string]struct{}{}
	}
}

func (h *hub) shardOf(user string) *shard {
	return &h.shards[maphash.String(h.seed, user)&h.mask]
}

var (
	errClosing      = errors.New("gateway closing")
	errTooManyConns = errors.New("too many connections for this user")
	errTooManyWaits = errors.New("too many long polls for this user")
)

// add registers c unless the gateway is closing or c's user already has
// limit connections. Checking closing under the shard lock means Shutdown,
// which sets it before walking the shards, sees every connection that add
// accepted. first reports that c is the user's only registered connection
// or long poll (the user just became present). c shares the frame bucket of the user's
// other connections; the first one gets a new one from newLimiter and,
// when memberships are tracked, a new membership entry, returned as load
// (its topics are to be loaded).
func (h *hub) add(c *conn, closing *atomic.Bool, limit int, newLimiter func() *rate.Limiter) (first bool, load *membership, err error) {
	s := h.shardOf(c.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	if closing.Load() {
		return false, nil, errClosing
	}
	cs := s.users[c.user]
	if len(cs) >= limit {
		return false, nil, errTooManyConns
	}
	if len(cs) > 0 {
		c.frames = cs[0].frames
	} else {
		c.frames = newLimiter()
		if h.track {
			load = &membership{}
			s.mems[c.user] = load
		}
	}
	s.users[c.user] = append(cs, c)
	return len(cs) == 0 && len(s.waits[c.user]) == 0, load, nil
}

// present reports whether user has a registered connection or long poll.
func (h *hub) present(user string) bool {
	s := h.shardOf(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users[user]) > 0 || len(s.waits[user]) > 0
}

// count is the number of user's registered connections.
func (h *hub) count(user string) int {
	s := h.shardOf(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users[user])
}

// remove unregisters c; it is a no-op if c is not registered. last reports
// that c was the user's last registered connection, and the user has no
// long poll either (the user is gone). dropped reports that c was the
// user's last connection and took the user's loaded topics with it.
func (h *hub) remove(c *conn) (last, dropped bool) {
	s := h.shardOf(c.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	cs := s.users[c.user]
	for i, x := range cs {
		if x != c {
			continue
		}
		if len(cs) == 1 {
			delete(s.users, c.user)
			dropped = s.dropMembership(c.user)
			return len(s.waits[c.user]) == 0, dropped
		}
		end := len(cs) - 1
		cs[i] = cs[end]
		cs[end] = nil
		s.users[c.user] = cs[:end]
		return false, false
	}
	return false, false
}

// appendConns appends user's connections to dst.
func (h *hub) appendConns(user string, dst []*conn) []*conn {
	s := h.shardOf(user)
	s.mu.Lock()
	dst = append(dst, s.users[user]...)
	s.mu.Unlock()
	return dst
}

// hasOpen reports whether user has a connection not being closed.
func (h *hub) hasOpen(user string) bool {
	s := h.shardOf(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.users[user] {
		if !c.dead.Load() {
			return true
		}
	}
	return false
}

// appendShard appends every connection of shard i to dst.
func (h *hub) appendShard(i int, dst []*conn) []*conn {
	s := &h.shards[i]
	s.mu.Lock()
	for _, cs := range s.users {
		dst = append(dst, cs...)
	}
	s.mu.Unlock()
	return dst
}

// each calls f for every registered connection, one shard at a time,
// without holding any shard lock during f.
func (h *hub) each(f func(*conn)) {
	var buf []*conn
	for i := range h.shards {
		buf = h.appendShard(i, buf[:0])
		for _, c := range buf {
			f(c)
		}
		clear(buf)
	}
}

// addWaiter registers w unless closing is set or w's user already has
// limit long polls; first reports that the user just became present.
func (h *hub) addWaiter(w *waiter, closing *atomic.Bool, limit int) (first bool, err error) {
	s := h.shardOf(w.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	if closing.Load() {
		return false, errClosing
	}
	ws := s.waits[w.user]
	if len(ws) >= limit {
		return false, errTooManyWaits
	}
	s.waits[w.user] = append(ws, w)
	return len(ws) == 0 && len(s.users[w.user]) == 0, nil
}

// removeWaiter unregisters w (a no-op if it is not registered); last
// reports that the user has nothing registered any more.
func (h *hub) removeWaiter(w *waiter) (last bool) {
	s := h.shardOf(w.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	ws := s.waits[w.user]
	for i, x := range ws {
		if x != w {
			continue
		}
		if len(ws) == 1 {
			delete(s.waits, w.user)
			return len(s.users[w.user]) == 0
		}
		end := len(ws) - 1
		ws[i] = ws[end]
		ws[end] = nil
		s.waits[w.user] = ws[:end]
		return false
	}
	return false
}

// wake wakes user's long polls waiting for a seq below seq and reports
// how many there are (woken now or already). Closing a channel is all it does under the lock.
func (h *hub) wake(user string, seq uint64) (woken int) {
	s := h.shardOf(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.waits[user] {
		if w.after < seq {
			w.fire() // a no-op if it was woken already
			woken++
		}
	}
	return woken
}

// wakeAll wakes every long poll (Shutdown).
func (h *hub) wakeAll() {
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for _, ws := range s.waits {
			for _, w := range ws {
				w.fire()
			}
		}
		s.mu.Unlock()
	}
}

// eachUser calls fn for every user with a registered connection or long
// poll, one shard at a time, holding no lock during fn.
func (h *hub) eachUser(fn func(user string)) {
	var buf []string
	for i := range h.shards {
		s := &h.shards[i]
		s.mu.Lock()
		for u := range s.users {
			buf = append(buf, u)
		}
		for u := range s.waits {
			if _, dup := s.users[u]; !dup {
				buf = append(buf, u)
			}
		}
		s.mu.Unlock()
		for _, u := range buf {
			fn(u)
		}
		clear(buf)
		buf = buf[:0]
	}
}
