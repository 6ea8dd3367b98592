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
}

type shard struct {
	mu    sync.Mutex
	users map[string][]*conn // a user's connections; usually one or two
	_     [40]byte           // keep neighbouring shards' locks off one cache line
}

func (h *hub) init(n int) {
	h.seed = maphash.MakeSeed()
	h.mask = uint64(n - 1)
	h.shards = make([]shard, n)
	for i := range h.shards {
		h.shards[i].users = map[string][]*conn{}
	}
}

func (h *hub) shardOf(user string) *shard {
	return &h.shards[maphash.String(h.seed, user)&h.mask]
}

var (
	errClosing      = errors.New("gateway closing")
	errTooManyConns = errors.New("too many connections for this user")
)

// add registers c unless the gateway is closing or c's user already has
// limit connections. Checking closing under the shard lock means Shutdown,
// which sets it before walking the shards, sees every connection that add
// accepted. first reports that c is the user's only registered connection
// (the user just became present). c shares the frame bucket of the user's
// other connections; the first one gets a new one from newLimiter.
func (h *hub) add(c *conn, closing *atomic.Bool, limit int, newLimiter func() *rate.Limiter) (first bool, err error) {
	s := h.shardOf(c.user)
	s.mu.Lock()
	defer s.mu.Unlock()
	if closing.Load() {
		return false, errClosing
	}
	cs := s.users[c.user]
	if len(cs) >= limit {
		return false, errTooManyConns
	}
	if len(cs) > 0 {
		c.frames = cs[0].frames
	} else {
		c.frames = newLimiter()
	}
	s.users[c.user] = append(cs, c)
	return len(s.users[c.user]) == 1, nil
}

// count is the number of user's registered connections.
func (h *hub) count(user string) int {
	s := h.shardOf(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.users[user])
}

// remove unregisters c; it is a no-op if c is not registered. last reports
// that c was the user's last registered connection (the user is gone).
func (h *hub) remove(c *conn) (last bool) {
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
			return true
		}
		end := len(cs) - 1
		cs[i] = cs[end]
		cs[end] = nil
		s.users[c.user] = cs[:end]
		return false
	}
	return false
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
