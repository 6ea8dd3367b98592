package delivery

import (
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
	"github.com/heraldhq/herald/store"
)

// Live broadcasts (docs/ARCHITECTURE.md, "Live broadcasts"). A broadcast
// to a large audience reaches a member's inbox when the fan-out stage
// catches the member up: one ordinary event per member through the
// enricher, minutes for 100,000 members on a small cluster. Broadcast
// sends it ahead of that, once per gateway, as a "broadcast" frame to the
// connections opened with ?broadcasts=live of the local members of its
// topic, from what the gateway already holds and without any I/O:
//
//   - the membership entries (memberships.go) give the members connected
//     here and when each subscribed; a member subscribed after the
//     broadcast's created_at would not take it into their inbox, so they
//     get no frame either;
//   - the preferences loaded with the topics (Config.Preferences), kept
//     current by PreferencesChanged, say whether the member takes it
//     in-app (not muted, in_app on): the enricher decides the same for the
//     inbox copy. A member whose preferences are not known yet gets
//     nothing early;
//   - whether the policy governs the broadcast's type is the publisher's
//     decision (pipeline.Fanout): a governed broadcast is never sent live.
//
// The frame is outside the seq order (no id, no seq) and never replaces
// the inbox copy, which follows as a notification with the same event_id.
// The gateway remembers the last recentBroadcasts event ids it framed and
// drops a repeat (a fan-out batch expanded again after an abort publishes
// again), so a connection gets a broadcast's frame at most once.
//
// Locks: Broadcast holds one hub shard's lock at a time while it collects
// connections and sends with none held (conn.send takes conn.mu); the
// recent set's mutex is a leaf.

// Preferences is where the gateway reads a connected user's preferences;
// store.Preferences satisfies it.
type Preferences interface {
	GetPreferences(ctx context.Context, userID string) (herald.Preferences, error)
}

var _ Preferences = store.Preferences(nil)

// recentBroadcasts is how many broadcasts' event ids a gateway remembers
// to frame each at most once.
const recentBroadcasts = 1024

// livePrefs is what a live broadcast checks of a user's preferences,
// compact because every connected user holds one: the muted types
// (sorted) and whether in-app is off. The defaults share one value.
type livePrefs struct {
	muted []string
	off   bool
}

var defaultLivePrefs = &livePrefs{}

func newLivePrefs(p *herald.Preferences) *livePrefs {
	if len(p.MutedTypes) == 0 && p.Channels.InApp {
		return defaultLivePrefs
	}
	m := slices.Clone(p.MutedTypes)
	slices.Sort(m)
	return &livePrefs{muted: slices.Compact(m), off: !p.Channels.InApp}
}

// takes reports whether an event of type t goes to the user's inbox and
// live connections (herald.Preferences.Route's InApp).
func (p *livePrefs) takes(t string) bool {
	if p.off {
		return false
	}
	_, muted := slices.BinarySearch(p.muted, t)
	return !muted
}

// recentSet is the event ids of the last broadcasts framed, oldest first
// in ring.
type recentSet struct {
	mu   sync.Mutex // a leaf
	ids  map[string]struct{}
	ring []string
	next int
}

// add records id and reports whether it was new.
func (r *recentSet) add(id string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, seen := r.ids[id]; seen {
		return false
	}
	if r.ids == nil {
		r.ids = make(map[string]struct{}, recentBroadcasts)
		r.ring = make([]string, recentBroadcasts)
	}
	if old := r.ring[r.next]; old != "" {
		delete(r.ids, old)
	}
	r.ring[r.next] = id
	r.next = (r.next + 1) % len(r.ring)
	r.ids[id] = struct{}{}
	return true
}

// broadcastFrame is {"type":"broadcast","broadcast":{…}}.
type broadcastFrame struct {
	Type      string            `json:"type"`
	Broadcast *herald.Broadcast `json:"broadcast"`
}

// encodeBroadcast renders b's frame once, shared by every connection.
func encodeBroadcast(b *herald.Broadcast) ([]byte, error) {
	return json.Marshal(broadcastFrame{Type: "broadcast", Broadcast: b})
}

// Broadcast sends b as a broadcast frame to the live connections of the
// topic's members connected here that take it (see above) and returns how
// many frames it queued. It does no I/O and never blocks on a client: a
// connection whose queue is full is closed as too slow, as for any frame.
// Without Config.Memberships or Config.Preferences it sends nothing. ctx
// is not used.
func (g *Gateway) Broadcast(ctx context.Context, b herald.Broadcast) (int, error) {
	if g.cfg.Memberships == nil || g.cfg.Preferences == nil {
		g.m.broadcasts.WithLabelValues("off").Inc()
		return 0, nil
	}
	if !g.recent.add(b.EventID) {
		g.m.broadcasts.WithLabelValues("repeat").Inc()
		return 0, nil
	}
	start := time.Now()
	if !b.CreatedAt.IsZero() {
		g.m.broadcastDelay.Observe(start.Sub(b.CreatedAt).Seconds())
	}
	frame, err := encodeBroadcast(&b)
	if err != nil {
		return 0, err
	}
	created := b.CreatedAt.UnixMicro()
	sent := 0
	var conns []*conn
	for i := range g.hub.shards {
		s := &g.hub.shards[i]
		s.mu.Lock()
		for u := range s.byTopic[b.Topic] {
			e := s.mems[u]
			if e == nil || e.prefs == nil || !e.prefs.takes(b.Type) {
				continue
			}
			if at, ok := e.topics[b.Topic]; !ok || at > created {
				continue
			}
			for _, c := range s.users[u] {
				if c.live {
					conns = append(conns, c)
				}
			}
		}
		s.mu.Unlock()
		for _, c := range conns {
			if c.send(frame) {
				sent++
			}
		}
		clear(conns)
		conns = conns[:0]
	}
	g.m.broadcasts.WithLabelValues("sent").Inc()
	g.m.broadcastFrames.Add(float64(sent))
	g.m.broadcastQueue.Observe(time.Since(start).Seconds())
	return sent, nil
}

// PreferencesChanged records userID's new preferences for live
// broadcasts, if the user is connected here; otherwise it does nothing.
// Call it after the change is stored. It does no I/O; ctx is not used.
func (g *Gateway) PreferencesChanged(ctx context.Context, userID string, p herald.Preferences) {
	if g.cfg.Memberships == nil || g.cfg.Preferences == nil {
		return
	}
	lp := newLivePrefs(&p)
	s := g.hub.shardOf(userID)
	s.mu.Lock()
	defer s.mu.Unlock()
	switch e := s.mems[userID]; {
	case e == nil || e.failed:
	case e.loaded:
		e.prefs = lp
	default:
		e.pendingPrefs = lp // the load may have read the old ones
	}
}
