package cluster

import (
	"context"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/delivery"
)

// Presence registry: per user a sorted set <prefix>presence:<user> whose
// members are the ids of the gateways holding the user, scored by the
// entry's expiry (unix ms). The key itself expires PresenceTTL after its
// last refresh, so a user whose gateways all crashed leaves nothing behind.
//
// The gateway's hooks only mark a user as changed (a bounded set, no I/O);
// the presence loop takes the set, asks the gateway whether each user is
// present now, and writes ZADD or ZREM. Reading the state at write time
// makes the hooks' order irrelevant, and one goroutine doing every write
// (changes and heartbeats) keeps a departure's ZREM after any refresh of
// the same user that was read before it.

// UserOnline implements delivery.PresenceHook. It never blocks on I/O.
func (c *Cluster) UserOnline(userID string) { c.changed(userID) }

// UserOffline implements delivery.PresenceHook. It never blocks on I/O.
func (c *Cluster) UserOffline(userID string) { c.changed(userID) }

// changed queues userID for the presence loop.
func (c *Cluster) changed(userID string) {
	c.pmu.Lock()
	if c.pclosed {
		c.pmu.Unlock()
		return
	}
	if _, ok := c.dirty[userID]; !ok {
		if len(c.dirty) >= c.cfg.MaxPending {
			c.pmu.Unlock()
			c.m.presenceDropped.Inc()
			signal(c.resync)
			return
		}
		c.dirty[userID] = struct{}{}
	}
	c.pmu.Unlock()
	signal(c.wake)
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// PositionChecker is a Local that checks its users' connections against
// the inbox when asked; *delivery.Gateway implements it. The presence
// loop asks for the users whose presence it wrote on their arrival, and
// for every user after a re-announce (delivery/position.go).
type PositionChecker interface {
	CheckPositions(users []string)
}

var _ PositionChecker = (*delivery.Gateway)(nil)

func checkerOf(l Local) PositionChecker {
	pc, _ := l.(PositionChecker)
	return pc
}

// presenceLoop is Run's writer of presence entries.
func (c *Cluster) presenceLoop(ctx context.Context, l Local, subscribed <-chan struct{}) {
	// Nothing is announced before this gateway can receive what is routed
	// to it; changes meanwhile wait in dirty.
	select {
	case <-ctx.Done():
		return
	case <-subscribed:
	}
	tick := time.NewTicker(c.cfg.Heartbeat)
	defer tick.Stop()
	c.heartbeat(ctx, l, false) // nothing was routed here before the subscription
	c.flush(ctx, l)
	for {
		select {
		case <-ctx.Done():
			return
		case <-c.wake:
			c.flush(ctx, l)
		case <-c.resync:
			c.heartbeat(ctx, l, true)
			c.flush(ctx, l)
		case <-tick.C:
			// Changes that failed to be written are retried here.
			c.flush(ctx, l)
			c.heartbeat(ctx, l, false)
		case ack := <-c.syncReq:
			c.flush(ctx, l)
			close(ack)
		}
	}
}

// requestResync asks the presence loop to re-announce every local user
// (after the subscription was re-established: Redis may have restarted
// empty) and then to have their positions checked.
func (c *Cluster) requestResync() { signal(c.resync) }

// flush writes the pending changes. Users whose write failed are queued
// again, to be retried on the next wake or tick.
func (c *Cluster) flush(ctx context.Context, l Local) {
	c.pmu.Lock()
	if len(c.dirty) == 0 {
		c.pmu.Unlock()
		return
	}
	users := make([]string, 0, len(c.dirty))
	for u := range c.dirty {
		users = append(users, u)
	}
	all := users
	if len(c.dirty) > 1024 {
		c.dirty = map[string]struct{}{} // let a storm's buckets go
	} else {
		clear(c.dirty)
	}
	c.pmu.Unlock()

	checker := checkerOf(l)
	var arrived []string
	for len(users) > 0 && ctx.Err() == nil {
		batch := users[:min(len(users), c.cfg.BatchSize)]
		users = users[len(batch):]
		arrived = arrived[:0]
		now := time.Now()
		expiry := float64(now.Add(c.cfg.PresenceTTL).UnixMilli())
		expired := "(" + strconv.FormatInt(now.UnixMilli(), 10)
		pctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		_, err := c.rdb.Pipelined(pctx, func(p redis.Pipeliner) error {
			for _, u := range batch {
				key := c.presenceKey(u)
				if !l.Present(u) {
					p.ZRem(pctx, key, c.cfg.GatewayID)
					continue
				}
				arrived = append(arrived, u)
				// Arrivals also drop members that expired (crashed
				// gateways), so a long-lived key does not collect them.
				p.ZRemRangeByScore(pctx, key, "-inf", expired)
				p.ZAdd(pctx, key, redis.Z{Score: expiry, Member: c.cfg.GatewayID})
				p.PExpire(pctx, key, c.cfg.PresenceTTL)
			}
			return nil
		})
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				c.redisFailed("presence", err, "users", len(batch)+len(users))
			}
			c.requeue(batch)
			c.requeue(users)
			return
		}
		if checker != nil && len(arrived) > 0 {
			// Routers elsewhere list this gateway for them from now on;
			// what they routed before is in the inbox (delivery/position.go).
			checker.CheckPositions(arrived)
		}
	}
	if ctx.Err() != nil {
		c.requeue(users) // for Close's leave
		return
	}
	// The users' membership entries (memberships.go), after their presence.
	if lm := membershipsOf(l); lm != nil {
		w := c.newMemberWriter(lm)
		for _, u := range all {
			w.user(ctx, u)
		}
		if err := w.flush(ctx); err != nil {
			if ctx.Err() == nil {
				c.redisFailed("membership", err, "users", len(all))
			}
			c.requeue(all)
		}
	}
}

// requeue marks users changed again without waking the loop.
func (c *Cluster) requeue(users []string) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	if c.pclosed {
		return
	}
	for _, u := range users {
		if len(c.dirty) >= c.cfg.MaxPending {
			c.m.presenceDropped.Inc()
			signal(c.resync)
			return
		}
		c.dirty[u] = struct{}{}
	}
}

// heartbeat refreshes the presence entry and the membership entries
// (memberships.go) of every local user, in pipelined batches. It gives up
// at the first failure: the next tick retries, and an entry survives
// PresenceTTL/Heartbeat missed refreshes. A re-announce after the
// subscription was re-established (check) also asks the gateway to check
// the positions of the users announced: what was published to it
// meanwhile is lost (delivery/position.go); so does the first heartbeat
// after one that failed (an entry may have expired meanwhile, and routers
// did not forward to it).
func (c *Cluster) heartbeat(ctx context.Context, l Local, check bool) {
	check = check || c.hbFailed
	batch := make([]string, 0, c.cfg.BatchSize)
	failed := false
	checker := checkerOf(l)
	write := func() {
		if failed || ctx.Err() != nil {
			return
		}
		if err := c.announce(ctx, batch); err != nil {
			failed = true
			if ctx.Err() == nil {
				c.redisFailed("heartbeat", err)
			}
		} else if check && checker != nil {
			checker.CheckPositions(batch)
		}
		batch = batch[:0]
	}
	lm := membershipsOf(l)
	var mw *memberWriter
	if lm != nil {
		mw = c.newMemberWriter(lm)
	}
	l.LocalUsers(func(u string) {
		if failed {
			return
		}
		batch = append(batch, u)
		if len(batch) == cap(batch) {
			write()
		}
		if mw != nil {
			mw.user(ctx, u)
		}
	})
	if len(batch) > 0 {
		write()
	}
	c.hbFailed = failed || ctx.Err() != nil
	if mw == nil || failed || ctx.Err() != nil {
		return
	}
	// Entries of users gone without their change being written (a
	// dropped change) are removed here.
	for _, u := range c.writtenUsers() {
		if !l.Present(u) {
			mw.user(ctx, u)
		}
	}
	if err := mw.flush(ctx); err != nil && ctx.Err() == nil {
		c.redisFailed("membership", err)
	}
}

// announce writes one batch of refreshed entries.
func (c *Cluster) announce(ctx context.Context, users []string) error {
	expiry := float64(time.Now().Add(c.cfg.PresenceTTL).UnixMilli())
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, u := range users {
			key := c.presenceKey(u)
			p.ZAdd(ctx, key, redis.Z{Score: expiry, Member: c.cfg.GatewayID})
			p.PExpire(ctx, key, c.cfg.PresenceTTL)
		}
		return nil
	})
	return err
}

// leave removes this gateway from the presence entries of users, in
// batches, stopping at the first failure. It runs from Close (io.Closer, no
// context) at shutdown, when callers' contexts have usually ended, so each
// batch gets a fresh context bounded by Timeout.
//
//nolint:contextcheck // deliberately detached from any caller context; see above.
func (c *Cluster) leave(users map[string]struct{}) error {
	batch := make([]string, 0, c.cfg.BatchSize)
	write := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
		defer cancel()
		_, err := c.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, u := range batch {
				p.ZRem(ctx, c.presenceKey(u), c.cfg.GatewayID)
			}
			return nil
		})
		batch = batch[:0]
		if err != nil {
			c.m.redisErrors.WithLabelValues("leave").Inc()
			c.log.Warn("could not remove presence entries; they expire by themselves", "ttl", c.cfg.PresenceTTL, "err", err)
		}
		return err
	}
	for u := range users {
		batch = append(batch, u)
		if len(batch) == cap(batch) {
			if err := write(); err != nil {
				return err
			}
		}
	}
	if len(batch) > 0 {
		return write()
	}
	return nil
}
