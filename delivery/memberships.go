package delivery

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/internal/retry"
	"github.com/heraldhq/herald/store"
)

// Membership tracking (Config.Memberships): the gateway knows the topics
// of its connected users, so that the fan-out of a large audience can ask
// which members of a topic are connected now (OnlineMembers) in
// O(connected members) instead of paging through every member.
//
// A user's first connection (WebSocket or SSE; long polls are not
// tracked) creates the user's membership entry in its hub shard and queues
// the load of the user's topics to a small pool of loaders
// (Config.MembershipLoaders, fed by a queue of Config.MembershipQueue), so
// the connection is never delayed: until the load completes the user is
// not listed. The queue is bounded by the connections themselves (one
// load per connected user at most), so a reconnect storm delays listings
// but loses none. A load that fails or times out (Config.MembershipTimeout)
// is logged, counted and tried again after a backoff (200 ms doubling to
// 30 s) for as long as the user stays connected. The last connection drops
// the entry. MembershipChanged edits a loaded entry, and is kept for the end of
// a load still running.
//
// The entries and the shard's index topic → users are guarded by the
// shard's lock (hub.go), a leaf: no new lock, and the order of the
// gateway's locks is unchanged.

// Memberships is where the gateway reads a connected user's topics;
// store.Subscriptions satisfies it.
type Memberships interface {
	Topics(ctx context.Context, userID string) ([]store.Subscription, error)
}

var _ Memberships = store.Subscriptions(nil)

// MembershipHook is an optional extension of Config.Presence: if the hook
// implements it, TopicsChanged is called when a user's topics on this
// gateway change — loaded, edited by MembershipChanged, or dropped with the
// user's last connection. Read the current state with LocalTopics. Like
// the PresenceHook's calls it is made with no gateway lock held, may race
// with others for the same user, and must return promptly.
// *cluster.Cluster implements it.
type MembershipHook interface {
	TopicsChanged(userID string)
}

// maxPendingChanges bounds the membership changes kept for a user whose
// load is running; past it the entry is given up (the user stays
// unlisted until their next first connection).
const maxPendingChanges = 64

// membership is one connected user's topics. Guarded by its shard's lock.
type membership struct {
	loaded bool // topics is valid
	failed bool // given up (too many changes during the load): not listed
	// topics maps each topic to its subscribed_at (Unix microseconds), when
	// loaded.
	topics  map[string]int64
	pending []topicChange // MembershipChanged calls during the load
	// prefs are the user's preferences as live broadcasts check them
	// (broadcast.go): set by the load with Config.Preferences, replaced by
	// PreferencesChanged (kept in pendingPrefs during the load); nil: not
	// known, no live broadcasts.
	prefs        *livePrefs
	pendingPrefs *livePrefs
}

type topicChange struct {
	topic      string
	subscribed bool
	at         int64 // subscribed_at, Unix microseconds (subscribed only)
}

// loadJob asks a loader for the topics of user's entry e; attempt counts
// the failed loads before this one.
type loadJob struct {
	user    string
	e       *membership
	attempt int
}

// loadRetry spaces the attempts of a load that failed; the entry stays
// unlisted meanwhile, and retries end when the user leaves.
var loadRetry = retry.Backoff{Min: 200 * time.Millisecond, Max: 30 * time.Second}

// loadQueue holds the loads waiting for a loader, oldest first. It needs
// no bound of its own: an entry has at most one load queued or running
// (a retry is queued only when the attempt before it ended), and entries
// are bounded by the connections the gateway accepts (--http-max-conns).
// A connection storm therefore waits for its loads instead of losing them.
type loadQueue struct {
	mu   sync.Mutex    // a leaf: nothing else is locked under it
	jobs []loadJob     // guarded by mu
	wake chan struct{} // capacity 1: a job may be waiting
}

func newLoadQueue() *loadQueue { return &loadQueue{wake: make(chan struct{}, 1)} }

func (q *loadQueue) push(j loadJob) {
	q.mu.Lock()
	q.jobs = append(q.jobs, j)
	q.mu.Unlock()
	q.signal()
}

func (q *loadQueue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pop takes the oldest job; when more are left it wakes another loader.
func (q *loadQueue) pop() (loadJob, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if len(q.jobs) == 0 {
		return loadJob{}, false
	}
	j := q.jobs[0]
	q.jobs[0] = loadJob{}
	q.jobs = q.jobs[1:]
	if len(q.jobs) == 0 {
		q.jobs = nil // let the backing array go
	} else {
		q.signal()
	}
	return j, true
}

// len is the number of loads waiting.
func (q *loadQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.jobs)
}

// startLoaders starts the membership loaders, counted by g.wg and ended by
// Shutdown.
func (g *Gateway) startLoaders() {
	g.loads = newLoadQueue()
	for range g.cfg.MembershipLoaders {
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			for {
				j, ok := g.loads.pop()
				if !ok {
					select {
					case <-g.life.Stopping():
						return
					case <-g.loads.wake:
						continue
					}
				}
				if g.ctx.Err() != nil {
					return
				}
				g.load(j)
			}
		}()
	}
}

// loadTopics queues the load of user's new entry e; it never blocks.
func (g *Gateway) loadTopics(user string, e *membership) {
	g.loads.push(loadJob{user: user, e: e})
}

// load reads j's topics and installs them, unless the entry has gone. A
// failed load is tried again after a backoff while the entry is the
// user's.
func (g *Gateway) load(j loadJob) {
	if !g.hub.current(j.user, j.e) {
		return // the user left (or left and came back: a newer load runs)
	}
	ctx, cancel := context.WithTimeout(g.ctx, g.cfg.MembershipTimeout)
	subs, err := g.cfg.Memberships.Topics(ctx, j.user)
	cancel()
	// Only a member of some topic can take a live broadcast: a user with
	// none costs no preferences read (one who subscribes while connected
	// gets live broadcasts from their next first connection, or once
	// PreferencesChanged tells their preferences).
	var prefs *livePrefs
	if err == nil && g.cfg.Preferences != nil && len(subs) > 0 {
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.MembershipTimeout)
		var p herald.Preferences
		p, err = g.cfg.Preferences.GetPreferences(ctx, j.user)
		cancel()
		prefs = newLivePrefs(&p)
	}
	if err != nil {
		g.loadFailed(j, err)
		return
	}
	g.m.membershipLoads.WithLabelValues("ok").Inc()
	if !g.hub.install(j.user, j.e, subs, prefs) {
		return
	}
	g.topicsChanged(j.user)
	if g.cfg.CatchUp != nil && len(subs) > 0 {
		ctx, cancel := context.WithTimeout(g.ctx, g.cfg.MembershipTimeout)
		err := g.cfg.CatchUp.Request(ctx, j.user)
		cancel()
		if err != nil && g.ctx.Err() == nil {
			if n, ok := g.memberLog.Allow(); ok {
				g.log.Warn("cannot request a connected user's feed catch-up; it follows their next read",
					"user", j.user, "err", err, "suppressed", n)
			}
		}
	}
}

// loadFailed counts and logs a failed load and queues its retry.
func (g *Gateway) loadFailed(j loadJob, err error) {
	if g.ctx.Err() != nil {
		return
	}
	g.m.membershipLoads.WithLabelValues("error").Inc()
	if n, ok := g.memberLog.Allow(); ok {
		g.log.Warn("cannot load a connected user's topics and preferences; not listed as online for them until a retry succeeds",
			"user", j.user, "attempt", j.attempt+1, "err", err, "suppressed", n)
	}
	next := loadJob{user: j.user, e: j.e, attempt: j.attempt + 1}
	time.AfterFunc(loadRetry.Attempt(next.attempt), func() {
		if g.ctx.Err() == nil {
			g.loads.push(next)
		}
	})
}

// topicsChanged tells the presence hook, if it wants to know.
func (g *Gateway) topicsChanged(user string) {
	if h, ok := g.cfg.Presence.(MembershipHook); ok {
		h.TopicsChanged(user)
	}
}

// OnlineMembers returns the users connected to this gateway (WebSocket or
// SSE) whose topics, as loaded at their first connection and updated by
// MembershipChanged, include topic, in no particular order. It holds one
// hub shard's lock at a time and does no I/O; ctx is not used. Without
// Config.Memberships it returns nil, nil.
func (g *Gateway) OnlineMembers(ctx context.Context, topic string) ([]string, error) {
	if g.cfg.Memberships == nil {
		return nil, nil
	}
	var out []string
	for i := range g.hub.shards {
		s := &g.hub.shards[i]
		s.mu.Lock()
		for u := range s.byTopic[topic] {
			out = append(out, u)
		}
		s.mu.Unlock()
	}
	return out, nil
}

// MembershipChanged records that userID subscribed to (or unsubscribed
// from) topic, if the user is connected here; otherwise it does nothing.
// Call it after the change is stored. It does no I/O; ctx is not used.
func (g *Gateway) MembershipChanged(ctx context.Context, userID, topic string, subscribed bool) {
	if g.cfg.Memberships == nil {
		return
	}
	if g.hub.change(userID, topicChange{topic, subscribed, time.Now().UnixMicro()}) {
		g.topicsChanged(userID)
	}
}

// LocalTopics returns the topics of userID on this gateway, in no
// particular order; known is false when the user has no connection here
// or their topics are not loaded (yet, or the load failed).
func (g *Gateway) LocalTopics(userID string) (topics []string, known bool) {
	s := g.hub.shardOf(userID)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.mems[userID]
	if e == nil || !e.loaded {
		return nil, false
	}
	return slices.Collect(maps.Keys(e.topics)), true
}

// install sets the loaded topics (and preferences, nil if not read) of
// user's entry e, then applies the changes made during the load. It
// reports false if e is no longer the user's entry (the user left, or
// left and came back).
func (h *hub) install(user string, e *membership, subs []store.Subscription, prefs *livePrefs) bool {
	s := h.shardOf(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mems[user] != e || e.failed {
		return false
	}
	e.loaded = true
	e.topics = make(map[string]int64, len(subs))
	for _, sub := range subs {
		s.addTopic(user, e, sub.Topic, sub.SubscribedAt.UnixMicro())
	}
	for _, ch := range e.pending {
		s.apply(user, e, ch)
	}
	e.pending = nil
	e.prefs = prefs
	if e.pendingPrefs != nil {
		e.prefs, e.pendingPrefs = e.pendingPrefs, nil
	}
	return true
}

// current reports whether e is still user's entry and still wants its
// topics.
func (h *hub) current(user string, e *membership) bool {
	s := h.shardOf(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mems[user] == e && !e.failed && !e.loaded
}

// change applies ch to user's entry, or keeps it for the end of the load;
// it reports whether loaded topics changed.
func (h *hub) change(user string, ch topicChange) bool {
	s := h.shardOf(user)
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.mems[user]
	switch {
	case e == nil || e.failed:
		return false
	case !e.loaded:
		if len(e.pending) >= maxPendingChanges {
			e.failed, e.pending = true, nil
			return false
		}
		e.pending = append(e.pending, ch)
		return false
	}
	return s.apply(user, e, ch)
}

// apply edits a loaded entry; it reports whether it changed. Under s.mu.
func (s *shard) apply(user string, e *membership, ch topicChange) bool {
	_, had := e.topics[ch.topic]
	switch {
	case ch.subscribed && !had:
		s.addTopic(user, e, ch.topic, ch.at)
		return true
	case !ch.subscribed && had:
		delete(e.topics, ch.topic)
		s.unindex(user, ch.topic)
		return true
	}
	return false
}

// addTopic adds topic, subscribed at at (Unix microseconds), to e and
// the index. Under s.mu.
func (s *shard) addTopic(user string, e *membership, topic string, at int64) {
	e.topics[topic] = at
	us := s.byTopic[topic]
	if us == nil {
		us = map[string]struct{}{}
		s.byTopic[topic] = us
	}
	us[user] = struct{}{}
}

// unindex removes user from topic's index. Under s.mu.
func (s *shard) unindex(user, topic string) {
	us := s.byTopic[topic]
	delete(us, user)
	if len(us) == 0 {
		delete(s.byTopic, topic)
	}
}

// dropMembership removes user's entry and its index entries; it reports
// whether the entry had loaded topics. Under s.mu.
func (s *shard) dropMembership(user string) bool {
	e := s.mems[user]
	if e == nil {
		return false
	}
	delete(s.mems, user)
	for t := range e.topics {
		s.unindex(user, t)
	}
	return e.loaded
}
