package delivery

import (
	"math/rand/v2"
	"slices"
	"sync"
	"time"

	herald "github.com/heraldhq/herald"
)

// Position checks close the window pub/sub leaves open.
//
// Notifications reach a gateway from its router (Kafka) or from another
// gateway's router through Redis pub/sub, which is at most once: a
// forwarded notification can be lost in transit. Without more, the client
// gets it only with the user's next notification (whose prev reveals the
// gap) or when it reconnects, and it is not pushed either, since the user
// counted as online. A position check reads the user's inbox LastSeq; if
// the inbox is ahead of what a connection sent, the inbox's newest
// notification is offered to the connection as if it had arrived live,
// and the usual gap fill (conn_replay.go) sends everything in between, in
// order, deduplicated by seq and id against whatever else arrives
// meanwhile.
//
// Where forwards are lost, and who asks for the check (CheckPositions,
// called by delivery/cluster):
//
//   - A subscription that broke (Redis restarted, the connection killed,
//     its output buffer overflowed): what was published to this gateway
//     meanwhile is gone. Once the subscription is back and every local
//     user's presence re-announced, every local user is checked. A
//     notification routed before the re-announce was stored before it, so
//     the check, which reads after it, sees it; one routed after finds
//     this gateway listed and subscribed.
//   - A user's first connection here, until its presence entry is
//     written: a router elsewhere does not list this gateway yet, and the
//     connection's replay may have read the inbox before the notification
//     was stored. The user is checked once the entry is written, a
//     connection still replaying included (the offer waits for the seam).
//
// Besides, every PositionInterval (60 s by default) each quiet connection
// is checked, a safety net for any other way a forward goes missing: a
// connection that sent no notification since the previous round (quiet
// for one to two intervals) has its user's LastSeq read. Its cost is one
// small store read per quiet user per interval (100,000 idle users at
// 60 s: about 1,700 reads/s over the fleet; at the former 5 s, 20,000
// reads/s, more than a small Cassandra serves beside the rest); at most
// PositionChecks are in flight, so a slow store stretches the round
// instead of piling up reads. Busy connections are not checked: each live
// notification's prev already covers the gaps before it.
//
// A connection is also "behind" while a notification is on its normal way
// through Kafka (stored, not routed yet) or while a dead gateway's
// delivery partitions move: the check then delivers it from the inbox
// ahead of the router, and the live copy that follows is a duplicate and
// skipped. Only the server side changes; the frames are the usual ones.

// maxAskedChecks bounds the users waiting for a check CheckPositions asked
// for; past it the rest is left to the periodic round (counted).
const maxAskedChecks = 1 << 17

// askedChecks is the users CheckPositions queued for the position loop.
type askedChecks struct {
	mu    sync.Mutex // a leaf
	users map[string]struct{}
	wake  chan struct{} // capacity 1
}

// CheckPositions asks for a position check of each user's connections
// here, ahead of the periodic round, a connection still replaying
// included. delivery/cluster calls it once a user's presence entry is
// written and after a re-announce of every user (see above). It never
// blocks and does no I/O; a user without a connection here by the time
// the check runs is skipped.
func (g *Gateway) CheckPositions(users []string) {
	q := &g.asked
	q.mu.Lock()
	if q.users == nil {
		q.users = make(map[string]struct{}, len(users))
	}
	dropped := 0
	for _, u := range users {
		if len(q.users) >= maxAskedChecks {
			dropped++
			continue
		}
		q.users[u] = struct{}{}
	}
	q.mu.Unlock()
	if dropped > 0 {
		g.m.positionDropped.Add(float64(dropped))
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// take empties the queue.
func (q *askedChecks) take() []string {
	q.mu.Lock()
	defer q.mu.Unlock()
	users := make([]string, 0, len(q.users))
	for u := range q.users {
		users = append(users, u)
	}
	clear(q.users)
	return users
}

// positionLoop runs the asked checks as they come, and walks the shards,
// one per tick, so each connection is considered once per
// PositionInterval (with a positive one); ticks are jittered so that
// gateways and rounds do not line up.
func (g *Gateway) positionLoop() {
	defer g.wg.Done()
	shards := len(g.hub.shards)
	step := max(g.cfg.PositionInterval/time.Duration(shards), time.Millisecond)
	sem := make(chan struct{}, g.cfg.PositionChecks)
	var timer *time.Timer
	var tick <-chan time.Time // nil: no periodic round
	if g.cfg.PositionInterval > 0 {
		timer = time.NewTimer(step)
		defer timer.Stop()
		tick = timer.C
	}
	var buf []*conn
	// check runs one user's check on a goroutine of its own, at most
	// PositionChecks at once; false: the gateway is stopping.
	check := func(cs []*conn, asked bool) bool {
		select {
		case sem <- struct{}{}:
		case <-g.life.Stopping():
			return false
		}
		cs = slices.Clone(cs)
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			defer func() { <-sem }()
			g.checkPosition(cs[0].user, cs, asked)
		}()
		return true
	}
	for next := 0; ; {
		select {
		case <-g.life.Stopping():
			return
		case <-g.asked.wake:
			for _, u := range g.asked.take() {
				buf = g.hub.appendConns(u, buf[:0])
				if len(buf) > 0 && !check(buf, true) {
					return
				}
				clear(buf)
			}
			continue
		case <-tick:
		}
		timer.Reset(step/2 + rand.N(step)) // uniform in [step/2, 3step/2)
		buf = g.hub.appendShard(next, buf[:0])
		next = (next + 1) % shards
		// appendShard lists each user's connections next to each other.
		for i := 0; i < len(buf); {
			j := i + 1
			for j < len(buf) && buf[j].user == buf[i].user {
				j++
			}
			cs := buf[i:j]
			i = j
			if anyQuiet(cs) && !check(cs, false) {
				return
			}
		}
		clear(buf)
	}
}

// anyQuiet reports whether one of cs sent no notification since the
// previous round; every connection's round mark is updated.
func anyQuiet(cs []*conn) bool {
	quiet := false
	for _, c := range cs {
		c.mu.Lock()
		if !c.closed && !c.replaying && !c.filling {
			if c.lastSeq == c.checkedSeq {
				quiet = true
			}
			c.checkedSeq = c.lastSeq
		}
		c.mu.Unlock()
	}
	return quiet
}

// checkPosition reads user's last seq and brings each of cs that is behind
// it up to date through the gap fill; asked (CheckPositions) also offers
// the head to a connection still replaying or filling, whose seam or fill
// takes it in order.
func (g *Gateway) checkPosition(user string, cs []*conn, asked bool) {
	head, err := g.lastSeq(user)
	g.m.positionChecks.Inc()
	if err != nil {
		if !g.closing.Load() {
			g.log.Debug("position check failed", "user", user, "err", err)
		}
		return
	}
	if head == 0 {
		return // an empty inbox
	}
	var n herald.Notification
	var frame []byte
	for _, c := range cs {
		if !c.behind(head, asked) {
			continue
		}
		if frame == nil {
			var ok bool
			if n, ok, err = c.storedAt(head); err != nil || !ok {
				return // not readable yet (or the store failed): next round
			}
			if frame, err = encodeNotification(&n); err != nil {
				g.log.Warn("position check: cannot encode", "user", user, "seq", n.Seq, "err", err)
				return
			}
		}
		g.m.positionBehind.Inc()
		g.log.Debug("connection behind the inbox", "user", user, "inbox", head)
		if _, queued := c.offer(n.Seq, n.Prev, n.ID, frame); queued {
			g.m.replay.Inc()
		}
	}
}

// behind reports whether the connection is live and has sent less than
// the inbox's head; with busy, also whether it is replaying or filling.
func (c *conn) behind(head uint64, busy bool) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.closed:
		return false
	case c.replaying || c.filling:
		return busy
	}
	return head > c.lastSeq
}
