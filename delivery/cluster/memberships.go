package cluster

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/delivery"
)

// Membership mirror: per topic a sorted set <prefix>online:<topic> of the
// members connected to some gateway, so that the fan-out of a large
// audience finds them in O(connected members) (OnlineMembers). Each member
// is "<user>|<gateway id>" — one per gateway holding the user, so a
// gateway the user leaves removes its own entry without hiding the user's
// connection elsewhere — scored by the entry's expiry (unix ms), like the
// presence sets. The key expires PresenceTTL after its last write.
//
// The presence loop writes them: a user marked changed (presence, or
// TopicsChanged from the gateway) gets ZADDs for the topics the gateway
// knows now and ZREMs for those written before that it no longer has
// (written remembers them); every Heartbeat does the same for every local
// user, which refreshes the scores. A crashed gateway's entries are
// ignored by readers once their score has passed, and pruned by them.

// LocalMemberships is the optional part of Local for membership tracking;
// *delivery.Gateway implements it (with Config.Memberships set).
type LocalMemberships interface {
	// LocalTopics returns the user's topics on this gateway; known is
	// false if the user has no connection here or their topics are not
	// loaded.
	LocalTopics(userID string) (topics []string, known bool)
	// MembershipChanged updates the user's topics if they are connected
	// here.
	MembershipChanged(ctx context.Context, userID, topic string, subscribed bool)
}

var (
	_ LocalMemberships        = (*delivery.Gateway)(nil)
	_ delivery.MembershipHook = (*Cluster)(nil)
)

// memberSep separates the user id from the gateway id in a member; neither
// alphabet contains it.
const memberSep = "|"

// pruneEvery: one OnlineMembers call in pruneEvery also removes the
// topic's expired members.
const pruneEvery = 8

// TopicsChanged implements delivery.MembershipHook: the user's topics are
// written by the presence loop. It never blocks on I/O.
func (c *Cluster) TopicsChanged(userID string) { c.changed(userID) }

func (c *Cluster) onlineKey(topic string) string { return c.prefix.Key("online", topic) }

func membershipsOf(l Local) LocalMemberships {
	lm, _ := l.(LocalMemberships)
	return lm
}

// OnlineMembers returns the users listed in Redis as connected to some
// gateway and members of topic (entries not expired), de-duplicated, in
// no particular order. One Redis round trip bounded by Timeout; it needs
// no local gateway and no Run (the fan-out stage uses a publish-only
// Cluster). A user's entry appears once their gateway has loaded their
// topics and written them (at its next presence write: promptly, or
// within a Heartbeat after a Redis failure).
func (c *Cluster) OnlineMembers(ctx context.Context, topic string) ([]string, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	key := c.onlineKey(topic)
	now := strconv.FormatInt(time.Now().UnixMilli(), 10)
	var rng *redis.StringSliceCmd
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		if c.reads.Add(1)%pruneEvery == 1 {
			p.ZRemRangeByScore(ctx, key, "-inf", "("+now)
		}
		rng = p.ZRangeByScore(ctx, key, &redis.ZRangeBy{Min: now, Max: "+inf"})
		return nil
	})
	if err != nil {
		if ctx.Err() == nil {
			c.redisFailed("online", err, "topic", topic)
		}
		return nil, fmt.Errorf("cluster: online members of %q: %w", topic, err)
	}
	members := rng.Val()
	out := make([]string, 0, len(members))
	seen := make(map[string]struct{}, len(members))
	for _, m := range members {
		u := m
		if i := strings.LastIndex(m, memberSep); i >= 0 {
			u = m[:i]
		}
		if _, dup := seen[u]; !dup {
			seen[u] = struct{}{}
			out = append(out, u)
		}
	}
	return out, nil
}

// MembershipChanged tells the gateways holding userID that the user
// subscribed to (or unsubscribed from) topic: it applies the change to the
// attached gateway, if any, and routes it to the other gateways listed in
// presence (one Redis round trip bounded by Timeout), which update their
// cache and then Redis. Call it after the change is stored. Failures are
// logged and counted; the user's topics are right again on their next
// connection.
func (c *Cluster) MembershipChanged(ctx context.Context, userID, topic string, subscribed bool) {
	if lm := membershipsOf(c.localOf()); lm != nil {
		lm.MembershipChanged(ctx, userID, topic, subscribed)
	}
	if c.closed() {
		return
	}
	payload, err := encodeMembership(userID, topic, subscribed)
	if err != nil { // strings and a bool: unreachable
		c.log.Error("cannot encode a membership message", "user", userID, "err", err)
		return
	}
	if _, err := c.route(ctx, userID, payload, c.m.forwardedMemberships); err != nil {
		c.routeFailed(ctx, err, "user", userID, "topic", topic)
	}
}

// memberWriter writes the membership entries of the users given to it, in
// pipelined batches of about BatchSize entries grouped by topic. Only the
// presence loop uses one (and Close, after Run): written needs no other
// writer's ordering.
type memberWriter struct {
	c       *Cluster
	lm      LocalMemberships
	leaving bool // remove every entry written (Close)
	expiry  float64
	add     map[string][]any    // topic → members to ZADD
	rem     map[string][]any    // topic → members to ZREM
	users   map[string][]string // user → topics once the batch is written
	n       int
	err     error
}

func (c *Cluster) newMemberWriter(lm LocalMemberships) *memberWriter {
	return &memberWriter{c: c, lm: lm, expiry: float64(time.Now().Add(c.cfg.PresenceTTL).UnixMilli()),
		add: map[string][]any{}, rem: map[string][]any{}, users: map[string][]string{}}
}

// user queues the writes that make user's entries match their topics on
// this gateway now: ZADD (fresh score) for each, ZREM for each written
// before and gone. Users with nothing known and nothing written cost
// nothing. After a failed batch it does nothing.
func (w *memberWriter) user(ctx context.Context, u string) {
	if w.err != nil {
		return
	}
	var cur []string
	if !w.leaving && w.lm != nil {
		cur, _ = w.lm.LocalTopics(u)
	}
	w.c.wmu.Lock()
	prev, had := w.c.written[u]
	w.c.wmu.Unlock()
	if len(cur) == 0 && !had {
		return
	}
	member := u + memberSep + w.c.cfg.GatewayID
	for _, t := range cur {
		w.add[t] = append(w.add[t], member)
	}
	w.n += len(cur)
	if len(prev) > 0 {
		var set map[string]struct{}
		if len(cur) > 16 {
			set = make(map[string]struct{}, len(cur))
			for _, t := range cur {
				set[t] = struct{}{}
			}
		}
		for _, t := range prev {
			var still bool
			if set != nil {
				_, still = set[t]
			} else {
				still = slices.Contains(cur, t)
			}
			if !still {
				w.rem[t] = append(w.rem[t], member)
				w.n++
			}
		}
	}
	w.users[u] = cur
	if w.n >= w.c.cfg.BatchSize {
		w.write(ctx)
	}
}

// flush writes what is queued and returns the first batch's error.
func (w *memberWriter) flush(ctx context.Context) error {
	if w.err == nil && len(w.users) > 0 {
		w.write(ctx)
	}
	return w.err
}

func (w *memberWriter) write(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, w.c.cfg.Timeout)
	defer cancel()
	adds, rems := 0, 0
	_, err := w.c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for t, ms := range w.add {
			key := w.c.onlineKey(t)
			zs := make([]redis.Z, len(ms))
			for i, m := range ms {
				zs[i] = redis.Z{Score: w.expiry, Member: m}
			}
			p.ZAdd(ctx, key, zs...)
			p.PExpire(ctx, key, w.c.cfg.PresenceTTL)
			adds += len(ms)
		}
		for t, ms := range w.rem {
			p.ZRem(ctx, w.c.onlineKey(t), ms...)
			rems += len(ms)
		}
		return nil
	})
	if err != nil {
		w.err = err
		return
	}
	w.c.m.membershipWrites.WithLabelValues("add").Add(float64(adds))
	w.c.m.membershipWrites.WithLabelValues("remove").Add(float64(rems))
	w.c.wmu.Lock()
	for u, cur := range w.users {
		if len(cur) == 0 {
			delete(w.c.written, u)
		} else {
			w.c.written[u] = cur
		}
	}
	w.c.wmu.Unlock()
	clear(w.add)
	clear(w.rem)
	clear(w.users)
	w.n = 0
}

// writtenUsers lists the users with membership entries written by this
// gateway.
func (c *Cluster) writtenUsers() []string {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	us := make([]string, 0, len(c.written))
	for u := range c.written {
		us = append(us, u)
	}
	return us
}

// leaveMembers removes this gateway's membership entries (Close), best
// effort: what is left expires after PresenceTTL.
//
//nolint:contextcheck // Close has no context: each batch is bounded by Timeout
func (c *Cluster) leaveMembers() error {
	ctx := context.Background()
	w := c.newMemberWriter(nil)
	w.leaving = true
	for _, u := range c.writtenUsers() {
		w.user(ctx, u)
	}
	if err := w.flush(ctx); err != nil {
		c.m.redisErrors.WithLabelValues("leave").Inc()
		c.log.Warn("could not remove membership entries; they expire by themselves", "ttl", c.cfg.PresenceTTL, "err", err)
		return err
	}
	return nil
}
