package delivery

import (
	"math/rand/v2"
	"slices"
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
// counted as online. So every PositionInterval each quiet connection's
// position is compared with the inbox's: a connection that sent no
// notification since the previous round (quiet for one to two intervals)
// has its user's LastSeq read; if the inbox is ahead of what the
// connection sent, the inbox's newest notification is offered to the
// connection as if it had arrived live, and the usual gap fill
// (conn_replay.go) sends everything in between, in order, deduplicated by
// seq and id against whatever else arrives meanwhile.
//
// Cost: one LastSeq per quiet user per interval (15,000 idle users at the
// 5 s default: 3,000 small reads/s), one more read only when a connection
// is behind; at most PositionChecks in flight, so a slow store stretches
// the round instead of piling up reads. Busy connections are not checked:
// each live notification's prev already covers the gaps before it.
//
// A connection is also "behind" while a notification is on its normal way
// through Kafka (stored, not routed yet) or while a dead gateway's
// delivery partitions move: the check then delivers it from the inbox
// ahead of the router, and the live copy that follows is a duplicate and
// skipped. Only the server side changes; the frames are the usual ones.

// positionLoop walks the shards, one per tick, so each connection is
// considered once per PositionInterval; ticks are jittered so that
// gateways and rounds do not line up.
func (g *Gateway) positionLoop() {
	defer g.wg.Done()
	shards := len(g.hub.shards)
	step := max(g.cfg.PositionInterval/time.Duration(shards), time.Millisecond)
	sem := make(chan struct{}, g.cfg.PositionChecks)
	t := time.NewTimer(step)
	defer t.Stop()
	var buf []*conn
	for next := 0; ; next = (next + 1) % shards {
		select {
		case <-g.life.Stopping():
			return
		case <-t.C:
		}
		t.Reset(step/2 + rand.N(step)) // uniform in [step/2, 3step/2)
		buf = g.hub.appendShard(next, buf[:0])
		// appendShard lists each user's connections next to each other.
		for i := 0; i < len(buf); {
			j := i + 1
			for j < len(buf) && buf[j].user == buf[i].user {
				j++
			}
			cs := buf[i:j]
			i = j
			if !anyQuiet(cs) {
				continue
			}
			select {
			case sem <- struct{}{}:
			case <-g.life.Stopping():
				return
			}
			cs = slices.Clone(cs)
			g.wg.Add(1)
			go func() {
				defer g.wg.Done()
				defer func() { <-sem }()
				g.checkPosition(cs[0].user, cs)
			}()
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
// it up to date through the gap fill.
func (g *Gateway) checkPosition(user string, cs []*conn) {
	head, err := g.lastSeq(user)
	g.m.positionChecks.Inc()
	if err != nil {
		if !g.closing.Load() {
			g.log.Debug("position check failed", "user", user, "err", err)
		}
		return
	}
	var n herald.Notification
	var frame []byte
	for _, c := range cs {
		if !c.behind(head) {
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
// the inbox's head.
func (c *conn) behind(head uint64) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.closed && !c.replaying && !c.filling && head > c.lastSeq
}
