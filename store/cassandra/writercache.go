package cassandra

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"

	gocql "github.com/apache/cassandra-gocql-driver/v2"
)

// The writer's cache (see doc.go, "The writer's cache"): what the writer
// of an epoch knows of the users it appends to, so that a part whose event
// ids are all new is written without reading the user's partition first.

// userState is one user's partition as its writer knows it: last_seq, the
// anchor, and a hash of every event id the user's index may hold. It is
// complete for the writer that owns it: every index entry in the partition
// was either read by the load or written by this writer since, so an id
// whose hash is absent has no entry and is new. A hash that is present
// only says "maybe": the part is then appended the uncached way (a read of
// the state and of the ids first), which also covers hash collisions and
// entries that have expired since.
type userState struct {
	owner  *writer // the writer (epoch) this state is exact for
	last   int64   // last_seq
	exists bool    // the anchor row is written
	// heavy: the index held more than the per-user cap at the load; such
	// a user is appended the uncached way (ids is nil).
	heavy bool
	ids   map[uint64]struct{}
}

// size is what the state counts against the cache's budget.
func (st *userState) size() int { return len(st.ids) + 1 }

// writerCache holds userStates for every writer of one Store, within a
// budget of event ids: two generations, the current one replacing the old
// one whenever it holds half the budget, so that the states in use stay
// and the others go, without a list to maintain. States are taken out
// while a user is appended (under the writer's per-user lock) and put back
// only after a successful append: a failed one leaves nothing to trust.
type writerCache struct {
	budget  int // event ids in both generations, at most
	userCap int // most ids of one cached user
	seed    maphash.Seed

	mu       sync.Mutex
	cur, old map[string]*userState
	curSize  int
}

// newWriterCache returns a cache of at most budget event ids; nil (no
// cache: every part is read first) when budget is negative.
func newWriterCache(budget int) *writerCache {
	if budget < 0 {
		return nil
	}
	return &writerCache{
		budget:  budget,
		userCap: max(budget/64, 1),
		seed:    maphash.MakeSeed(),
		cur:     map[string]*userState{},
		old:     map[string]*userState{},
	}
}

func (c *writerCache) hash(eventID string) uint64 { return maphash.String(c.seed, eventID) }

// take removes and returns w's state of userID, nil when there is none
// (never loaded, evicted, failed, or left by another epoch's writer).
func (c *writerCache) take(w *writer, userID string) *userState {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.cur[userID]
	if ok {
		delete(c.cur, userID)
		c.curSize -= st.size()
	} else if st, ok = c.old[userID]; ok {
		delete(c.old, userID)
	}
	if !ok || st.owner != w {
		return nil
	}
	return st
}

// put returns a state after a successful append.
func (c *writerCache) put(userID string, st *userState) {
	if c == nil || st.size() > c.userCap+1 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if prev, ok := c.cur[userID]; ok { // another epoch's writer of the user
		c.curSize -= prev.size()
	}
	delete(c.old, userID)
	c.cur[userID] = st
	c.curSize += st.size()
	if c.curSize > c.budget/2 {
		c.old, c.cur, c.curSize = c.cur, map[string]*userState{}, 0
	}
}

// known reports whether st may hold an index entry for one of eventIDs:
// true also for a heavy user, whose ids are not kept.
func (c *writerCache) known(st *userState, eventIDs []string) bool {
	if st.heavy {
		return true
	}
	for _, e := range eventIDs {
		if _, ok := st.ids[c.hash(e)]; ok {
			return true
		}
	}
	return false
}

// add records the event ids a successful batch wrote.
func (c *writerCache) add(st *userState, eventIDs []string) {
	if st.heavy {
		return
	}
	for _, e := range eventIDs {
		st.ids[c.hash(e)] = struct{}{}
	}
	if len(st.ids) > c.userCap {
		st.heavy, st.ids = true, nil
	}
}

// loadUser reads what w's cache needs of userID: the statics with the
// anchor and every event-index entry, in one paged read, stopping past the
// per-user cap (the state is then heavy).
func (w *writer) loadUser(ctx context.Context, userID string) (*userState, error) {
	c := w.s.cache
	st := &userState{owner: w, ids: map[uint64]struct{}{}}
	iter := w.s.read(w.s.q.stateAndIndex, userID, c.userCap+2).PageSize(1000).IterContext(ctx)
	var (
		m    meta
		kind int8
		key  string
		n    int
	)
	for iter.Scan(append([]any{&kind, &key}, m.dest()...)...) {
		switch kind {
		case kindAnchor:
			st.exists = true
		case kindEvent:
			n++
			if n > c.userCap {
				st.heavy, st.ids = true, nil
				continue
			}
			if !st.heavy {
				st.ids[c.hash(key)] = struct{}{}
			}
		}
	}
	if err := iter.Close(); err != nil && !errors.Is(err, gocql.ErrNotFound) {
		return nil, w.s.fail("load inbox state", err)
	}
	if st.exists {
		st.last = m.last
	} else {
		// As readMetaAndEvents: no anchor, no partition (a new user).
		st.heavy, st.ids = false, map[uint64]struct{}{}
	}
	w.s.m.writerCache.WithLabelValues("load").Inc()
	return st, nil
}
